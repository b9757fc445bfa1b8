// Predict's input: the request's images (encoded PNG / JPEG, raw bytes or float values) as the
// grey values in [0, 1] that a network takes, side x side pixels per image, where the side is the
// model's architecture.image_size.
//
// Errors are INVALID_ARGUMENT naming the image ("images[3].raw_pixels: ..."). Every function is
// thread-safe (it only reads the request).
#ifndef CLASSIFIER_SERVER_PREDICT_INPUT_H_
#define CLASSIFIER_SERVER_PREDICT_INPUT_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "classifier/v1/classifier.pb.h"

namespace classifier {

// Writes images [first, first + count) of a call to `out`, image after image (as
// Batcher::Call::fill).
using PixelFill = std::function<absl::Status(int64_t first, int64_t count, float* out)>;

// Checks what costs nothing to check of images[index] (which field is set, its size), so that a
// malformed call is refused before it queues. Encoded images pass: only decoding tells.
absl::Status CheckImage(const v1::Image& image, int index, int side);

// Writes images[index] (checked by CheckImage) as side * side grey values in [0, 1] to `out`,
// decoding it when it is encoded.
absl::Status WriteImagePixels(const v1::Image& image, int index, int side, float* out);

// For a request without encoded images: a fill that converts the raw and float pixels straight
// into the batch. `request` is read in place and must outlive every call of the fill.
PixelFill FillFromRequest(const v1::PredictRequest& request, int side);

// For a request with encoded images: decodes every image now (which takes a while: call it off
// gRPC's threads) and returns a fill that copies the pixels; the first image that fails is the
// error.
absl::StatusOr<PixelFill> DecodeRequest(const v1::PredictRequest& request, int side);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_PREDICT_INPUT_H_
