#include "server/predict_input.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/image.h"

namespace classifier {

absl::Status CheckImage(const v1::Image& image, int index, int side) {
  const int pixels = side * side;
  switch (image.data_case()) {
    case v1::Image::kEncoded:
      return absl::OkStatus();  // Only decoding tells.
    case v1::Image::kRawPixels:
      if (image.raw_pixels().size() != static_cast<size_t>(pixels)) {
        return absl::InvalidArgumentError(
            absl::StrCat("images[", index, "].raw_pixels: ", image.raw_pixels().size(),
                         " bytes, want ", pixels, " (", side, "x", side, " grey)"));
      }
      return absl::OkStatus();
    case v1::Image::kFloatPixels:
      if (image.float_pixels().values_size() != pixels) {
        return absl::InvalidArgumentError(
            absl::StrCat("images[", index, "].float_pixels: ", image.float_pixels().values_size(),
                         " values, want ", pixels, " (", side, "x", side, " grey)"));
      }
      return absl::OkStatus();
    case v1::Image::DATA_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("images[", index, "] has no data: set encoded, raw_pixels or float_pixels"));
}

absl::Status WriteImagePixels(const v1::Image& image, int index, int side, float* out) {
  const int pixels = side * side;
  switch (image.data_case()) {
    case v1::Image::kEncoded: {
      absl::StatusOr<std::vector<float>> decoded = DecodeToMnistLike(image.encoded(), side);
      if (!decoded.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("images[", index, "].encoded: ", decoded.status().message()));
      }
      std::copy(decoded->begin(), decoded->end(), out);
      return absl::OkStatus();
    }
    case v1::Image::kRawPixels: {
      const std::string& raw = image.raw_pixels();
      for (int i = 0; i < pixels; ++i) {
        out[i] = PixelToUnit(static_cast<uint8_t>(raw[i]));
      }
      return absl::OkStatus();
    }
    case v1::Image::kFloatPixels: {
      const auto& values = image.float_pixels().values();
      for (int i = 0; i < pixels; ++i) {
        const float value = values[i];
        if (!(value >= 0.0f && value <= 1.0f)) {  // Also catches NaN.
          return absl::InvalidArgumentError(absl::StrCat("images[", index, "].float_pixels.values[",
                                                         i, "] is ", value,
                                                         ", want a value in [0, 1]"));
        }
        out[i] = value;
      }
      return absl::OkStatus();
    }
    case v1::Image::DATA_NOT_SET:
      break;
  }
  return CheckImage(image, index, side);
}

PixelFill FillFromRequest(const v1::PredictRequest& request, int side) {
  const int64_t pixels = int64_t{side} * side;
  return [&request, side, pixels](int64_t first, int64_t n, float* out) {
    for (int64_t i = first; i < first + n; ++i) {
      absl::Status status =
          WriteImagePixels(request.images(static_cast<int>(i)), static_cast<int>(i), side, out);
      if (!status.ok()) return status;
      out += pixels;
    }
    return absl::OkStatus();
  };
}

absl::StatusOr<PixelFill> DecodeRequest(const v1::PredictRequest& request, int side) {
  const int count = request.images_size();
  const int64_t pixels = int64_t{side} * side;
  // Shared: the batcher may copy the fill, and run it on several threads for disjoint ranges.
  auto decoded = std::make_shared<std::vector<float>>(static_cast<size_t>(count * pixels));
  for (int i = 0; i < count; ++i) {
    absl::Status status =
        WriteImagePixels(request.images(i), i, side, decoded->data() + i * pixels);
    if (!status.ok()) return status;
  }
  return PixelFill([decoded, pixels](int64_t first, int64_t n, float* out) {
    std::copy(decoded->data() + first * pixels, decoded->data() + (first + n) * pixels, out);
    return absl::OkStatus();
  });
}

}  // namespace classifier
