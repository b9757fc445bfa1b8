#include "base/dataset.h"

#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_data.h"

namespace classifier {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Deterministic pixels: image i, pixel j.
std::vector<uint8_t> MakePixels(int64_t count, int64_t rows, int64_t cols) {
  std::vector<uint8_t> pixels(count * rows * cols);
  for (size_t j = 0; j < pixels.size(); ++j) pixels[j] = static_cast<uint8_t>((j * 37 + 11) % 256);
  return pixels;
}

std::vector<uint8_t> MakeLabels(int64_t count, int num_classes) {
  std::vector<uint8_t> labels(count);
  for (int64_t i = 0; i < count; ++i) labels[i] = static_cast<uint8_t>(i % num_classes);
  return labels;
}

std::string Gzip(const std::string& data) {
  z_stream stream{};
  // 16 + MAX_WBITS: a gzip wrapper, as the official .gz files have.
  EXPECT_EQ(deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&stream, data.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           (std::string("dataset_test_") + info->name() + "_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(out.good()) << path;
    return path;
  }

  // A valid set of `count` 4x3 images and labels, written plain or gzip'd.
  void WriteGoodSet(int64_t count, bool gzip) {
    pixels_ = MakePixels(count, 4, 3);
    labels_ = MakeLabels(count, 10);
    const std::string images = EncodeIdxImages(pixels_, count, 4, 3);
    const std::string labels = EncodeIdxLabels(labels_);
    images_path_ = Write(gzip ? "images.gz" : "images", gzip ? Gzip(images) : images);
    labels_path_ = Write(gzip ? "labels.gz" : "labels", gzip ? Gzip(labels) : labels);
  }

  std::filesystem::path dir_;
  std::vector<uint8_t> pixels_;
  std::vector<uint8_t> labels_;
  std::string images_path_;
  std::string labels_path_;
};

TEST_F(DatasetTest, LoadsPlainFiles) {
  WriteGoodSet(25, /*gzip=*/false);
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(images_path_, labels_path_);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->size(), 25);
  EXPECT_EQ(dataset->rows, 4);
  EXPECT_EQ(dataset->cols, 3);
  EXPECT_EQ(dataset->image_size(), 12);
  EXPECT_EQ(dataset->num_classes, 10);
  EXPECT_EQ(dataset->pixels, pixels_);
  EXPECT_EQ(dataset->labels, labels_);
}

TEST_F(DatasetTest, LoadsGzipFiles) {
  WriteGoodSet(25, /*gzip=*/true);
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(images_path_, labels_path_);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->size(), 25);
  EXPECT_EQ(dataset->pixels, pixels_);
  EXPECT_EQ(dataset->labels, labels_);
}

TEST_F(DatasetTest, ReadFileMaybeGzipReadsPlainGzipAndConcatenatedMembers) {
  const std::string text = "hello, IDX";
  absl::StatusOr<std::string> plain = ReadFileMaybeGzip(Write("plain", text));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(*plain, text);
  absl::StatusOr<std::string> gz = ReadFileMaybeGzip(Write("one.gz", Gzip(text)));
  ASSERT_TRUE(gz.ok()) << gz.status();
  EXPECT_EQ(*gz, text);
  // gzip allows several members back to back (what `cat a.gz b.gz` makes).
  absl::StatusOr<std::string> two = ReadFileMaybeGzip(Write("two.gz", Gzip("abc") + Gzip("def")));
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(*two, "abcdef");
  absl::StatusOr<std::string> empty = ReadFileMaybeGzip(Write("empty", ""));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, "");
}

TEST_F(DatasetTest, ReadsHeaderOfPlainAndGzipFiles) {
  for (bool gzip : {false, true}) {
    WriteGoodSet(7, gzip);
    absl::StatusOr<IdxHeader> images = ReadIdxHeader(images_path_);
    ASSERT_TRUE(images.ok()) << images.status();
    EXPECT_EQ(images->element_type, 0x08);
    EXPECT_THAT(images->dimensions, ElementsAre(7, 4, 3));
    absl::StatusOr<IdxHeader> labels = ReadIdxHeader(labels_path_);
    ASSERT_TRUE(labels.ok()) << labels.status();
    EXPECT_EQ(labels->element_type, 0x08);
    EXPECT_THAT(labels->dimensions, ElementsAre(7));
  }
}

