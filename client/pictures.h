// Pictures that classifier-cli writes: a grid of dataset samples (PNG, through libpng in
// classifier_data, which has no LibTorch), the confusion matrix and the training curves (SVG:
// text, axes and labels without a font library). The layouts are documented in client/README.md
// and checked by tests/e2e/pictures_e2e_test.sh.
#ifndef CLASSIFIER_CLIENT_PICTURES_H_
#define CLASSIFIER_CLIENT_PICTURES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "classifier/v1/classifier.pb.h"

namespace classifier::cli {

// Grey pixels between and around the tiles of a sample grid, and their value (mid grey, so that
// a tile's black background shows where it ends).
inline constexpr int kGridGap = 2;
inline constexpr uint8_t kGridGapValue = 128;

// A grid of images, row-major, `columns` tiles a row (0 = ceil(sqrt(count))). Tile i sits in
// grid row i / columns, column i % columns, its top-left pixel at
// (kGridGap + column * (scale * width + kGridGap), kGridGap + row * (scale * height + kGridGap)),
// each pixel repeated scale x scale times.
struct SampleGrid {
  int columns = 0;
  int rows = 0;
  int width = 0;   // Pixels.
  int height = 0;  // Pixels.
  std::vector<uint8_t> pixels;
};

// Lays out the response's images. INVALID_ARGUMENT when the pixels do not match the labels and
// the image size, or `scale` is outside [1, 16].
absl::StatusOr<SampleGrid> LayOutSamples(const v1::GetDatasetSamplesResponse& samples,
                                         int columns = 0, int scale = 1);
// The grid as an 8-bit grey PNG.
absl::StatusOr<std::string> EncodeGridPng(const SampleGrid& grid);

// The confusion matrix of an evaluation as an SVG document: one <rect class="cell"> per
// (true, predicted) pair with data-true, data-predicted and data-count, shaded from white (0)
// to dark blue (the largest count) by the square root of the count's share of the largest, the
// count written in it; class labels along both axes,
// "predicted class" and "true class" as axis titles, and a title with the model, dataset,
// split and accuracy.
std::string ConfusionMatrixSvg(const v1::EvaluateResponse& evaluation);

// A job's loss and accuracy per epoch as an SVG document: two panels ("loss", "accuracy (%)")
// with axes, ticks and tick labels, epoch on the x axis; per series (train-loss,
// validation-loss, train-accuracy, validation-accuracy; validation only when the job has a
// validation split) and trial a <polyline> and one <circle> per epoch with data-trial,
// data-epoch and data-value (the event's value; accuracies as fractions); a legend.
// `trials[i]` is the sweep trial of `epochs[i]` (JobEvent.trial; empty = all 0, a plain job):
// a sweep draws each trial in its own colour, train solid and validation dashed.
std::string TrainingCurvesSvg(const std::string& job_id,
                              const std::vector<v1::JobEvent::EpochEnd>& epochs,
                              const std::vector<int>& trials = {});

// Writes `contents` to `path` so that it is either the whole new file or untouched: a temporary
// file in the same directory, fsync'd, renamed over `path`, the directory fsync'd. Errors name
// the path.
absl::Status WriteOutputFile(const std::string& path, const std::string& contents);

}  // namespace classifier::cli

#endif  // CLASSIFIER_CLIENT_PICTURES_H_
