// classifier-idx-to-png: writes images of an IDX data set as PNG files, to have real pictures
// to send to `classifier-cli predict` (the demo and the end-to-end tests use it).
//
//   classifier-idx-to-png IMAGES_IDX LABELS_IDX OUT_DIR [COUNT] [FIRST]
//
// Writes OUT_DIR/<index>-label<label>.png for COUNT (default 5) images from index FIRST
// (default 0), and prints one line per file: `<path> <label>`.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "base/dataset.h"
#include "base/image.h"

int main(int argc, char** argv) {
  if (argc < 4 || argc > 6) {
    std::cerr << "usage: classifier-idx-to-png IMAGES_IDX LABELS_IDX OUT_DIR [COUNT] [FIRST]\n";
    return 2;
  }
  const std::string out_dir = argv[3];
  const int64_t count = argc > 4 ? std::atoll(argv[4]) : 5;
  const int64_t first = argc > 5 ? std::atoll(argv[5]) : 0;
  absl::StatusOr<classifier::Dataset> dataset = classifier::LoadIdxDataset(argv[1], argv[2]);
  if (!dataset.ok()) {
    std::cerr << "error: " << dataset.status().message() << "\n";
    return 1;
  }
  if (count < 0 || first < 0 || first + count > dataset->size()) {
    std::cerr << "error: images " << first << ".." << first + count << " are not all in the "
              << dataset->size() << " images of " << argv[1] << "\n";
    return 2;
  }
  std::filesystem::create_directories(out_dir);
  const int64_t pixels = dataset->image_size();
  for (int64_t index = first; index < first + count; ++index) {
    std::vector<uint8_t> image(dataset->pixels.begin() + index * pixels,
                               dataset->pixels.begin() + (index + 1) * pixels);
    absl::StatusOr<std::string> png = classifier::EncodePngGrey(
        image, static_cast<int>(dataset->cols), static_cast<int>(dataset->rows));
    if (!png.ok()) {
      std::cerr << "error: " << png.status().message() << "\n";
      return 1;
    }
    const int label = dataset->labels[index];
    const std::string path =
        out_dir + "/" + std::to_string(index) + "-label" + std::to_string(label) + ".png";
    std::ofstream(path, std::ios::binary) << *png;
    std::cout << path << " " << label << "\n";
  }
  return 0;
}
