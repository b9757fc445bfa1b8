#include "tests/testing/synthetic_data.h"

#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

namespace classifier::testing {

Dataset MakeSyntheticDataset(int64_t count, int num_classes, uint64_t seed) {
  constexpr int kSide = 28;
  Dataset dataset;
  dataset.rows = kSide;
  dataset.cols = kSide;
  dataset.num_classes = num_classes;
  dataset.pixels.assign(static_cast<size_t>(count) * kSide * kSide, 0);
  dataset.labels.resize(static_cast<size_t>(count));
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<int> noise(0, 40);
  std::uniform_int_distribution<int> jitter(-1, 1);
  for (int64_t i = 0; i < count; ++i) {
    const int label = static_cast<int>(i % num_classes);
    dataset.labels[i] = static_cast<uint8_t>(label);
    uint8_t* image = dataset.pixels.data() + i * kSide * kSide;
    for (int p = 0; p < kSide * kSide; ++p) image[p] = static_cast<uint8_t>(noise(random));
    // Even classes: a vertical bar; odd: horizontal; position by class.
    const int position = 3 + (label / 2) * 22 / std::max(1, (num_classes + 1) / 2) + jitter(random);
    for (int along = 4; along < 24; ++along) {
      for (int width = 0; width < 3; ++width) {
        const int across = std::min(kSide - 1, std::max(0, position + width));
        const int row = label % 2 == 0 ? along : across;
        const int col = label % 2 == 0 ? across : along;
        image[row * kSide + col] = 255;
      }
    }
  }
  return dataset;
}

std::string GzipBytes(const std::string& contents) {
  z_stream stream{};
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&stream, contents.size()) + 64, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(contents.data()));
  stream.avail_in = static_cast<uInt>(contents.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  if (deflate(&stream, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("deflate failed");
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void WriteDatasetFiles(const std::string& directory, const Dataset& train, const Dataset& test,
                       bool gzip) {
  const std::string suffix = gzip ? ".gz" : "";
  auto write = [&](const std::string& name, const std::string& bytes) {
    WriteFile(directory + "/" + name + suffix, gzip ? GzipBytes(bytes) : bytes);
  };
  write("train-images-idx3-ubyte",
        EncodeIdxImages(train.pixels, train.size(), train.rows, train.cols));
  write("train-labels-idx1-ubyte", EncodeIdxLabels(train.labels));
  write("t10k-images-idx3-ubyte", EncodeIdxImages(test.pixels, test.size(), test.rows, test.cols));
  write("t10k-labels-idx1-ubyte", EncodeIdxLabels(test.labels));
}

TempDir::TempDir() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "classifier-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

Dataset MakeQuadrants(int64_t count, uint32_t seed, int num_classes, QuadrantLabels labels) {
  constexpr int kSide = 28;
  constexpr int kPixels = kSide * kSide;
  Dataset dataset;
  dataset.rows = kSide;
  dataset.cols = kSide;
  dataset.num_classes = num_classes;
  dataset.pixels.resize(count * kPixels);
  dataset.labels.resize(count);
  uint32_t state = seed;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 24;
  };
  for (int64_t i = 0; i < count; ++i) {
    const int label =
        labels == QuadrantLabels::kCycling ? static_cast<int>(i % 4) : static_cast<int>(next() % 4);
    dataset.labels[i] = static_cast<uint8_t>(label);
    uint8_t* image = dataset.pixels.data() + i * kPixels;
    for (int p = 0; p < kPixels; ++p) image[p] = static_cast<uint8_t>(next() % 40);
    const int top = (label / 2) * 14 + 2 + static_cast<int>(next() % 3);
    const int left = (label % 2) * 14 + 2 + static_cast<int>(next() % 3);
    for (int r = top; r < top + 10; ++r) {
      for (int c = left; c < left + 10; ++c) image[r * kSide + c] = 200 + next() % 56;
    }
  }
  return dataset;
}

}  // namespace classifier::testing
