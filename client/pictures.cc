#include "client/pictures.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/image.h"
#include "client/weights_file.h"

namespace classifier::cli {
namespace {

constexpr int kMaxScale = 16;
constexpr char kFont[] = "font-family=\"sans-serif\"";

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\n' || c == '\t') out += c;
    }
  }
  return out;
}

std::string SvgHeader(int width, int height) {
  return absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\">\n"
      "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
      width, height, width, height, width, height);
}

// <text> at (x, y); `anchor` start, middle or end; `extra` more attributes.
std::string Text(double x, double y, const std::string& text, int size,
                 const char* anchor = "middle", const std::string& extra = "") {
  return absl::StrFormat(
      "<text x=\"%.1f\" y=\"%.1f\" %s font-size=\"%d\" text-anchor=\"%s\"%s>%s</text>\n", x, y,
      kFont, size, anchor, extra.empty() ? "" : " " + extra, Escape(text));
}

std::string FormatValue(double value) { return absl::StrFormat("%.9g", value); }

// Axis ticks: a step of 1, 2 or 5 times a power of ten giving about `target` intervals over
// [lo, hi], and the range widened to whole steps.
struct Ticks {
  double lo = 0;
  double hi = 1;
  double step = 1;
  int decimals = 0;
};

Ticks NiceTicks(double lo, double hi, int target = 5) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return Ticks{};
  if (hi - lo < 1e-12) {
    const double pad = std::max(std::abs(hi) * 0.1, 1e-3);
    lo -= pad;
    hi += pad;
  }
  const double rough = (hi - lo) / target;
  const double power = std::pow(10.0, std::floor(std::log10(rough)));
  double step = power;
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    step = factor * power;
    if (step >= rough) break;
  }
  Ticks ticks;
  ticks.step = step;
  ticks.lo = std::floor(lo / step + 1e-9) * step;
  ticks.hi = std::ceil(hi / step - 1e-9) * step;
  ticks.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  return ticks;
}

}  // namespace

absl::StatusOr<SampleGrid> LayOutSamples(const v1::GetDatasetSamplesResponse& samples, int columns,
                                         int scale) {
  const int count = samples.labels_size();
  const int64_t width = samples.image_width();
  const int64_t height = samples.image_height();
  if (scale < 1 || scale > kMaxScale) {
    return absl::InvalidArgumentError(
        absl::StrCat("--scale must be in [1, ", kMaxScale, "], got ", scale));
  }
  if (columns < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--columns must be >= 0, got ", columns));
  }
  if (count == 0 || width < 1 || height < 1 ||
      static_cast<int64_t>(samples.pixels().size()) != count * width * height) {
    return absl::InvalidArgumentError(absl::StrCat("the server sent ", samples.pixels().size(),
                                                   " bytes for ", count, " images of ", height, "x",
                                                   width, " pixels"));
  }
  SampleGrid grid;
  grid.columns = columns > 0 ? std::min(columns, count)
                             : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(count))));
  grid.rows = (count + grid.columns - 1) / grid.columns;
  const int tile_width = static_cast<int>(width) * scale;
  const int tile_height = static_cast<int>(height) * scale;
  grid.width = kGridGap + grid.columns * (tile_width + kGridGap);
  grid.height = kGridGap + grid.rows * (tile_height + kGridGap);
  grid.pixels.assign(static_cast<size_t>(grid.width) * grid.height, kGridGapValue);
  const auto* source = reinterpret_cast<const uint8_t*>(samples.pixels().data());
  for (int i = 0; i < count; ++i) {
    const int left = kGridGap + (i % grid.columns) * (tile_width + kGridGap);
    const int top = kGridGap + (i / grid.columns) * (tile_height + kGridGap);
    const uint8_t* image = source + i * width * height;
    for (int y = 0; y < tile_height; ++y) {
      for (int x = 0; x < tile_width; ++x) {
        grid.pixels[static_cast<size_t>(top + y) * grid.width + left + x] =
            image[(y / scale) * width + x / scale];
      }
    }
  }
  return grid;
}

absl::StatusOr<std::string> EncodeGridPng(const SampleGrid& grid) {
  return EncodePngGrey(grid.pixels, grid.width, grid.height);
}