TEST_F(DatasetTest, HeaderOfShortFileIsDataLoss) {
  const std::string path = Write("short", EncodeIdxImages({}, 1, 28, 28).substr(0, 9));
  absl::StatusOr<IdxHeader> header = ReadIdxHeader(path);
  EXPECT_EQ(header.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(header.status().message(), HasSubstr(path));
  const std::string gz_path = Write("short.gz", Gzip(EncodeIdxImages({}, 1, 28, 28).substr(0, 9)));
  header = ReadIdxHeader(gz_path);
  EXPECT_EQ(header.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(header.status().message(), HasSubstr(gz_path));
}

TEST_F(DatasetTest, TruncatedImagesAreDataLoss) {
  for (bool gzip : {false, true}) {
    const std::string images = EncodeIdxImages(MakePixels(10, 4, 3), 10, 4, 3);
    const std::string cut = images.substr(0, images.size() - 5);
    const std::string path = Write(gzip ? "cut.gz" : "cut", gzip ? Gzip(cut) : cut);
    const std::string labels = Write("labels", EncodeIdxLabels(MakeLabels(10, 10)));
    absl::StatusOr<Dataset> dataset = LoadIdxDataset(path, labels);
    EXPECT_EQ(dataset.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(dataset.status().message(), HasSubstr(path));
    EXPECT_THAT(dataset.status().message(), HasSubstr("truncated"));
  }
}

TEST_F(DatasetTest, TruncatedLabelsAreDataLoss) {
  const std::string images = Write("images", EncodeIdxImages(MakePixels(10, 4, 3), 10, 4, 3));
  const std::string label_bytes = EncodeIdxLabels(MakeLabels(10, 10));
  const std::string labels = Write("labels", label_bytes.substr(0, label_bytes.size() - 1));
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(images, labels);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(dataset.status().message(), HasSubstr(labels));
}

TEST_F(DatasetTest, ExtraBytesAreDataLoss) {
  const std::string images =
      Write("images", EncodeIdxImages(MakePixels(10, 4, 3), 10, 4, 3) + "xyz");
  const std::string labels = Write("labels", EncodeIdxLabels(MakeLabels(10, 10)));
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(images, labels);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(dataset.status().message(), HasSubstr(images));
  EXPECT_THAT(dataset.status().message(), HasSubstr("3 unexpected bytes"));
}

TEST_F(DatasetTest, TruncatedGzipIsDataLoss) {
  const std::string full = Gzip(EncodeIdxImages(MakePixels(100, 4, 3), 100, 4, 3));
  const std::string path = Write("images.gz", full.substr(0, full.size() / 2));
  const std::string labels = Write("labels", EncodeIdxLabels(MakeLabels(100, 10)));
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(path, labels);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(dataset.status().message(), HasSubstr(path));
  EXPECT_THAT(dataset.status().message(), HasSubstr("truncated gzip"));
}

TEST_F(DatasetTest, GarbageGzipIsDataLoss) {
  const std::string path = Write("garbage.gz", std::string("\x1f\x8b", 2) + std::string(100, 'x'));
  const std::string labels = Write("labels", EncodeIdxLabels(MakeLabels(10, 10)));
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(path, labels);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(dataset.status().message(), HasSubstr(path));
  EXPECT_THAT(dataset.status().message(), HasSubstr("corrupt gzip"));

  absl::StatusOr<IdxHeader> header = ReadIdxHeader(path);
  EXPECT_EQ(header.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(header.status().message(), HasSubstr(path));
}

TEST_F(DatasetTest, GarbageAfterGzipStreamIsDataLoss) {
  const std::string path = Write("tail.gz", Gzip(EncodeIdxLabels(MakeLabels(10, 10))) + "junk");
  absl::StatusOr<std::string> bytes = ReadFileMaybeGzip(path);
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bytes.status().message(), HasSubstr(path));
}

TEST_F(DatasetTest, CorruptGzipBodyIsDataLoss) {
  std::string gz = Gzip(EncodeIdxImages(MakePixels(100, 4, 3), 100, 4, 3));
  // Flip bytes in the middle of the deflate data: either the stream breaks or the CRC fails.
  for (size_t i = gz.size() / 2; i < gz.size() / 2 + 8; ++i) gz[i] = static_cast<char>(~gz[i]);
  const std::string path = Write("corrupt.gz", gz);
  absl::StatusOr<std::string> bytes = ReadFileMaybeGzip(path);
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bytes.status().message(), HasSubstr(path));
}

TEST_F(DatasetTest, WrongMagicIsInvalidArgument) {
  WriteGoodSet(10, /*gzip=*/false);
  // Images and labels swapped.
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(labels_path_, images_path_);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(), HasSubstr(labels_path_));
  EXPECT_THAT(dataset.status().message(), HasSubstr("magic"));
  EXPECT_THAT(dataset.status().message(), HasSubstr("0x00000801"));

  dataset = LoadIdxDataset(images_path_, images_path_);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(), HasSubstr("magic"));

  // Not an IDX file at all.
  const std::string text = Write("readme.txt", "This is not an IDX file.\n");
  dataset = LoadIdxDataset(text, labels_path_);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(), HasSubstr(text));
  absl::StatusOr<IdxHeader> header = ReadIdxHeader(text);
  EXPECT_EQ(header.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(header.status().message(), HasSubstr(text));
}

