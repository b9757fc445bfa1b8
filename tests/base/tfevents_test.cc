#include "base/tfevents.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"

namespace classifier {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (const int byte : bytes) out.push_back(static_cast<char>(byte));
  return out;
}

uint32_t ReadLittleEndian32(const std::string& bytes, size_t at) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    value |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  }
  return value;
}

TEST(Crc32cTest, MatchesThePublishedCheckValues) {
  // The catalogue's check value for CRC-32C, and RFC 3720's (iSCSI) examples.
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(""), 0u);
}

TEST(Crc32cTest, MaskRotatesAndAddsTheConstant) {
  const uint32_t crc = Crc32c("123456789");
  EXPECT_EQ(MaskedCrc32c("123456789"), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST(TfRecordTest, FramesLengthAndChecksums) {
  const std::string record = TfRecord("hello");
  ASSERT_EQ(record.size(), 8 + 4 + 5 + 4);
  EXPECT_EQ(record.substr(0, 8), Bytes({5, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(ReadLittleEndian32(record, 8), MaskedCrc32c(record.substr(0, 8)));
  EXPECT_EQ(record.substr(12, 5), "hello");
  EXPECT_EQ(ReadLittleEndian32(record, 17), MaskedCrc32c("hello"));
}

TEST(EventTest, ScalarsEncodeAsTensorBoardsMessages) {
  // Event{wall_time: 1.5 (field 1, fixed64), step: 3 (2, varint), summary (5): Summary{value (1):
  // Value{tag (1): "a", simple_value (2, fixed32): 0.5}}}.
  const std::string expected =
      Bytes({0x09, 0,    0,    0,    0,    0,   0,    0xF8, 0x3F, 0x10, 0x03, 0x2A,
             0x0A, 0x0A, 0x08, 0x0A, 0x01, 'a', 0x15, 0,    0,    0,    0x3F});
  EXPECT_EQ(ScalarsEvent(1.5, 3, {{"a", 0.5f}}), expected);
}

TEST(EventTest, FileVersionAndSessionStart) {
  EXPECT_EQ(FileVersionEvent(1.5),
            Bytes({0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x1A, 13}) + "brain.Event:2");
  // session_log (7): SessionLog{status (1): START (1)}.
  EXPECT_EQ(SessionStartEvent(1.5, 2),
            Bytes({0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x10, 0x02, 0x3A, 0x02, 0x08, 0x01}));
}

TEST(EventFileWriterTest, WritesTheVersionThenEachEventAsARecord) {
  const std::string dir = std::string(testing::TempDir()) + "/tfevents-test/run";
  std::filesystem::remove_all(dir);
  auto writer = EventFileWriter::Create(dir, 1700000000.25);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string path = (*writer)->path();
  EXPECT_EQ(std::filesystem::path(path).parent_path(), dir);
  EXPECT_EQ(
      std::filesystem::path(path).filename().string().rfind("events.out.tfevents.1700000000.", 0),
      0u)
      << path;
  ASSERT_TRUE((*writer)->Write(ScalarsEvent(1700000001, 1, {{"train/loss", 0.25f}})).ok());
  // Readable while the writer is open: each Write is flushed.
  std::ifstream in(path, std::ios::binary);
  const std::string contents{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  EXPECT_EQ(contents, TfRecord(FileVersionEvent(1700000000.25)) +
                          TfRecord(ScalarsEvent(1700000001, 1, {{"train/loss", 0.25f}})));

  // A second writer in the same second never touches the first file, and sorts after it.
  auto second = EventFileWriter::Create(dir, 1700000000.5);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE((*second)->path(), path);
  EXPECT_GT((*second)->path(), path);
}

TEST(EventFileWriterTest, AnUnwritableDirectoryIsAnErrorNamingIt) {
  const std::string file = std::string(testing::TempDir()) + "/tfevents-test-file";
  std::ofstream(file) << "not a directory";
  auto writer = EventFileWriter::Create(file + "/run", 1);
  ASSERT_FALSE(writer.ok());
  EXPECT_NE(writer.status().message().find(file), std::string::npos) << writer.status();
}

}  // namespace
}  // namespace classifier
