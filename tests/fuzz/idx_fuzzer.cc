// Feeds LoadIdxDataset and ReadIdxHeader (base/dataset.h) a pair of IDX files, plain or gzip'd.
// The input is [2 bytes, little-endian: n][n bytes: the images file][the rest: the labels
// file]; both go through real files, as the loaders only read paths. A dataset that loads
// must hold what its header promised.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "base/dataset.h"

namespace {

// A folder of our own for the two files, made once per process.
const std::string& ScratchDir() {
  static const std::string* dir = [] {
    std::string pattern = "/tmp/idx_fuzzer.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    return new std::string(pattern);
  }();
  return *dir;
}

void WriteFile(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t image_bytes = data[0] | (size_t{data[1]} << 8);
  data += 2;
  size -= 2;
  if (image_bytes > size) image_bytes = size;
  const std::string images = ScratchDir() + "/images";
  const std::string labels = ScratchDir() + "/labels";
  WriteFile(images, data, image_bytes);
  WriteFile(labels, data + image_bytes, size - image_bytes);

  (void)classifier::ReadIdxHeader(images);
  (void)classifier::ReadIdxHeader(labels);
  absl::StatusOr<classifier::Dataset> dataset = classifier::LoadIdxDataset(images, labels);
  if (dataset.ok()) {
    const classifier::Dataset& d = *dataset;
    if (d.pixels.size() != static_cast<size_t>(d.size() * d.image_size())) std::abort();
    for (uint8_t label : d.labels) {
      if (label >= d.num_classes) std::abort();
    }
  }
  return 0;
}