std::string ConfusionMatrixSvg(const v1::EvaluateResponse& evaluation) {
  const int n = evaluation.confusion_matrix_size();
  const int cell = std::clamp(480 / std::max(n, 1), 18, 48);
  const int font = std::clamp(cell * 3 / 10, 7, 14);
  const int left = 90;
  const int top = 90;
  const int width = left + n * cell + 30;
  const int height = top + n * cell + 30;
  int64_t largest = 0;
  for (const v1::ConfusionRow& row : evaluation.confusion_matrix()) {
    for (int64_t count : row.counts()) largest = std::max(largest, count);
  }

  std::string svg = SvgHeader(width, height);
  absl::StrAppend(
      &svg, Text(width / 2.0, 22,
                 absl::StrFormat("confusion matrix: model %s on %s (%s), accuracy %.2f%%",
                                 evaluation.model_id(), evaluation.dataset(),
                                 evaluation.split() == v1::DATASET_SPLIT_TRAIN ? "train" : "test",
                                 100 * evaluation.accuracy()),
                 13, "middle", "class=\"title\""));
  absl::StrAppend(&svg, Text(left + n * cell / 2.0, 48, "predicted class", 12, "middle",
                             "class=\"axis-title\""));
  const double middle_y = top + n * cell / 2.0;
  absl::StrAppend(
      &svg,
      Text(24, middle_y, "true class", 12, "middle",
           absl::StrFormat("class=\"axis-title\" transform=\"rotate(-90 24 %.1f)\"", middle_y)));
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&svg, Text(left + (i + 0.5) * cell, top - 8, absl::StrCat(i), font, "middle",
                               "class=\"predicted-label\""));
    absl::StrAppend(&svg, Text(left - 8, top + (i + 0.5) * cell + font / 3.0, absl::StrCat(i), font,
                               "end", "class=\"true-label\""));
  }
  for (int t = 0; t < n; ++t) {
    const v1::ConfusionRow& row = evaluation.confusion_matrix(t);
    for (int p = 0; p < row.counts_size(); ++p) {
      const int64_t count = row.counts(p);
      // The square root, so that a handful of confusions still shows beside a full diagonal.
      const double shade = largest > 0 ? std::sqrt(static_cast<double>(count) / largest) : 0;
      // White to dark blue (8, 48, 107).
      const int r = static_cast<int>(std::lround(255 + shade * (8 - 255)));
      const int g = static_cast<int>(std::lround(255 + shade * (48 - 255)));
      const int b = static_cast<int>(std::lround(255 + shade * (107 - 255)));
      const double x = left + p * cell;
      const double y = top + t * cell;
      absl::StrAppendFormat(&svg,
                            "<rect class=\"cell\" data-true=\"%d\" data-predicted=\"%d\" "
                            "data-count=\"%d\" x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" "
                            "fill=\"rgb(%d,%d,%d)\" stroke=\"#ccc\" stroke-width=\"0.5\"/>\n",
                            t, p, count, x, y, cell, cell, r, g, b);
      absl::StrAppend(
          &svg,
          Text(x + cell / 2.0, y + cell / 2.0 + font / 3.0, absl::StrCat(count), font, "middle",
               absl::StrFormat("class=\"count\" fill=\"%s\"", shade > 0.5 ? "white" : "black")));
    }
  }
  absl::StrAppend(&svg, "</svg>\n");
  return svg;
}

