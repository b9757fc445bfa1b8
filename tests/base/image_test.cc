#include "base/image.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace classifier {
namespace {

using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------------
// A minimal PNG writer (stored deflate blocks, filter 0), so that the tests can build every
// colour type and bit depth byte by byte without linking libpng or zlib themselves.

uint32_t Crc32(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

void AppendBigEndian32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xFF));
}

void AppendChunk(std::string* png, const std::string& type, const std::string& data) {
  AppendBigEndian32(png, static_cast<uint32_t>(data.size()));
  const std::string typed = type + data;
  png->append(typed);
  AppendBigEndian32(png, Crc32(typed));
}

std::string ZlibStored(const std::string& data) {
  std::string out = "\x78\x01";
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(data.size() - pos, 65535);
    const bool last = pos + n == data.size();
    out.push_back(last ? 1 : 0);
    out.push_back(static_cast<char>(n & 0xFF));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(~n & 0xFF));
    out.push_back(static_cast<char>((~n >> 8) & 0xFF));
    out.append(data, pos, n);
    pos += n;
  } while (pos < data.size());
  uint32_t a = 1, b = 0;
  for (unsigned char c : data) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  AppendBigEndian32(&out, (b << 16) | a);
  return out;
}

enum PngColourType : uint8_t { kGrey = 0, kRgb = 2, kPalette = 3, kGreyAlpha = 4, kRgba = 6 };

struct PngSpec {
  uint32_t width = 0;
  uint32_t height = 0;
  uint8_t bit_depth = 8;
  PngColourType colour_type = kGrey;
  std::vector<std::string> rows;  // Packed samples of each row, without the filter byte.
  std::string plte;               // PLTE chunk data, for palettes.
  std::string trns;               // tRNS chunk data, when not empty.
};

std::string MakePng(const PngSpec& spec) {
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  AppendBigEndian32(&ihdr, spec.width);
  AppendBigEndian32(&ihdr, spec.height);
  ihdr.push_back(static_cast<char>(spec.bit_depth));
  ihdr.push_back(static_cast<char>(spec.colour_type));
  ihdr.append(std::string(3, '\0'));  // Compression, filter, interlace.
  AppendChunk(&png, "IHDR", ihdr);
  if (!spec.plte.empty()) AppendChunk(&png, "PLTE", spec.plte);
  if (!spec.trns.empty()) AppendChunk(&png, "tRNS", spec.trns);
  std::string raw;
  for (const std::string& row : spec.rows) raw += '\0' + row;
  AppendChunk(&png, "IDAT", ZlibStored(raw));
  AppendChunk(&png, "IEND", "");
  return png;
}

std::string Bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

// ---------------------------------------------------------------------------------------------

std::vector<uint8_t> Gradient(int width, int height) {
  std::vector<uint8_t> pixels(static_cast<size_t>(width) * height);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      pixels[static_cast<size_t>(y) * width + x] = static_cast<uint8_t>((x * 9 + y * 3) % 256);
    }
  }
  return pixels;
}

TEST(ImageTest, PngGreyRoundTripIsExact) {
  const std::vector<uint8_t> pixels = Gradient(28, 28);
  absl::StatusOr<std::string> png = EncodePngGrey(pixels, 28, 28);
  ASSERT_TRUE(png.ok()) << png.status();
  absl::StatusOr<GreyImage> image = DecodeImage(*png);
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->width, 28);
  ASSERT_EQ(image->height, 28);
  ASSERT_EQ(image->pixels.size(), pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) {
    EXPECT_EQ(std::lround(image->pixels[i] * 255), pixels[i]) << "pixel " << i;
  }
}

TEST(ImageTest, JpegGreyRoundTripIsClose) {
  // Smooth content, as JPEG is meant for.
  std::vector<uint8_t> pixels(64 * 48);
  for (int y = 0; y < 48; ++y) {
    for (int x = 0; x < 64; ++x) pixels[y * 64 + x] = static_cast<uint8_t>(x * 2 + y * 2);
  }
  absl::StatusOr<std::string> jpeg = EncodeJpegGrey(pixels, 64, 48, /*quality=*/95);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();
  absl::StatusOr<GreyImage> image = DecodeImage(*jpeg);
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->width, 64);
  ASSERT_EQ(image->height, 48);
  double worst = 0;
  for (size_t i = 0; i < pixels.size(); ++i) {
    worst = std::max(worst, std::abs(image->pixels[i] - pixels[i] / 255.0));
  }
  EXPECT_LT(worst, 4.0 / 255);
}

