// ToMnistLike (declared in base/image.h): any grey picture to a frame like MNIST's digits,
// white ink on black, scaled to the digit box and centred by its centre of mass.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/image.h"

namespace classifier {
namespace {

// MNIST's digits were scaled to fit a 20x20 box inside the 28x28 frame.
constexpr int kMnistFrame = 28;
constexpr int kMnistDigitBox = 20;
// After inversion and background removal, a pixel brighter than this counts as ink.
constexpr float kInkThreshold = 0.1f;
// A picture whose brightest ink is this close to its background is blank.
constexpr float kMinContrast = 0.05f;
// Border means above this mean a light background (dark ink on paper).
constexpr float kLightBackground = 0.5f;

// ---------------------------------------------------------------------------------------------
// Resampling for ToMnistLike.

// Weights of the source samples that make up one output sample along one axis.
struct Tap {
  int source;
  float weight;
};

// Box (area-averaging) filter when shrinking, linear interpolation when enlarging: the first
// keeps thin strokes from vanishing, the second avoids blocky upscaled digits.
std::vector<std::vector<Tap>> AxisTaps(int source_size, int target_size) {
  std::vector<std::vector<Tap>> taps(target_size);
  const double scale = static_cast<double>(source_size) / target_size;
  for (int o = 0; o < target_size; ++o) {
    std::vector<Tap>& t = taps[o];
    if (scale > 1.0) {
      const double begin = o * scale;
      const double end = (o + 1) * scale;
      for (int s = static_cast<int>(std::floor(begin)); s < end && s < source_size; ++s) {
        const double covered = std::min<double>(s + 1, end) - std::max<double>(s, begin);
        if (covered > 0) t.push_back({s, static_cast<float>(covered / scale)});
      }
    } else {
      const double x = std::clamp((o + 0.5) * scale - 0.5, 0.0, source_size - 1.0);
      const int s0 = static_cast<int>(std::floor(x));
      const int s1 = std::min(s0 + 1, source_size - 1);
      const float f = static_cast<float>(x - s0);
      t.push_back({s0, 1.0f - f});
      if (s1 != s0 && f > 0) t.push_back({s1, f});
    }
  }
  return taps;
}

// Resamples the w x h image `in` (row-major) to tw x th.
std::vector<float> Resample(const std::vector<float>& in, int w, int h, int tw, int th) {
  const std::vector<std::vector<Tap>> x_taps = AxisTaps(w, tw);
  const std::vector<std::vector<Tap>> y_taps = AxisTaps(h, th);
  std::vector<float> rows(static_cast<size_t>(tw) * h, 0.0f);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < tw; ++x) {
      float sum = 0;
      for (const Tap& tap : x_taps[x])
        sum += tap.weight * in[static_cast<size_t>(y) * w + tap.source];
      rows[static_cast<size_t>(y) * tw + x] = sum;
    }
  }
  std::vector<float> out(static_cast<size_t>(tw) * th, 0.0f);
  for (int y = 0; y < th; ++y) {
    for (int x = 0; x < tw; ++x) {
      float sum = 0;
      for (const Tap& tap : y_taps[y])
        sum += tap.weight * rows[static_cast<size_t>(tap.source) * tw + x];
      out[static_cast<size_t>(y) * tw + x] = std::clamp(sum, 0.0f, 1.0f);
    }
  }
  return out;
}

float BorderMean(const GreyImage& image) {
  const int w = image.width;
  const int h = image.height;
  double sum = 0;
  int64_t count = 0;
  for (int x = 0; x < w; ++x) {
    sum += image.pixels[x];
    ++count;
    if (h > 1) {
      sum += image.pixels[static_cast<size_t>(h - 1) * w + x];
      ++count;
    }
  }
  for (int y = 1; y < h - 1; ++y) {
    sum += image.pixels[static_cast<size_t>(y) * w];
    ++count;
    if (w > 1) {
      sum += image.pixels[static_cast<size_t>(y) * w + w - 1];
      ++count;
    }
  }
  return static_cast<float>(sum / count);
}

}  // namespace