std::string TrainingCurvesSvg(const std::string& job_id,
                              const std::vector<v1::JobEvent::EpochEnd>& epochs,
                              const std::vector<int>& trials) {
  constexpr int kPanelWidth = 380;
  constexpr int kPanelHeight = 260;
  constexpr int kLeft = 70;
  constexpr int kTop = 60;
  constexpr int kPanelStride = kLeft + kPanelWidth + 40;
  constexpr int kWidth = 2 * kPanelStride;
  constexpr int kLegendPerRow = 4;
  constexpr int kLegendSpacing = 95;
  constexpr int kLegendRowHeight = 18;
  // Trial colours (matplotlib's tab10); a plain job draws train in the first, validation in
  // the fourth.
  static constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                             "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  constexpr int kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

  auto trial_of = [&](size_t i) { return i < trials.size() ? trials[i] : 0; };
  std::vector<int> distinct_trials;
  for (size_t i = 0; i < epochs.size(); ++i) distinct_trials.push_back(trial_of(i));
  std::sort(distinct_trials.begin(), distinct_trials.end());
  distinct_trials.erase(std::unique(distinct_trials.begin(), distinct_trials.end()),
                        distinct_trials.end());
  if (distinct_trials.empty()) distinct_trials.push_back(0);
  const bool sweep = distinct_trials.size() > 1 || distinct_trials[0] != 0;

  struct Series {
    const char* name;
    bool validation;
    std::function<bool(const v1::JobEvent::EpochEnd&)> has;
    std::function<double(const v1::JobEvent::EpochEnd&)> value;
  };
  auto always = [](const v1::JobEvent::EpochEnd&) { return true; };
  const std::vector<Series> loss_series = {
      {"train-loss", false, always, [](const v1::JobEvent::EpochEnd& e) { return e.train_loss(); }},
      {"validation-loss", true,
       [](const v1::JobEvent::EpochEnd& e) { return e.has_validation_loss(); },
       [](const v1::JobEvent::EpochEnd& e) { return e.validation_loss(); }},
  };
  const std::vector<Series> accuracy_series = {
      {"train-accuracy", false, always,
       [](const v1::JobEvent::EpochEnd& e) { return e.train_accuracy(); }},
      {"validation-accuracy", true,
       [](const v1::JobEvent::EpochEnd& e) { return e.has_validation_accuracy(); },
       [](const v1::JobEvent::EpochEnd& e) { return e.validation_accuracy(); }},
  };
  // One drawn line: a series of one trial.
  struct Line {
    const Series* series;
    int trial;
    std::string colour;
    std::string legend;
  };
  auto lines_of = [&](const std::vector<Series>& series) {
    std::vector<Line> lines;
    for (size_t t = 0; t < distinct_trials.size(); ++t) {
      for (const Series& s : series) {
        const int trial = distinct_trials[t];
        const std::string colour =
            sweep ? kPalette[t % kPaletteSize] : (s.validation ? kPalette[3] : kPalette[0]);
        const std::string legend = sweep ? absl::StrCat("trial ", trial)
                                         : std::string(s.validation ? "validation" : "train");
        lines.push_back(Line{&s, trial, colour, legend});
      }
    }
    return lines;
  };
  const int legend_entries = sweep ? static_cast<int>(distinct_trials.size()) : 2;
  const int legend_rows = (legend_entries + kLegendPerRow - 1) / kLegendPerRow + (sweep ? 1 : 0);
  const int height = kTop + kPanelHeight + 72 + legend_rows * kLegendRowHeight;

  int last_epoch = 1;
  for (const auto& epoch : epochs) last_epoch = std::max(last_epoch, epoch.epoch());
  const Ticks x_ticks = [&] {
    Ticks ticks = NiceTicks(1, std::max(last_epoch, 2), std::min(last_epoch, 10));
    ticks.step = std::max(1.0, std::round(ticks.step));
    ticks.lo = 1;
    ticks.hi = std::max(last_epoch, 2);
    ticks.decimals = 0;
    return ticks;
  }();

  std::string svg = SvgHeader(kWidth, height);
  std::string title =
      absl::StrFormat("job %s: %d epoch%s", job_id, epochs.size(), epochs.size() == 1 ? "" : "s");
  if (sweep) absl::StrAppend(&title, absl::StrFormat(" in %d trials", distinct_trials.size()));
  absl::StrAppend(&svg, Text(kWidth / 2.0, 24, title, 14, "middle", "class=\"title\""));

  auto panel = [&](int index, const char* title, const char* y_title,
                   const std::vector<Series>& series, double percent) {
    const double left = index * kPanelStride + kLeft;
    const double right = left + kPanelWidth;
    const double top = kTop;
    const double bottom = kTop + kPanelHeight;
    double lo = std::numeric_limits<double>::infinity();
    double hi = -std::numeric_limits<double>::infinity();
    for (const Series& s : series) {
      for (const auto& epoch : epochs) {
        if (!s.has(epoch) || !std::isfinite(s.value(epoch))) continue;
        lo = std::min(lo, s.value(epoch) * percent);
        hi = std::max(hi, s.value(epoch) * percent);
      }
    }
    if (!std::isfinite(lo)) {
      lo = 0;
      hi = 1;
    }
    if (percent == 1) lo = std::min(lo, 0.0);  // Loss from zero.
    const Ticks y = NiceTicks(lo, hi);
    auto to_x = [&](double epoch) {
      return left + (epoch - x_ticks.lo) / (x_ticks.hi - x_ticks.lo) * kPanelWidth;
    };
    auto to_y = [&](double value) {
      return bottom - (value - y.lo) / (y.hi - y.lo) * kPanelHeight;
    };

    absl::StrAppend(&svg, absl::StrFormat("<g class=\"panel\" id=\"%s\">\n", title));
    absl::StrAppend(
        &svg, Text((left + right) / 2, top - 10, title, 13, "middle", "class=\"panel-title\""));
    // Grid lines and ticks.
    for (double value = y.lo; value <= y.hi + y.step / 2; value += y.step) {
      const double py = to_y(value);
      absl::StrAppendFormat(&svg,
                            "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                            "stroke=\"#e0e0e0\"/>\n",
                            left, py, right, py);
      absl::StrAppendFormat(&svg,
                            "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                            "stroke=\"black\"/>\n",
                            left - 5, py, left, py);
      absl::StrAppend(&svg, Text(left - 8, py + 4, absl::StrFormat("%.*f", y.decimals, value), 11,
                                 "end", "class=\"y-tick-label\""));
    }
    for (double epoch = x_ticks.lo; epoch <= x_ticks.hi + 0.5; epoch += x_ticks.step) {
      const double px = to_x(epoch);
      absl::StrAppendFormat(&svg,
                            "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                            "stroke=\"black\"/>\n",
                            px, bottom, px, bottom + 5);
      absl::StrAppend(&svg, Text(px, bottom + 18, absl::StrFormat("%.0f", epoch), 11, "middle",
                                 "class=\"x-tick-label\""));
    }
    // Axes.
    absl::StrAppendFormat(&svg,
                          "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                          "stroke=\"black\"/>\n"
                          "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                          "stroke=\"black\"/>\n",
                          left, bottom, right, bottom, left, top, left, bottom);
    absl::StrAppend(
        &svg, Text((left + right) / 2, bottom + 38, "epoch", 12, "middle", "class=\"axis-title\""));
    const double middle_y = (top + bottom) / 2;
    absl::StrAppend(&svg, Text(left - 52, middle_y, y_title, 12, "middle",
                               absl::StrFormat("class=\"axis-title\" transform=\"rotate(-90 "
                                               "%.1f %.1f)\"",
                                               left - 52, middle_y)));
    // The lines, then a legend below the axis title: per trial in a sweep (train solid,
    // validation dashed), else train and validation.
    std::vector<std::pair<std::string, std::string>> legend;  // (colour and dash, text)
    for (const Line& line : lines_of(series)) {
      const Series& s = *line.series;
      const std::string dash = s.validation ? " stroke-dasharray=\"6 3\"" : "";
      std::string points;
      std::string circles;
      for (size_t i = 0; i < epochs.size(); ++i) {
        const auto& epoch = epochs[i];
        if (trial_of(i) != line.trial || !s.has(epoch) || !std::isfinite(s.value(epoch))) {
          continue;
        }
        const double px = to_x(epoch.epoch());
        const double py = to_y(s.value(epoch) * percent);
        absl::StrAppendFormat(&points, "%s%.1f,%.1f", points.empty() ? "" : " ", px, py);
        absl::StrAppendFormat(&circles,
                              "<circle class=\"%s\" data-trial=\"%d\" data-epoch=\"%d\" "
                              "data-value=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                              s.name, line.trial, epoch.epoch(), FormatValue(s.value(epoch)), px,
                              py, line.colour);
      }
      if (circles.empty()) continue;
      absl::StrAppendFormat(&svg,
                            "<polyline class=\"%s\" data-trial=\"%d\" points=\"%s\" fill=\"none\" "
                            "stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                            s.name, line.trial, points, line.colour, dash);
      absl::StrAppend(&svg, circles);
      if (!sweep || !s.validation) {
        legend.emplace_back(absl::StrCat("stroke=\"", line.colour, "\"", sweep ? "" : dash),
                            line.legend);
      }
    }
    if (sweep) {
      legend.emplace_back("stroke=\"black\"", "train");
      legend.emplace_back("stroke=\"black\" stroke-dasharray=\"6 3\"", "validation");
    }
    for (size_t i = 0; i < legend.size(); ++i) {
      const double lx = left + static_cast<double>(i % kLegendPerRow) * kLegendSpacing;
      const double ly = bottom + 62 + static_cast<double>(i / kLegendPerRow) * kLegendRowHeight;
      absl::StrAppendFormat(&svg,
                            "<line class=\"legend\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                            "y2=\"%.1f\" stroke-width=\"2\" %s/>\n",
                            lx, ly - 4, lx + 24, ly - 4, legend[i].first);
      absl::StrAppend(&svg, Text(lx + 30, ly, legend[i].second, 11, "start", "class=\"legend\""));
    }
    absl::StrAppend(&svg, "</g>\n");
  };
  panel(0, "loss", "loss (cross-entropy)", loss_series, 1);
  panel(1, "accuracy", "accuracy (%)", accuracy_series, 100);
  if (epochs.empty()) {
    absl::StrAppend(&svg, Text(kWidth / 2.0, kTop + kPanelHeight / 2.0, "no epoch has ended yet",
                               14, "middle", "class=\"note\""));
  }
  absl::StrAppend(&svg, "</svg>\n");
  return svg;
}

absl::Status WriteOutputFile(const std::string& path, const std::string& contents) {
  absl::StatusOr<std::unique_ptr<VerifiedFileWriter>> file = VerifiedFileWriter::Create(path);
  if (!file.ok()) return file.status();
  if (absl::Status status = (*file)->Append(contents); !status.ok()) return status;
  return (*file)->Commit(static_cast<int64_t>(contents.size()), Sha256Hex(contents));
}

}  // namespace classifier::cli