TEST(ImageTest, DecodesRgbPngToLuminance) {
  PngSpec spec;
  spec.width = 4;
  spec.height = 1;
  spec.colour_type = kRgb;
  spec.rows = {Bytes({255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255})};
  absl::StatusOr<GreyImage> image = DecodeImage(MakePng(spec));
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->pixels.size(), 4u);
  EXPECT_NEAR(image->pixels[0], 0.299, 0.005);
  EXPECT_NEAR(image->pixels[1], 0.587, 0.005);
  EXPECT_NEAR(image->pixels[2], 0.114, 0.005);
  EXPECT_NEAR(image->pixels[3], 1.0, 0.005);
}

TEST(ImageTest, CompositesRgbaOnWhite) {
  PngSpec spec;
  spec.width = 3;
  spec.height = 1;
  spec.colour_type = kRgba;
  // Opaque black, fully transparent black, half-transparent black.
  spec.rows = {Bytes({0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0, 128})};
  absl::StatusOr<GreyImage> image = DecodeImage(MakePng(spec));
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->pixels.size(), 3u);
  EXPECT_NEAR(image->pixels[0], 0.0, 0.005);
  EXPECT_NEAR(image->pixels[1], 1.0, 0.005);
  EXPECT_NEAR(image->pixels[2], 0.5, 0.01);
}

TEST(ImageTest, CompositesGreyAlphaOnWhite) {
  PngSpec spec;
  spec.width = 2;
  spec.height = 1;
  spec.colour_type = kGreyAlpha;
  spec.rows = {Bytes({0, 255, 0, 0})};
  absl::StatusOr<GreyImage> image = DecodeImage(MakePng(spec));
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_NEAR(image->pixels[0], 0.0, 0.005);
  EXPECT_NEAR(image->pixels[1], 1.0, 0.005);
}

TEST(ImageTest, DecodesPalettePngWithTransparency) {
  PngSpec spec;
  spec.width = 4;
  spec.height = 1;
  spec.colour_type = kPalette;
  spec.plte = Bytes({0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 255});
  spec.trns = Bytes({255, 255, 255, 0});  // Entry 3 (blue) is fully transparent.
  spec.rows = {Bytes({0, 1, 2, 3})};
  absl::StatusOr<GreyImage> image = DecodeImage(MakePng(spec));
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_NEAR(image->pixels[0], 0.0, 0.005);
  EXPECT_NEAR(image->pixels[1], 1.0, 0.005);
  EXPECT_NEAR(image->pixels[2], 0.299, 0.005);
  EXPECT_NEAR(image->pixels[3], 1.0, 0.005);  // Transparent: the white underneath.
}

TEST(ImageTest, DecodesFourBitPalettePng) {
  PngSpec spec;
  spec.width = 3;
  spec.height = 1;
  spec.bit_depth = 4;
  spec.colour_type = kPalette;
  spec.plte = Bytes({10, 10, 10, 200, 200, 200});
  spec.rows = {Bytes({0x01, 0x00})};  // Indices 0, 1, 0 (the last nibble is padding).
  absl::StatusOr<GreyImage> image = DecodeImage(MakePng(spec));
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_NEAR(image->pixels[0], 10 / 255.0, 0.005);
  EXPECT_NEAR(image->pixels[1], 200 / 255.0, 0.005);
  EXPECT_NEAR(image->pixels[2], 10 / 255.0, 0.005);
}

TEST(ImageTest, DecodesOneBitGreyPng) {
  PngSpec spec;
  spec.width = 10;
  spec.height = 1;
  spec.bit_depth = 1;
  spec.rows = {Bytes({0xA0, 0x40})};  // 1 0 1 0 0 0 0 0 | 0 1
  absl::StatusOr<GreyImage> image = DecodeImage(MakePng(spec));
  ASSERT_TRUE(image.ok()) << image.status();
  const std::vector<float> expected = {1, 0, 1, 0, 0, 0, 0, 0, 0, 1};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(image->pixels[i], expected[i], 0.005);
}

TEST(ImageTest, DecodesSixteenBitPngs) {
  PngSpec grey;
  grey.width = 3;
  grey.height = 1;
  grey.bit_depth = 16;
  grey.rows = {Bytes({0x00, 0x00, 0x80, 0x80, 0xFF, 0xFF})};
  absl::StatusOr<GreyImage> image = DecodeImage(MakePng(grey));
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_NEAR(image->pixels[0], 0.0, 0.005);
  EXPECT_NEAR(image->pixels[1], 0x80 / 255.0, 0.005);  // sRGB, not treated as linear.
  EXPECT_NEAR(image->pixels[2], 1.0, 0.005);

  PngSpec rgb;
  rgb.width = 1;
  rgb.height = 1;
  rgb.bit_depth = 16;
  rgb.colour_type = kRgb;
  rgb.rows = {Bytes({0xFF, 0xFF, 0, 0, 0, 0})};
  image = DecodeImage(MakePng(rgb));
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_NEAR(image->pixels[0], 0.299, 0.005);
}

