// Feeds protobuf bytes as a TrainRequest to PlanTraining, the server's one translation of a
// request into the trainer's options (every field's rule, sweeps, architectures, augmentation,
// schedules, distributed), then, when planned, to ResolvedRequest: what Train does with a
// request before anything is queued. The catalog holds one small IDX dataset ("mnist", 28x28,
// written once into a temporary folder) so that the dataset checks run too. What this asserts:
// whatever the request, the plan is a value or a status, with no crash, leak, over-read, long
// run or large allocation (a sweep's cross product, an architecture's size).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "classifier/v1/classifier.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "server/dataset_catalog.h"
#include "server/train_request.h"

namespace {

void WriteBigEndian(std::ofstream& out, uint32_t value) {
  const char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                         static_cast<char>(value >> 8), static_cast<char>(value)};
  out.write(bytes, 4);
}

// An IDX pair of `count` 28x28 images with labels 0..9 in turn.
void WriteIdx(const std::string& images, const std::string& labels, uint32_t count) {
  std::ofstream image_file(images, std::ios::binary);
  WriteBigEndian(image_file, 0x00000803);
  WriteBigEndian(image_file, count);
  WriteBigEndian(image_file, 28);
  WriteBigEndian(image_file, 28);
  image_file << std::string(static_cast<size_t>(count) * 28 * 28, '\x80');
  std::ofstream label_file(labels, std::ios::binary);
  WriteBigEndian(label_file, 0x00000801);
  WriteBigEndian(label_file, count);
  for (uint32_t i = 0; i < count; ++i) label_file.put(static_cast<char>(i % 10));
}

const classifier::DatasetCatalog& Catalog() {
  static const classifier::DatasetCatalog* catalog = [] {
    const std::string root = std::filesystem::temp_directory_path().string() +
                             "/train_request_fuzzer-" + std::to_string(::getpid());
    const std::string mnist = root + "/mnist";
    std::filesystem::create_directories(mnist);
    WriteIdx(mnist + "/train-images-idx3-ubyte", mnist + "/train-labels-idx1-ubyte", 120);
    WriteIdx(mnist + "/t10k-images-idx3-ubyte", mnist + "/t10k-labels-idx1-ubyte", 20);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(std::filesystem::temp_directory_path().string() +
                                      "/train_request_fuzzer-" + std::to_string(::getpid()),
                                  ignored);
    });
    return new classifier::DatasetCatalog(root, /*fashion_fallback_dir=*/"");
  }();
  return *catalog;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Protobuf logs every string field that is not UTF-8: most fuzzed inputs. Nobody reads them.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  classifier::v1::TrainRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<classifier::TrainPlan> plan =
      classifier::PlanTraining(request, Catalog(), "cpu", /*registry=*/nullptr);
  if (plan.ok()) (void)classifier::ResolvedRequest(request, *plan);
  return 0;
}
