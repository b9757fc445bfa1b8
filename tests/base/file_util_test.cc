// base/'s atomic files: a writer's pieces appear at the path whole or not at all, the temporary
// file never outlives the writer, and WriteFileAtomically is the writer's one-piece case.
#include "base/file_util.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

std::string Contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(AtomicFileWriterTest, PiecesAppearAtThePathOnlyOnCommit) {
  const testing::TempDir temp;
  const std::string path = temp.path() + "/w.pth";
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> writer = AtomicFileWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_THAT((*writer)->temp_path(), HasSubstr(path + ".tmp-"));
  ASSERT_TRUE((*writer)->Append("ab").ok());
  ASSERT_TRUE((*writer)->Append("c").ok());
  EXPECT_EQ((*writer)->size(), 3);
  EXPECT_FALSE(std::filesystem::exists(path)) << "visible before Commit";
  EXPECT_EQ(Contents((*writer)->temp_path()), "abc") << "each piece is written as it comes";
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_EQ((*writer)->Append("d").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*writer)->Commit().code(), absl::StatusCode::kFailedPrecondition);
  writer->reset();
  EXPECT_THAT(ListDir(temp.path()), ElementsAre("w.pth"));
  EXPECT_EQ(Contents(path), "abc");
}

TEST(AtomicFileWriterTest, AnUncommittedWriterLeavesTheOldFileAndNoTemporary) {
  const testing::TempDir temp;
  const std::string path = temp.path() + "/w.pth";
  testing::WriteFile(path, "old");
  {
    absl::StatusOr<std::unique_ptr<AtomicFileWriter>> abandoned = AtomicFileWriter::Create(path);
    ASSERT_TRUE(abandoned.ok());
    ASSERT_TRUE((*abandoned)->Append("new").ok());
  }
  {
    absl::StatusOr<std::unique_ptr<AtomicFileWriter>> discarded = AtomicFileWriter::Create(path);
    ASSERT_TRUE(discarded.ok());
    ASSERT_TRUE((*discarded)->Append("new").ok());
    (*discarded)->Discard();
    EXPECT_EQ((*discarded)->Commit().code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_THAT(ListDir(temp.path()), ElementsAre("w.pth"));
  EXPECT_EQ(Contents(path), "old");
  // Two writers of one path at once each have their own temporary file; the last commit wins.
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> first = AtomicFileWriter::Create(path);
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> second = AtomicFileWriter::Create(path);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE((*first)->temp_path(), (*second)->temp_path());
  ASSERT_TRUE((*first)->Append("first").ok());
  ASSERT_TRUE((*second)->Append("second").ok());
  ASSERT_TRUE((*first)->Commit().ok());
  ASSERT_TRUE((*second)->Commit().ok());
  EXPECT_EQ(Contents(path), "second");
}

TEST(AtomicFileWriterTest, AMissingDirectoryIsAnErrorButWriteFileAtomicallyCreatesIt) {
  const testing::TempDir temp;
  const std::string path = temp.path() + "/no/such/dir/w.pth";
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> writer = AtomicFileWriter::Create(path);
  ASSERT_FALSE(writer.ok());
  EXPECT_THAT(writer.status().message(), HasSubstr("cannot create"));
  EXPECT_THAT(writer.status().message(), HasSubstr(path));

  ASSERT_TRUE(WriteFileAtomically(path, "whole").ok());
  EXPECT_EQ(Contents(path), "whole");
  ASSERT_TRUE(WriteFileAtomically(path, "").ok());
  EXPECT_EQ(Contents(path), "");
  EXPECT_THAT(ListDir(temp.path() + "/no/such/dir"), ElementsAre("w.pth"));
}

// A file system that fills: a 64 KiB tmpfs the test mounts (root only; skipped otherwise).
class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
    mount_point_ = temp_.path() + "/small";
    std::filesystem::create_directories(mount_point_);
    if (std::system(
            absl::StrCat("mount -t tmpfs -o size=64k tmpfs '", mount_point_, "'").c_str()) != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs here";
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) std::system(absl::StrCat("umount '", mount_point_, "'").c_str());
  }

  testing::TempDir temp_;
  std::string mount_point_;
  bool mounted_ = false;
};

