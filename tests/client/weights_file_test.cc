#include "client/weights_file.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tests/testing/synthetic_data.h"

namespace classifier::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* entry = readdir(d)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(ClientSha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ClientSafeFileNameTest, KeepsPlainNamesOnly) {
  EXPECT_EQ(SafeFileName("model-1a2b.pth", "1a2b"), "model-1a2b.pth");
  EXPECT_EQ(SafeFileName("../../etc/passwd", "x"), "passwd");
  EXPECT_EQ(SafeFileName("/abs/path/w.pth", "x"), "w.pth");
  EXPECT_EQ(SafeFileName("..", "m-1"), "model-m-1.pth");
  EXPECT_EQ(SafeFileName("", "m/1"), "model-m1.pth");
  EXPECT_EQ(SafeFileName("bad\nname", ""), "model-weights.pth");
  EXPECT_EQ(SafeFileName("", "m-1", ".onnx"), "model-m-1.onnx");
  EXPECT_EQ(SafeFileName("w.onnx", "m-1", ".onnx"), "w.onnx");
}

TEST(ClientWithExtensionTest, KeepsReplacesOrAppends) {
  EXPECT_EQ(WithExtension("model-1.onnx", ".onnx"), "model-1.onnx");
  EXPECT_EQ(WithExtension("MODEL.ONNX", ".onnx"), "MODEL.ONNX");
  EXPECT_EQ(WithExtension("model-1.pth", ".onnx"), "model-1.onnx");
  EXPECT_EQ(WithExtension("model-1.PT", ".onnx"), "model-1.onnx");
  EXPECT_EQ(WithExtension("model-1", ".onnx"), "model-1.onnx");
  EXPECT_EQ(WithExtension("model-1.bin", ".onnx"), "model-1.bin.onnx");
  EXPECT_EQ(WithExtension(".pth", ".onnx"), ".pth.onnx");
}

TEST(ClientResolveOutputPathTest, FileDirectoryOrDefault) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  EXPECT_EQ(ResolveOutputPath("", "w.pth"), "w.pth");
  EXPECT_EQ(ResolveOutputPath(dir, "w.pth"), dir + "/w.pth");
  EXPECT_EQ(ResolveOutputPath(dir + "/", "w.pth"), dir + "/w.pth");
  EXPECT_EQ(ResolveOutputPath(dir + "/mine.pth", "w.pth"), dir + "/mine.pth");
}

TEST(VerifiedFileWriterTest, CommitsAVerifiedFile) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  const std::string path = dir + "/w.pth";
  absl::StatusOr<std::unique_ptr<VerifiedFileWriter>> writer = VerifiedFileWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_THAT((*writer)->temp_path(), HasSubstr(path + ".tmp-"));
  ASSERT_TRUE((*writer)->Append("ab").ok());
  ASSERT_TRUE((*writer)->Append("c").ok());
  EXPECT_EQ(ListDir(dir).size(), 1u);  // Only the temporary file so far.
  ASSERT_TRUE((*writer)
                  ->Commit(3, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD")
                  .ok());
  EXPECT_EQ((*writer)->sha256(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  writer->reset();
  EXPECT_THAT(ListDir(dir), ElementsAre("w.pth"));
  EXPECT_EQ(ReadFile(path), "abc");
}

TEST(VerifiedFileWriterTest, MismatchesLeaveNothingBehind) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  const std::string path = dir + "/w.pth";
  {
    absl::StatusOr<std::unique_ptr<VerifiedFileWriter>> writer = VerifiedFileWriter::Create(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append("abc").ok());
    absl::Status status = (*writer)->Commit(3, std::string(64, '0'));
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(status.message(), HasSubstr("SHA-256 mismatch"));
  }
  EXPECT_THAT(ListDir(dir), ElementsAre());
  {
    absl::StatusOr<std::unique_ptr<VerifiedFileWriter>> writer = VerifiedFileWriter::Create(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append("abc").ok());
    absl::Status status = (*writer)->Commit(4, Sha256Hex("abc"));
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(status.message(), HasSubstr("size mismatch"));
  }
  {
    absl::StatusOr<std::unique_ptr<VerifiedFileWriter>> writer = VerifiedFileWriter::Create(path);
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ((*writer)->Commit(0, "").code(), absl::StatusCode::kDataLoss);
  }
  {
    // Abandoned: destroyed without Commit.
    absl::StatusOr<std::unique_ptr<VerifiedFileWriter>> writer = VerifiedFileWriter::Create(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append("abc").ok());
  }
  EXPECT_THAT(ListDir(dir), ElementsAre());
}

TEST(VerifiedFileWriterTest, ReplacesAnExistingFile) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  const std::string path = dir + "/w.pth";
  std::ofstream(path) << "old";
  absl::StatusOr<std::unique_ptr<VerifiedFileWriter>> writer = VerifiedFileWriter::Create(path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append("new").ok());
  ASSERT_TRUE((*writer)->Commit(3, Sha256Hex("new")).ok());
  EXPECT_EQ(ReadFile(path), "new");
}

TEST(VerifiedFileWriterTest, MissingDirectoryIsAnError) {
  const classifier::testing::TempDir missing;
  absl::StatusOr<std::unique_ptr<VerifiedFileWriter>> writer =
      VerifiedFileWriter::Create(missing.path() + "/no/such/dir/w.pth");
  ASSERT_FALSE(writer.ok());
  EXPECT_THAT(writer.status().message(), HasSubstr("cannot create"));
}

}  // namespace
}  // namespace classifier::cli