TEST(ImageTest, RejectsGarbage) {
  absl::StatusOr<GreyImage> image = DecodeImage("hello, this is not an image");
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr("not a PNG or JPEG image"));
  EXPECT_THAT(image.status().message(), HasSubstr("68 65 6c 6c"));

  image = DecodeImage("");
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);

  image = DecodeImage(std::string("\x89PNG\r\n\x1a\n", 8) + "garbage garbage garbage");
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr("corrupt PNG"));

  image = DecodeImage(std::string("\xFF\xD8\xFF\xE0", 4) + "garbage garbage garbage");
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr("corrupt JPEG"));
}

TEST(ImageTest, RejectsTruncatedFilesAtEveryLength) {
  const std::vector<uint8_t> pixels = Gradient(40, 30);
  absl::StatusOr<std::string> png = EncodePngGrey(pixels, 40, 30);
  absl::StatusOr<std::string> jpeg = EncodeJpegGrey(pixels, 40, 30);
  ASSERT_TRUE(png.ok() && jpeg.ok());
  // Every cut into the pixel data fails. A PNG cut in its IEND chunk (the last 12 bytes)
  // still holds all of its pixels, and libpng's simplified API accepts it.
  const std::array<std::pair<const std::string*, size_t>, 2> files = {
      {{&*png, png->size() - 12}, {&*jpeg, jpeg->size()}}};
  for (const auto& [file, end] : files) {
    for (size_t length = 0; length < end; ++length) {
      absl::StatusOr<GreyImage> image = DecodeImage(file->substr(0, length));
      ASSERT_FALSE(image.ok()) << "length " << length << " of " << file->size();
      EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(ImageTest, CorruptBytesNeverCrash) {
  const std::vector<uint8_t> pixels = Gradient(40, 30);
  absl::StatusOr<std::string> png = EncodePngGrey(pixels, 40, 30);
  absl::StatusOr<std::string> jpeg = EncodeJpegGrey(pixels, 40, 30);
  ASSERT_TRUE(png.ok() && jpeg.ok());
  for (const std::string* file : {&*png, &*jpeg}) {
    for (size_t i = 3; i < file->size(); i += 5) {
      std::string corrupt = *file;
      corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5A);
      absl::StatusOr<GreyImage> image = DecodeImage(corrupt);
      if (!image.ok()) {
        EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
      } else {
        EXPECT_EQ(image->pixels.size(), static_cast<size_t>(image->width) * image->height);
      }
    }
  }
}

// libjpeg fills every block after a marker in the compressed data with zeros and calls the
// picture decoded; a few hundred fuzzed bytes then claimed millions of such pixels.
TEST(ImageTest, RejectsJpegWhoseDataHitsAStrayMarker) {
  absl::StatusOr<std::string> jpeg = EncodeJpegGrey(Gradient(40, 30), 40, 30);
  ASSERT_TRUE(jpeg.ok());
  const size_t scan = jpeg->find("\xFF\xDA");
  ASSERT_NE(scan, std::string::npos);
  size_t middle = scan + (jpeg->size() - scan) / 2;
  if (static_cast<unsigned char>((*jpeg)[middle - 1]) == 0xFF) ++middle;
  std::string broken = *jpeg;
  broken.replace(middle, 2, "\xFF\xD9");  // An end of image in the middle of the scan.
  absl::StatusOr<GreyImage> image = DecodeImage(broken);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr("corrupt JPEG"));
}

TEST(ImageTest, RejectsHugeDimensions) {
  PngSpec spec;
  spec.width = 100000;
  spec.height = 100000;
  spec.rows = {Bytes({0})};
  absl::StatusOr<GreyImage> image = DecodeImage(MakePng(spec));
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr("too large"));
}

