// Image datasets in the official MNIST IDX format, plain or gzip'd.
//
// Images are held as uint8 (47 MB for 60,000 28x28 images) and normalised to [0, 1] per batch
// by the trainer, never stored as float. Nothing here depends on LibTorch.
#ifndef CLASSIFIER_BASE_DATASET_H_
#define CLASSIFIER_BASE_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace classifier {

// An in-memory image classification set. Immutable once loaded; safe to share across threads.
struct Dataset {
  int64_t rows = 0;
  int64_t cols = 0;
  int num_classes = 0;
  // size() * rows * cols bytes, row-major, image after image; 0 = background.
  std::vector<uint8_t> pixels;
  // size() labels, each in [0, num_classes).
  std::vector<uint8_t> labels;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t image_size() const { return rows * cols; }
};

// What an IDX file's header says, read without loading the body.
struct IdxHeader {
  uint8_t element_type = 0;         // 0x08 = unsigned byte, the only type MNIST uses.
  std::vector<int64_t> dimensions;  // {count, rows, cols} for images, {count} for labels.
};

// Reads a whole file, inflating it when it starts with the gzip magic (1f 8b).
// Errors name the file: NOT_FOUND when it does not exist, DATA_LOSS when the gzip stream is
// corrupt or truncated.
absl::StatusOr<std::string> ReadFileMaybeGzip(const std::string& path);

// Reads only the header of an IDX file (plain or gzip'd): cheap enough for request validation.
absl::StatusOr<IdxHeader> ReadIdxHeader(const std::string& path);

// Loads an image file (magic 0x00000803) and its label file (magic 0x00000801). Checks the
// magic numbers, the dimensions, that the body is exactly as long as the header says, that the
// two counts agree and that every label is below `num_classes`. Every error is
// INVALID_ARGUMENT / NOT_FOUND / DATA_LOSS with a message naming the file and what is wrong;
// never a crash.
absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path, int num_classes = 10);

// Serialises images or labels back to (uncompressed) IDX bytes; used by tests and by the
// tools that convert other sources into IDX files.
std::string EncodeIdxImages(const std::vector<uint8_t>& pixels, int64_t count, int64_t rows,
                            int64_t cols);
std::string EncodeIdxLabels(const std::vector<uint8_t>& labels);

}  // namespace classifier

#endif  // CLASSIFIER_BASE_DATASET_H_
