// Image files in and out: decoding PNG / JPEG and converting any picture to a 28x28 grey image
// like MNIST's. No LibTorch.
#ifndef CLASSIFIER_BASE_IMAGE_H_
#define CLASSIFIER_BASE_IMAGE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace classifier {

// One byte of a grey picture (IDX files, 8-bit PNG / JPEG, raw_pixels, UINT8 tensors: 0 black,
// 255 white) as the network sees it, in [0, 1]: divided by 255, exactly as torchvision's ToTensor,
// so that a picture sent to Predict meets the same numbers the network was trained on.
inline constexpr float kPixelScale = 255.0f;
inline float PixelToUnit(uint8_t value) { return static_cast<float>(value) / kPixelScale; }

// A grey image, values in [0, 1], row-major.
struct GreyImage {
  int width = 0;
  int height = 0;
  std::vector<float> pixels;
};

// Decodes PNG or JPEG bytes (any bit depth, grey, palette, RGB or RGBA; alpha composited on
// white) to grey. Anything else, or a corrupt file, is INVALID_ARGUMENT saying why.
absl::StatusOr<GreyImage> DecodeImage(std::string_view encoded);

// Converts a picture to MNIST's convention: white digit on black, the digit scaled to fit
// 20x20 and centred by its centre of mass in a size x size frame. Dark-on-light pictures are
// inverted first. A picture that is already size x size on a dark background is kept as is.
std::vector<float> ToMnistLike(const GreyImage& image, int size = 28);

// DecodeImage then ToMnistLike.
absl::StatusOr<std::vector<float>> DecodeToMnistLike(std::string_view encoded, int size = 28);

// Grey 8-bit encoders, for tests, sample grids and tools.
absl::StatusOr<std::string> EncodePngGrey(const std::vector<uint8_t>& pixels, int width,
                                          int height);
absl::StatusOr<std::string> EncodeJpegGrey(const std::vector<uint8_t>& pixels, int width,
                                           int height, int quality = 95);

}  // namespace classifier

#endif  // CLASSIFIER_BASE_IMAGE_H_
