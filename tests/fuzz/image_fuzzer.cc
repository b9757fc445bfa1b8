// Feeds DecodeImage and DecodeToMnistLike (base/image.h) the input as an encoded picture (PNG,
// JPEG or anything else). A picture that decodes must have as many pixels as it says, each in
// [0, 1]; its MNIST-like version is always 28 x 28.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view encoded(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<classifier::GreyImage> image = classifier::DecodeImage(encoded);
  if (!image.ok()) return 0;
  if (image->width < 1 || image->height < 1 ||
      image->pixels.size() != static_cast<size_t>(image->width) * image->height) {
    std::abort();
  }
  for (float value : image->pixels) {
    if (!(value >= 0.0f && value <= 1.0f)) std::abort();
  }
  absl::StatusOr<std::vector<float>> mnist = classifier::DecodeToMnistLike(encoded);
  if (!mnist.ok() || mnist->size() != 28 * 28) std::abort();
  return 0;
}