TEST(ImageTest, ABlankPhotoSizedJpegDecodesButOneForgedToClaimMillionsOfPixelsDoesNot) {
  // The sparsest real picture: one grey level over 3 megapixels.
  constexpr int kWidth = 2000, kHeight = 1500;
  absl::StatusOr<std::string> blank =
      EncodeJpegGrey(std::vector<uint8_t>(kWidth * kHeight, 128), kWidth, kHeight);
  ASSERT_TRUE(blank.ok()) << blank.status();
  absl::StatusOr<GreyImage> decoded = DecodeImage(*blank);
  ASSERT_TRUE(decoded.ok()) << decoded.status() << " (" << blank->size() << " bytes)";
  EXPECT_EQ(decoded->width, kWidth);

  // A small JPEG whose frame header claims 11520 x 4096 pixels (under the 50-megapixel cap).
  absl::StatusOr<std::string> small = EncodeJpegGrey(Gradient(40, 30), 40, 30);
  ASSERT_TRUE(small.ok());
  std::string forged = *small;
  const size_t frame = forged.find("\xFF\xC0");
  ASSERT_NE(frame, std::string::npos);
  forged.replace(frame + 5, 4, std::string("\x2D\x00\x10\x00", 4));  // Height, width.
  absl::StatusOr<GreyImage> refused = DecodeImage(forged);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("4096x11520 pixels in"));
  EXPECT_THAT(refused.status().message(), HasSubstr("pixels per byte"));
}

TEST(ImageTest, AnArithmeticCodedJpegIsRefusedByName) {
  absl::StatusOr<std::string> jpeg = EncodeJpegGrey(Gradient(40, 30), 40, 30);
  ASSERT_TRUE(jpeg.ok());
  std::string arithmetic = *jpeg;
  const size_t frame = arithmetic.find("\xFF\xC0");
  ASSERT_NE(frame, std::string::npos);
  arithmetic[frame + 1] = '\xC9';  // Baseline Huffman -> extended sequential, arithmetic.
  absl::StatusOr<GreyImage> refused = DecodeImage(arithmetic);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("arithmetic coding"));
}

