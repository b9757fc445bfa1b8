// Small, easy, deterministic image sets in MNIST's IDX layout, so that tests can train real
// networks in seconds without depending on any downloaded data.
#ifndef CLASSIFIER_TESTS_TESTING_SYNTHETIC_DATA_H_
#define CLASSIFIER_TESTS_TESTING_SYNTHETIC_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "base/dataset.h"

namespace classifier::testing {

// `count` 28x28 images of `num_classes` patterns (class c: a bright bar whose position and
// orientation depend on c, plus seeded noise), labels cycling through the classes.
Dataset MakeSyntheticDataset(int64_t count, int num_classes, uint64_t seed);

// How MakeQuadrants labels its images.
enum class QuadrantLabels { kRandom, kCycling };

// `count` 28x28 images of four easy classes: a bright 10x10 square in one quadrant (the label),
// faint noise elsewhere, all drawn from `seed`. Labels are drawn at random or cycle 0, 1, 2, 3;
// `num_classes` is what the dataset declares (4, or more for a network with spare outputs).
Dataset MakeQuadrants(int64_t count, uint32_t seed, int num_classes = 4,
                      QuadrantLabels labels = QuadrantLabels::kRandom);

// Writes train (and t10k) IDX files with the official names into `directory` (created).
// gzip'd when `gzip` is true.
void WriteDatasetFiles(const std::string& directory, const Dataset& train, const Dataset& test,
                       bool gzip);

// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes `contents` to `path` (plain, no atomicity needed in tests).
void WriteFile(const std::string& path, const std::string& contents);
std::string GzipBytes(const std::string& contents);

}  // namespace classifier::testing

#endif  // CLASSIFIER_TESTS_TESTING_SYNTHETIC_DATA_H_
