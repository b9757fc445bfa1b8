// Feeds a PredictRequest, parsed from the fuzzed protobuf bytes, to Predict's input checks and
// decoding (server/predict_input.h) at the default image side: CheckImage on every image, then
// WriteImagePixels for those it passes, and DecodeRequest / FillFromRequest for the whole call,
// as the service does. Every value written must be a grey value in [0, 1].
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "server/predict_input.h"

namespace {

constexpr int kSide = 28;  // The default architecture's image_size.

void CheckPixels(const std::vector<float>& pixels) {
  for (float value : pixels) {
    if (!(value >= 0.0f && value <= 1.0f)) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  classifier::v1::PredictRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  bool all_checked = true;
  bool any_encoded = false;
  for (int i = 0; i < request.images_size(); ++i) {
    const classifier::v1::Image& image = request.images(i);
    if (!classifier::CheckImage(image, i, kSide).ok()) {
      all_checked = false;
      continue;
    }
    any_encoded |= image.has_encoded();
    std::vector<float> pixels(kSide * kSide, -1.0f);
    if (classifier::WriteImagePixels(image, i, kSide, pixels.data()).ok()) CheckPixels(pixels);
  }
  if (!all_checked || request.images_size() == 0) return 0;
  classifier::PixelFill fill;
  if (any_encoded) {
    absl::StatusOr<classifier::PixelFill> decoded = classifier::DecodeRequest(request, kSide);
    if (!decoded.ok()) return 0;
    fill = *decoded;
  } else {
    fill = classifier::FillFromRequest(request, kSide);
  }
  std::vector<float> batch(static_cast<size_t>(request.images_size()) * kSide * kSide, -1.0f);
  if (fill(0, request.images_size(), batch.data()).ok()) CheckPixels(batch);
  return 0;
}