TEST(ImageTest, EncodersValidateTheirInput) {
  EXPECT_EQ(EncodePngGrey({1, 2, 3}, 2, 2).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePngGrey({}, 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpegGrey({1, 2, 3, 4}, 2, 2, /*quality=*/0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpegGrey({1, 2, 3}, 2, 2).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// ToMnistLike

struct InkStats {
  int left = 1 << 30, right = -1, top = 1 << 30, bottom = -1;
  double centre_x = 0, centre_y = 0;
  float max = 0;
};

InkStats Measure(const std::vector<float>& frame, int size, float threshold = 0.1f) {
  InkStats s;
  double mass = 0;
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const float v = frame[y * size + x];
      s.max = std::max(s.max, v);
      mass += v;
      s.centre_x += v * (x + 0.5);
      s.centre_y += v * (y + 0.5);
      if (v > threshold) {
        s.left = std::min(s.left, x);
        s.right = std::max(s.right, x);
        s.top = std::min(s.top, y);
        s.bottom = std::max(s.bottom, y);
      }
    }
  }
  if (mass > 0) {
    s.centre_x /= mass;
    s.centre_y /= mass;
  }
  return s;
}

GreyImage Canvas(int width, int height, float value) {
  GreyImage image;
  image.width = width;
  image.height = height;
  image.pixels.assign(static_cast<size_t>(width) * height, value);
  return image;
}

// A ring like a zero, dark on white, off-centre on a 200x300 canvas.
GreyImage DrawRing() {
  GreyImage image = Canvas(200, 300, 1.0f);
  for (int y = 0; y < 300; ++y) {
    for (int x = 0; x < 200; ++x) {
      const double r = std::hypot(x - 80.0, y - 190.0);
      if (r >= 40 && r <= 60) image.pixels[y * 200 + x] = 0.05f;
    }
  }
  return image;
}

TEST(ImageToMnistLikeTest, KeepsDarkBackgroundImagesOfTheRightSize) {
  GreyImage image = Canvas(28, 28, 0.0f);
  image.pixels[5 * 28 + 3] = 0.7f;  // Off-centre on purpose: it must not be moved.
  EXPECT_EQ(ToMnistLike(image), image.pixels);
}

TEST(ImageToMnistLikeTest, LargeDarkOnWhiteRingBecomesCentredWhiteOnBlack) {
  const std::vector<float> frame = ToMnistLike(DrawRing());
  ASSERT_EQ(frame.size(), 28u * 28u);
  const InkStats s = Measure(frame, 28);
  EXPECT_GT(s.max, 0.9f);
  EXPECT_NEAR(s.centre_x, 14.0, 1.0);
  EXPECT_NEAR(s.centre_y, 14.0, 1.0);
  EXPECT_LE(s.right - s.left + 1, 20);
  EXPECT_LE(s.bottom - s.top + 1, 20);
  EXPECT_GE(s.right - s.left + 1, 18);
  // Background is black: the corners and the ring's hole.
  EXPECT_EQ(frame[0], 0.0f);
  EXPECT_EQ(frame[27 * 28 + 27], 0.0f);
  EXPECT_LT(frame[14 * 28 + 14], 0.05f);
}

TEST(ImageToMnistLikeTest, ThickBarKeepsItsAspectRatio) {
  GreyImage image = Canvas(200, 300, 0.9f);  // Light grey paper.
  for (int y = 40; y < 190; ++y) {
    for (int x = 150; x < 170; ++x) image.pixels[y * 200 + x] = 0.1f;
  }
  const std::vector<float> frame = ToMnistLike(image);
  const InkStats s = Measure(frame, 28);
  EXPECT_EQ(s.bottom - s.top + 1, 20);
  EXPECT_LE(s.right - s.left + 1, 5);
  EXPECT_GE(s.right - s.left + 1, 2);
  EXPECT_NEAR(s.centre_x, 14.0, 1.0);
  EXPECT_NEAR(s.centre_y, 14.0, 1.0);
  EXPECT_GT(s.max, 0.9f);
  EXPECT_EQ(frame[0], 0.0f);  // The grey paper became pure black.
}

TEST(ImageToMnistLikeTest, SmallDigitIsEnlargedTo20Pixels) {
  GreyImage image = Canvas(10, 10, 0.0f);  // Already white on black: no inversion.
  for (int y = 2; y < 8; ++y) image.pixels[y * 10 + 4] = 1.0f;
  for (int y = 2; y < 8; ++y) image.pixels[y * 10 + 5] = 1.0f;
  const InkStats s = Measure(ToMnistLike(image), 28);
  EXPECT_EQ(s.bottom - s.top + 1, 20);
  EXPECT_NEAR(s.centre_x, 14.0, 1.0);
  EXPECT_NEAR(s.centre_y, 14.0, 1.0);
}

TEST(ImageToMnistLikeTest, LightBackground28x28IsConverted) {
  GreyImage image = Canvas(28, 28, 1.0f);
  for (int y = 2; y < 12; ++y) {
    for (int x = 2; x < 6; ++x) image.pixels[y * 28 + x] = 0.0f;
  }
  const std::vector<float> frame = ToMnistLike(image);
  EXPECT_EQ(frame[0], 0.0f);
  const InkStats s = Measure(frame, 28);
  EXPECT_EQ(s.bottom - s.top + 1, 20);
  EXPECT_NEAR(s.centre_x, 14.0, 1.0);
}

TEST(ImageToMnistLikeTest, BlankImagesGiveZeros) {
  const std::vector<float> zeros(28 * 28, 0.0f);
  EXPECT_EQ(ToMnistLike(Canvas(200, 300, 1.0f)), zeros);
  EXPECT_EQ(ToMnistLike(Canvas(50, 50, 0.0f)), zeros);
  EXPECT_EQ(ToMnistLike(Canvas(50, 50, 0.5f)), zeros);
  EXPECT_EQ(ToMnistLike(GreyImage{}), zeros);
}

TEST(ImageToMnistLikeTest, OtherFrameSizes) {
  const std::vector<float> frame = ToMnistLike(DrawRing(), /*size=*/56);
  ASSERT_EQ(frame.size(), 56u * 56u);
  const InkStats s = Measure(frame, 56);
  EXPECT_NEAR(s.centre_x, 28.0, 1.5);
  EXPECT_LE(s.right - s.left + 1, 40);
}

TEST(ImageToMnistLikeTest, DecodeToMnistLikeFromJpeg) {
  const GreyImage ring = DrawRing();
  std::vector<uint8_t> bytes(ring.pixels.size());
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(ring.pixels[i] * 255);
  absl::StatusOr<std::string> jpeg = EncodeJpegGrey(bytes, ring.width, ring.height, 90);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();
  absl::StatusOr<std::vector<float>> frame = DecodeToMnistLike(*jpeg);
  ASSERT_TRUE(frame.ok()) << frame.status();
  const InkStats s = Measure(*frame, 28);
  EXPECT_NEAR(s.centre_x, 14.0, 1.0);
  EXPECT_NEAR(s.centre_y, 14.0, 1.0);
  EXPECT_LE(s.right - s.left + 1, 20);
  EXPECT_LE(s.bottom - s.top + 1, 20);

  EXPECT_EQ(DecodeToMnistLike("nope").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace classifier