TEST_F(DatasetTest, CountMismatchIsInvalidArgument) {
  const std::string images = Write("images", EncodeIdxImages(MakePixels(10, 4, 3), 10, 4, 3));
  const std::string labels = Write("labels", EncodeIdxLabels(MakeLabels(9, 10)));
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(images, labels);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(), HasSubstr(labels));
  EXPECT_THAT(dataset.status().message(), HasSubstr(images));
  EXPECT_THAT(dataset.status().message(), HasSubstr("9 labels"));
}

TEST_F(DatasetTest, LabelOutOfRangeIsInvalidArgument) {
  std::vector<uint8_t> label_values = MakeLabels(10, 10);
  label_values[6] = 10;
  const std::string images = Write("images", EncodeIdxImages(MakePixels(10, 4, 3), 10, 4, 3));
  const std::string labels = Write("labels", EncodeIdxLabels(label_values));
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(images, labels);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(), HasSubstr(labels));
  EXPECT_THAT(dataset.status().message(), HasSubstr("the label of image 6 is 10"));
  // The same file is fine for 11 classes.
  EXPECT_TRUE(LoadIdxDataset(images, labels, /*num_classes=*/11).ok());
  // And 3 classes reject label 3.
  dataset = LoadIdxDataset(images, labels, /*num_classes=*/3);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DatasetTest, MissingFileIsNotFound) {
  WriteGoodSet(10, /*gzip=*/false);
  const std::string missing = (dir_ / "no-such-file.gz").string();
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(missing, labels_path_);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(dataset.status().message(), HasSubstr(missing));
  dataset = LoadIdxDataset(images_path_, missing);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(dataset.status().message(), HasSubstr(missing));
  absl::StatusOr<IdxHeader> header = ReadIdxHeader(missing);
  EXPECT_EQ(header.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(header.status().message(), HasSubstr(missing));
  absl::StatusOr<std::string> bytes = ReadFileMaybeGzip(missing);
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DatasetTest, DirectoryIsNotAFile) {
  absl::StatusOr<std::string> bytes = ReadFileMaybeGzip(dir_.string());
  EXPECT_FALSE(bytes.ok());
  EXPECT_THAT(bytes.status().message(), HasSubstr(dir_.string()));
  EXPECT_FALSE(ReadIdxHeader(dir_.string()).ok());
}

TEST_F(DatasetTest, EmptyFileIsDataLoss) {
  WriteGoodSet(10, /*gzip=*/false);
  const std::string empty = Write("empty", "");
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(empty, labels_path_);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(dataset.status().message(), HasSubstr(empty));
}

TEST_F(DatasetTest, AbsurdDimensionsAreRejectedWithoutOverflow) {
  const std::string labels = Write("labels", EncodeIdxLabels(MakeLabels(10, 10)));
  // 2^32 - 1 images of 4096 x 4096: the product overflows 64 bits.
  const std::string huge = Write("huge", EncodeIdxImages({1, 2, 3}, 0xffffffff, 4096, 4096));
  absl::StatusOr<Dataset> dataset = LoadIdxDataset(huge, labels);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(), HasSubstr(huge));
  // Sides beyond the limit, and zero.
  const std::string wide = Write("wide", EncodeIdxImages({}, 1, 0xffffffff, 0xffffffff));
  dataset = LoadIdxDataset(wide, labels);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(), HasSubstr(wide));
  const std::string zero = Write("zero", EncodeIdxImages({}, 10, 0, 28));
  dataset = LoadIdxDataset(zero, labels);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(), HasSubstr(zero));
  const std::string none = Write("none", EncodeIdxImages({}, 0, 28, 28));
  dataset = LoadIdxDataset(none, labels);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dataset.status().message(), HasSubstr("no images"));
}

