// The pictures classifier-cli writes: the sample grid's layout (decoded back from the PNG),
// the SVGs' cells and points, and output files that are whole or absent.
#include "client/pictures.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/image.h"
#include "tests/testing/synthetic_data.h"

namespace classifier::cli {
namespace {

int Occurrences(const std::string& text, const std::string& what) {
  int count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++count;
  }
  return count;
}

// `count` images of 3 rows x 2 columns; pixel p of image i is 10 * i + p + 1.
v1::GetDatasetSamplesResponse FakeSamples(int count) {
  v1::GetDatasetSamplesResponse samples;
  samples.set_image_height(3);
  samples.set_image_width(2);
  std::string pixels;
  for (int i = 0; i < count; ++i) {
    samples.add_labels(i % 10);
    for (int p = 0; p < 6; ++p) pixels.push_back(static_cast<char>(10 * i + p + 1));
  }
  samples.set_pixels(pixels);
  return samples;
}

TEST(SampleGridTest, TilesSitWhereTheHeaderSaysWithGapsBetween) {
  absl::StatusOr<SampleGrid> grid = LayOutSamples(FakeSamples(5));
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_EQ(grid->columns, 3);  // ceil(sqrt(5))
  EXPECT_EQ(grid->rows, 2);
  EXPECT_EQ(grid->width, kGridGap + 3 * (2 + kGridGap));
  EXPECT_EQ(grid->height, kGridGap + 2 * (3 + kGridGap));
  std::vector<bool> in_tile(grid->pixels.size(), false);
  for (int i = 0; i < 5; ++i) {
    const int left = kGridGap + (i % 3) * (2 + kGridGap);
    const int top = kGridGap + (i / 3) * (3 + kGridGap);
    for (int y = 0; y < 3; ++y) {
      for (int x = 0; x < 2; ++x) {
        const size_t at = static_cast<size_t>(top + y) * grid->width + left + x;
        EXPECT_EQ(grid->pixels[at], 10 * i + y * 2 + x + 1) << i;
        in_tile[at] = true;
      }
    }
  }
  for (size_t at = 0; at < in_tile.size(); ++at) {
    if (!in_tile[at]) {
      EXPECT_EQ(grid->pixels[at], kGridGapValue) << at;
    }
  }
}

TEST(SampleGridTest, ScaleRepeatsPixelsAndColumnsAreHonoured) {
  absl::StatusOr<SampleGrid> grid = LayOutSamples(FakeSamples(4), /*columns=*/4, /*scale=*/2);
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_EQ(grid->rows, 1);
  EXPECT_EQ(grid->width, kGridGap + 4 * (4 + kGridGap));
  EXPECT_EQ(grid->height, kGridGap + 6 + kGridGap);
  // Image 1's bottom-right pixel (value 16) covers a 2x2 block.
  const int left = kGridGap + 1 * (4 + kGridGap);
  for (int y = 4; y < 6; ++y) {
    for (int x = 2; x < 4; ++x) {
      EXPECT_EQ(grid->pixels[static_cast<size_t>(kGridGap + y) * grid->width + left + x], 16);
    }
  }
  EXPECT_FALSE(LayOutSamples(FakeSamples(4), 0, /*scale=*/0).ok());
  EXPECT_FALSE(LayOutSamples(FakeSamples(4), 0, /*scale=*/17).ok());
}

TEST(SampleGridTest, RefusesPixelsThatDoNotMatchTheLabels) {
  v1::GetDatasetSamplesResponse samples = FakeSamples(3);
  samples.mutable_pixels()->pop_back();
  absl::StatusOr<SampleGrid> grid = LayOutSamples(samples);
  EXPECT_EQ(grid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(LayOutSamples(v1::GetDatasetSamplesResponse()).ok());
}

TEST(SampleGridTest, PngDecodesToTheGrid) {
  absl::StatusOr<SampleGrid> grid = LayOutSamples(FakeSamples(7), 0, 3);
  ASSERT_TRUE(grid.ok());
  absl::StatusOr<std::string> png = EncodeGridPng(*grid);
  ASSERT_TRUE(png.ok()) << png.status();
  absl::StatusOr<GreyImage> decoded = DecodeImage(*png);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->width, grid->width);
  ASSERT_EQ(decoded->height, grid->height);
  for (size_t i = 0; i < grid->pixels.size(); ++i) {
    ASSERT_EQ(std::lround(decoded->pixels[i] * 255), grid->pixels[i]) << i;
  }
}

TEST(ConfusionMatrixSvgTest, OneShadedCellPerPairWithItsCountAndEscapedText) {
  v1::EvaluateResponse evaluation;
  evaluation.set_model_id("m<&>\"1");
  evaluation.set_dataset("digits");
  evaluation.set_accuracy(0.5);
  const int counts[3][3] = {{7, 0, 1}, {2, 5, 0}, {0, 3, 9}};
  for (const auto& row : counts) {
    v1::ConfusionRow* out = evaluation.add_confusion_matrix();
    for (int count : row) out->add_counts(count);
  }
  const std::string svg = ConfusionMatrixSvg(evaluation);
  EXPECT_EQ(Occurrences(svg, "<rect class=\"cell\""), 9);
  EXPECT_NE(svg.find("data-true=\"2\" data-predicted=\"1\" data-count=\"3\""), std::string::npos);
  EXPECT_NE(svg.find("data-count=\"9\" x="), std::string::npos);
  // The largest count is the darkest; zero is white.
  EXPECT_NE(svg.find("data-count=\"9\" x=\"186.0\" y=\"186.0\" width=\"48\" height=\"48\" "
                     "fill=\"rgb(8,48,107)\""),
            std::string::npos)
      << svg;
  EXPECT_EQ(Occurrences(svg, "fill=\"rgb(255,255,255)\""), 3);
  EXPECT_EQ(Occurrences(svg, "class=\"count\""), 9);
  EXPECT_NE(svg.find(">predicted class</text>"), std::string::npos);
  EXPECT_NE(svg.find(">true class</text>"), std::string::npos);
  EXPECT_NE(svg.find("m&lt;&amp;&gt;&quot;1"), std::string::npos);
  EXPECT_EQ(svg.find("m<&"), std::string::npos);
  EXPECT_NE(svg.find("accuracy 50.00%"), std::string::npos);
}

v1::JobEvent::EpochEnd Epoch(int epoch, double loss, double accuracy, bool validation) {
  v1::JobEvent::EpochEnd end;
  end.set_epoch(epoch);
  end.set_epochs(3);
  end.set_train_loss(loss);
  end.set_train_accuracy(accuracy);
  if (validation) {
    end.set_validation_loss(loss * 1.1);
    end.set_validation_accuracy(accuracy * 0.99);
  }
  return end;
}

TEST(TrainingCurvesSvgTest, OnePointPerEpochAndSeries) {
  const std::string svg = TrainingCurvesSvg(
      "job-1", {Epoch(1, 0.9, 0.7, true), Epoch(2, 0.4, 0.9, true), Epoch(3, 0.25, 0.95, true)});
  for (const char* series :
       {"train-loss", "validation-loss", "train-accuracy", "validation-accuracy"}) {
    EXPECT_EQ(Occurrences(svg, absl::StrCat("<circle class=\"", series, "\"")), 3) << series;
    EXPECT_EQ(Occurrences(svg, absl::StrCat("<polyline class=\"", series, "\"")), 1) << series;
  }
  EXPECT_NE(svg.find("data-epoch=\"2\" data-value=\"0.4\""), std::string::npos);
  EXPECT_NE(svg.find("data-epoch=\"3\" data-value=\"0.95\""), std::string::npos);
  EXPECT_NE(svg.find(">accuracy (%)</text>"), std::string::npos);
  EXPECT_NE(svg.find(">epoch</text>"), std::string::npos);
  EXPECT_EQ(Occurrences(svg, "class=\"axis\""), 4);

  const std::string train_only = TrainingCurvesSvg("job-2", {Epoch(1, 0.5, 0.8, false)});
  EXPECT_EQ(Occurrences(train_only, "<circle class=\"train-loss\""), 1);
  EXPECT_EQ(train_only.find("validation-loss"), std::string::npos);
  const std::string empty = TrainingCurvesSvg("job-3", {});
  EXPECT_NE(empty.find("no epoch has ended yet"), std::string::npos);
  EXPECT_EQ(empty.find("<circle"), std::string::npos);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

TEST(WriteOutputFileTest, ReplacesWholeOrFailsNamingThePath) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  const std::string path = dir + "/plot.svg";
  ASSERT_TRUE(WriteOutputFile(path, "first").ok());
  ASSERT_TRUE(WriteOutputFile(path, "second, longer").ok());
  EXPECT_EQ(ReadAll(path), "second, longer");
  absl::Status failed = WriteOutputFile(dir + "/missing/plot.svg", "x");
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find(dir + "/missing/plot.svg"), std::string::npos)
      << failed.message();
  std::remove(path.c_str());
  EXPECT_EQ(rmdir(dir.c_str()), 0) << "only plot.svg was left in the directory";
}

TEST(TrainingCurvesSvgTest, ASweepDrawsEveryTrialInItsOwnColour) {
  const std::string svg = TrainingCurvesSvg("job-4",
                                            {Epoch(1, 0.9, 0.7, true), Epoch(2, 0.5, 0.8, true),
                                             Epoch(1, 0.8, 0.75, true), Epoch(2, 0.3, 0.9, true)},
                                            {1, 1, 2, 2});
  EXPECT_EQ(Occurrences(svg, "<circle class=\"validation-accuracy\""), 4);
  EXPECT_EQ(Occurrences(svg, "<polyline class=\"train-loss\""), 2);
  EXPECT_NE(svg.find("<circle class=\"train-loss\" data-trial=\"2\" data-epoch=\"2\" "
                     "data-value=\"0.3\""),
            std::string::npos);
  EXPECT_NE(svg.find(">trial 1</text>"), std::string::npos);
  EXPECT_NE(svg.find(">trial 2</text>"), std::string::npos);
  EXPECT_NE(svg.find("in 2 trials"), std::string::npos);
  EXPECT_NE(svg.find("stroke=\"#ff7f0e\""), std::string::npos);  // The second trial's colour.
}

}  // namespace
}  // namespace classifier::cli
