#include "model/augment.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace classifier {
namespace {

using ::testing::HasSubstr;

constexpr int kSide = 28;
constexpr int kPixels = kSide * kSide;

// `count` images, each a bright bar at a position of its own on a dark background.
ImageBatch Bars(int count) {
  ImageBatch batch;
  batch.pixels.assign(static_cast<size_t>(count) * kPixels, 0.0f);
  for (int i = 0; i < count; ++i) {
    batch.labels.push_back(i % 10);
    float* image = batch.pixels.data() + static_cast<size_t>(i) * kPixels;
    const int row = 6 + i % 16;
    for (int c = 4; c < 20; ++c) image[row * kSide + c] = 1.0f;
    image[(row + 2) * kSide + 8] = 0.5f;
  }
  return batch;
}

double MaxDifference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double{a[i]} - b[i]));
  return worst;
}

TEST(AugmentTest, ZeroRotationAndTranslationIsTheIdentity) {
  const ImageBatch batch = Bars(8);
  AugmentationOptions options;
  EXPECT_TRUE(IsIdentity(options));
  const ImageBatch out = AugmentBatch(batch, kSide, options, /*seed=*/3);
  ASSERT_EQ(out.pixels.size(), batch.pixels.size());
  EXPECT_LT(MaxDifference(out.pixels, batch.pixels), 1e-5);
  EXPECT_EQ(out.labels, batch.labels);
}

TEST(AugmentTest, TransformsChangeTheImagesButNeverTheLabels) {
  const ImageBatch batch = Bars(8);
  AugmentationOptions options;
  options.rotation_degrees = 20;
  options.translation = 0.1;
  options.scale_min = 0.9;
  options.scale_max = 1.1;
  options.horizontal_flip = true;
  EXPECT_FALSE(IsIdentity(options));
  const ImageBatch out = AugmentBatch(batch, kSide, options, /*seed=*/3);
  EXPECT_EQ(out.labels, batch.labels);
  EXPECT_GT(MaxDifference(out.pixels, batch.pixels), 0.1);
  for (const float p : out.pixels) {
    EXPECT_GE(p, 0.0f);
    EXPECT_LE(p, 1.0f + 1e-6f);
  }
}

TEST(AugmentTest, TheSameSeedGivesTheSameBatch) {
  const ImageBatch batch = Bars(8);
  AugmentationOptions options;
  options.rotation_degrees = 15;
  options.translation = 0.1;
  const ImageBatch first = AugmentBatch(batch, kSide, options, /*seed=*/5);
  const ImageBatch second = AugmentBatch(batch, kSide, options, /*seed=*/5);
  EXPECT_EQ(first.pixels, second.pixels);
  const ImageBatch other = AugmentBatch(batch, kSide, options, /*seed=*/6);
  EXPECT_NE(first.pixels, other.pixels);
}

TEST(AugmentTest, AHorizontalFlipMirrorsTheImage) {
  ImageBatch batch = Bars(1);
  AugmentationOptions options;
  options.horizontal_flip = true;
  // Over a few seeds, each image is either unchanged or mirrored, and both happen.
  bool mirrored = false;
  bool unchanged = false;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    const ImageBatch out = AugmentBatch(batch, kSide, options, seed);
    std::vector<float> mirror(kPixels);
    for (int r = 0; r < kSide; ++r) {
      for (int c = 0; c < kSide; ++c)
        mirror[r * kSide + c] = batch.pixels[r * kSide + kSide - 1 - c];
    }
    if (MaxDifference(out.pixels, mirror) < 1e-5) mirrored = true;
    if (MaxDifference(out.pixels, batch.pixels) < 1e-5) unchanged = true;
  }
  EXPECT_TRUE(mirrored);
  EXPECT_TRUE(unchanged);
}

TEST(AugmentTest, ValidationNamesTheField) {
  auto check = [](const char* field, auto change) {
    AugmentationOptions options;
    change(options);
    const absl::Status status = ValidateAugmentation(options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(status.message(), HasSubstr(field));
  };
  check("rotation_degrees", [](AugmentationOptions& o) { o.rotation_degrees = -1; });
  check("rotation_degrees", [](AugmentationOptions& o) { o.rotation_degrees = 181; });
  check("translation", [](AugmentationOptions& o) { o.translation = 0.6; });
  check("translation", [](AugmentationOptions& o) { o.translation = std::nan(""); });
  check("scale_min", [](AugmentationOptions& o) { o.scale_min = 0.1; });
  check("scale_max", [](AugmentationOptions& o) { o.scale_max = 3; });
  check("scale_min", [](AugmentationOptions& o) {
    o.scale_min = 1.2;
    o.scale_max = 1.1;
  });
  EXPECT_TRUE(ValidateAugmentation(AugmentationOptions()).ok());
}

}  // namespace
}  // namespace classifier