TEST(RemoveTemporaryFilesTest, RemovesOnlyTheWritersTemporaries) {
  testing::TempDir temp;
  const std::string dir = temp.path();
  // One a writer of this process leaves (its destructor never ran: the process died).
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> writer =
      AtomicFileWriter::Create(dir + "/a.pth");
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Append("half").ok());
  const std::string left_behind = (*writer)->temp_path();
  testing::WriteFile(dir + "/b.ckpt.tmp-1-2", "another process's");
  testing::WriteFile(dir + "/c.pth", "whole");
  testing::WriteFile(dir + "/d.tmp-", "not a writer's");
  testing::WriteFile(dir + "/e.tmp-12-x", "not a writer's");
  testing::WriteFile(dir + "/.tmp-1-2", "no target name");
  std::filesystem::create_directories(dir + "/sub");
  testing::WriteFile(dir + "/sub/f.tmp-1-2", "below: not looked at");
  absl::StatusOr<int> removed = RemoveTemporaryFiles(dir);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 2);
  EXPECT_FALSE(std::filesystem::exists(left_behind));
  EXPECT_THAT(ListDir(dir),
              ::testing::UnorderedElementsAre(".tmp-1-2", "c.pth", "d.tmp-", "e.tmp-12-x", "sub"));
  EXPECT_EQ(*RemoveTemporaryFiles(dir + "/missing"), 0) << "a missing folder has none";
  (*writer)->Discard();
}

TEST(RunMarkerTest, TellsACleanStopFromACrashAndKeepsTheFirstCrashedRunsTime) {
  testing::TempDir temp;
  const std::string path = temp.path() + "/server.running";
  {
    absl::StatusOr<std::unique_ptr<RunMarker>> first = RunMarker::Create(path);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_TRUE((*first)->previous_run_stopped_cleanly()) << "no marker: nothing ran here";
    EXPECT_TRUE(std::filesystem::exists(path)) << "present while it runs";
  }
  EXPECT_FALSE(std::filesystem::exists(path)) << "a clean stop removes it";

  // A run killed before its destructor: its marker stays, with the time that run began.
  testing::WriteFile(path, "4242\n");
  const auto crashed_at = std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  std::filesystem::last_write_time(path, crashed_at);
  {
    absl::StatusOr<std::unique_ptr<RunMarker>> after_crash = RunMarker::Create(path);
    ASSERT_TRUE(after_crash.ok()) << after_crash.status();
    EXPECT_FALSE((*after_crash)->previous_run_stopped_cleanly());
    EXPECT_EQ((*after_crash)->unclean_since(), crashed_at);
    EXPECT_EQ(std::filesystem::last_write_time(path), crashed_at)
        << "kept as it was: should this run crash too, the next looks back to the first";
  }
  absl::StatusOr<std::unique_ptr<RunMarker>> next = RunMarker::Create(path);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE((*next)->previous_run_stopped_cleanly());
}

TEST(FileSystemFullTest, OnlyAFileSystemFullErrorIsOne) {
  const absl::Status full = FileSystemFullError("cannot write /state/x");
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(full.message(), "cannot write /state/x (the file system holding it is full)");
  EXPECT_TRUE(IsFileSystemFull(full));
  const absl::Status copy = full;
  EXPECT_TRUE(IsFileSystemFull(copy));
  EXPECT_FALSE(IsFileSystemFull(absl::ResourceExhaustedError("the job queue is full")));
  EXPECT_FALSE(IsFileSystemFull(absl::InternalError("cannot write /state/x")));
  EXPECT_FALSE(IsFileSystemFull(absl::OkStatus()));
}

TEST_F(FullDiskTest, AFullDiskIsResourceExhaustedNamingThePathAndLeavesTheOldFileWhole) {
  const std::string path = mount_point_ + "/w.pth";
  const std::string old_contents(16 * 1024, 'o');
  ASSERT_TRUE(WriteFileAtomically(path, old_contents).ok());

  const absl::Status full = WriteFileAtomically(path, std::string(256 * 1024, 'n'));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_THAT(full.message(), HasSubstr(path));
  EXPECT_THAT(full.message(), HasSubstr("full"));
  EXPECT_TRUE(IsFileSystemFull(full)) << "callers can tell it from other RESOURCE_EXHAUSTED";
  EXPECT_EQ(Contents(path), old_contents) << "the old file is whole";
  EXPECT_THAT(ListDir(mount_point_), ElementsAre("w.pth")) << "no temporary file is left";

  // The space the failed write took is free again: a write that fits succeeds.
  ASSERT_TRUE(WriteFileAtomically(path, "new").ok());
  EXPECT_EQ(Contents(path), "new");

  // A writer filled piece by piece fails at the piece that does not fit, and leaves nothing.
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> writer =
      AtomicFileWriter::Create(mount_point_ + "/pieces.bin");
  ASSERT_TRUE(writer.ok()) << writer.status();
  absl::Status appended = absl::OkStatus();
  for (int i = 0; i < 64 && appended.ok(); ++i) {
    appended = (*writer)->Append(std::string(8 * 1024, 'p'));
  }
  EXPECT_EQ(appended.code(), absl::StatusCode::kResourceExhausted) << appended;
  writer->reset();
  EXPECT_THAT(ListDir(mount_point_), ElementsAre("w.pth"));
}

}  // namespace
}  // namespace classifier