std::vector<float> ToMnistLike(const GreyImage& image, int size) {
  std::vector<float> frame(static_cast<size_t>(std::max(size, 0)) * std::max(size, 0), 0.0f);
  if (size <= 0 || image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height) {
    return frame;
  }
  const float border = BorderMean(image);
  if (image.width == size && image.height == size && border <= kLightBackground) {
    return image.pixels;
  }

  // White ink on black, with the background level at 0 and the brightest ink at 1.
  const bool invert = border > kLightBackground;
  const float background = invert ? 1.0f - border : border;
  std::vector<float> ink(image.pixels.size());
  float brightest = 0;
  for (size_t i = 0; i < ink.size(); ++i) {
    ink[i] = invert ? 1.0f - image.pixels[i] : image.pixels[i];
    brightest = std::max(brightest, ink[i]);
  }
  if (brightest - background < kMinContrast) return frame;
  for (float& v : ink) v = std::clamp((v - background) / (brightest - background), 0.0f, 1.0f);

  // Bounding box of the ink.
  const int w = image.width;
  const int h = image.height;
  int left = w, right = -1, top = h, bottom = -1;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      if (ink[static_cast<size_t>(y) * w + x] > kInkThreshold) {
        left = std::min(left, x);
        right = std::max(right, x);
        top = std::min(top, y);
        bottom = std::max(bottom, y);
      }
    }
  }
  if (right < 0) return frame;
  const int box_w = right - left + 1;
  const int box_h = bottom - top + 1;
  std::vector<float> box(static_cast<size_t>(box_w) * box_h);
  for (int y = 0; y < box_h; ++y) {
    std::copy_n(&ink[static_cast<size_t>(top + y) * w + left], box_w,
                &box[static_cast<size_t>(y) * box_w]);
  }

  // Longer side to the digit box (20 of 28), keeping the aspect ratio.
  const int digit_box = std::max(
      1, static_cast<int>(std::lround(static_cast<double>(size) * kMnistDigitBox / kMnistFrame)));
  const double scale = static_cast<double>(digit_box) / std::max(box_w, box_h);
  const int scaled_w = std::clamp(static_cast<int>(std::lround(box_w * scale)), 1, digit_box);
  const int scaled_h = std::clamp(static_cast<int>(std::lround(box_h * scale)), 1, digit_box);
  const std::vector<float> digit = Resample(box, box_w, box_h, scaled_w, scaled_h);

  // Centre of mass to the frame's centre, by whole pixels (no extra blur), never cropping.
  double mass = 0, mx = 0, my = 0;
  for (int y = 0; y < scaled_h; ++y) {
    for (int x = 0; x < scaled_w; ++x) {
      const float v = digit[static_cast<size_t>(y) * scaled_w + x];
      mass += v;
      mx += v * (x + 0.5);
      my += v * (y + 0.5);
    }
  }
  if (mass <= 0) return frame;
  const int offset_x =
      std::clamp(static_cast<int>(std::lround(size / 2.0 - mx / mass)), 0, size - scaled_w);
  const int offset_y =
      std::clamp(static_cast<int>(std::lround(size / 2.0 - my / mass)), 0, size - scaled_h);
  for (int y = 0; y < scaled_h; ++y) {
    std::copy_n(&digit[static_cast<size_t>(y) * scaled_w], scaled_w,
                &frame[static_cast<size_t>(offset_y + y) * size + offset_x]);
  }
  return frame;
}

absl::StatusOr<std::vector<float>> DecodeToMnistLike(std::string_view encoded, int size) {
  absl::StatusOr<GreyImage> image = DecodeImage(encoded);
  if (!image.ok()) return image.status();
  return ToMnistLike(*image, size);
}

}  // namespace classifier