TEST_F(DatasetTest, BadNumClassesIsInvalidArgument) {
  WriteGoodSet(10, /*gzip=*/false);
  EXPECT_EQ(LoadIdxDataset(images_path_, labels_path_, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadIdxDataset(images_path_, labels_path_, 257).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Whatever the bytes, an error status and never a crash.
TEST_F(DatasetTest, RandomCorruptionNeverCrashes) {
  const std::string images = EncodeIdxImages(MakePixels(20, 4, 3), 20, 4, 3);
  const std::string labels_path = Write("labels", EncodeIdxLabels(MakeLabels(20, 10)));
  std::mt19937 random(42);
  for (int round = 0; round < 300; ++round) {
    std::string bytes = round % 2 == 0 ? images : Gzip(images);
    const int flips = 1 + static_cast<int>(random() % 4);
    for (int f = 0; f < flips; ++f) bytes[random() % bytes.size()] = static_cast<char>(random());
    if (round % 3 == 0) bytes.resize(random() % (bytes.size() + 1));
    const std::string path = Write("fuzz", bytes);
    absl::StatusOr<Dataset> dataset = LoadIdxDataset(path, labels_path);
    // Damage may leave a loadable file; one that is refused names itself.
    if (!dataset.ok()) {
      EXPECT_THAT(dataset.status().message(), HasSubstr(path));
    }
    absl::StatusOr<IdxHeader> header = ReadIdxHeader(path);
    if (!header.ok()) {
      EXPECT_THAT(header.status().message(), HasSubstr(path));
    }
  }
}

TEST(RealMnistTest, LoadsIfPresent) {
  const std::string dir = testing::RealMnistDir();
  if (dir.empty()) GTEST_SKIP() << testing::RealMnistSkipReason();
  absl::StatusOr<IdxHeader> header = ReadIdxHeader(dir + "/train-images-idx3-ubyte.gz");
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_THAT(header->dimensions, ElementsAre(10000, 28, 28));

  absl::StatusOr<Dataset> train =
      LoadIdxDataset(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->size(), 10000);
  EXPECT_EQ(train->rows, 28);
  EXPECT_EQ(train->cols, 28);
  EXPECT_EQ(train->pixels.size(), 10000u * 28 * 28);

  absl::StatusOr<Dataset> test =
      LoadIdxDataset(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(test.ok()) << test.status();
  ASSERT_EQ(test->size(), 10000);
  std::vector<int> counts(10, 0);
  for (uint8_t label : test->labels) ++counts[label];
  // The published class counts of the official test set.
  EXPECT_THAT(counts, ElementsAre(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009));
}

}  // namespace
}  // namespace classifier
