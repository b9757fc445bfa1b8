// Files that are never half-written: write to a temporary name, fsync, rename,
// fsync the directory. And their SHA-256.
#ifndef CLASSIFIER_BASE_FILE_UTIL_H_
#define CLASSIFIER_BASE_FILE_UTIL_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace classifier {

// A write refused because the file system is full (ENOSPC, EDQUOT, SQLITE_FULL):
// RESOURCE_EXHAUSTED, the operator's to free rather than a bug, with `message` (which names
// the file) and the reason. The one wording every layer uses.
absl::Status FileSystemFullError(const std::string& message);
// Whether `status` is (a copy of) a FileSystemFullError: a write to retry once space is freed,
// as a job does (JobManager pauses it) rather than failing.
bool IsFileSystemFull(const absl::Status& status);

// Replaces `path` with `contents` atomically: readers see the old file or the
// whole new one, and after a crash the file is either absent, old or complete.
// Creates missing parent directories. Errors name the path. AtomicFileWriter's special case:
// the whole file at once.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// A file written in pieces as they arrive (a download) that readers see whole or not at all:
// the pieces go to a temporary file beside `path` (<path>.tmp-<pid>-<n>, in the same directory
// so that the rename is atomic); Commit() fsyncs it, renames it over `path` and fsyncs the
// directory, so after a crash `path` is absent, old or complete. Destroying the writer before
// a successful Commit() removes the temporary file. Errors name the path. Not thread-safe.
class AtomicFileWriter {
 public:
  // Creates the temporary file. The directory must exist (a missing one is an error naming the
  // path; WriteFileAtomically creates it first).
  static absl::StatusOr<std::unique_ptr<AtomicFileWriter>> Create(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  absl::Status Append(std::string_view data);
  // Makes what was appended the file at `path`. On an error before the rename the temporary
  // file is removed and `path` is untouched; an error after it (fsyncing the directory) leaves
  // the new file in place. FAILED_PRECONDITION after Commit or Discard.
  absl::Status Commit();
  // Removes the temporary file; nothing more can be appended.
  void Discard();

  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  AtomicFileWriter(std::string path, std::string temp_path, int fd);

  const std::string path_;
  const std::string temp_path_;
  int fd_;  // -1 once closed.
  int64_t size_ = 0;
  bool done_ = false;  // Committed (renamed) or discarded.
};

// Removes every AtomicFileWriter temporary in `directory` (not below it): what writers left
// when their process died before Commit or Discard. Only for a directory this process owns, before
// any writer of its own starts there (a server's state folder at start). A missing directory
// has none. Returns how many went.
absl::StatusOr<int> RemoveTemporaryFiles(const std::string& directory);

// Tells whether the last process that worked in a folder stopped cleanly: a file that exists
// while one runs there. A process killed (SIGKILL, a crash, a power cut) leaves it behind, so
// the next one knows to look for what was cut short, and since when; a clean stop costs that
// look nothing.
class RunMarker {
 public:
  // Creates the marker at `path` (durably), or keeps the one a run that did not stop cleanly
  // left, with its time.
  static absl::StatusOr<std::unique_ptr<RunMarker>> Create(const std::string& path);
  // Removes the marker: this run stopped cleanly.
  ~RunMarker();
  RunMarker(const RunMarker&) = delete;
  RunMarker& operator=(const RunMarker&) = delete;

  bool previous_run_stopped_cleanly() const { return !unclean_since_.has_value(); }
  // When the first of the runs that did not stop cleanly since the last clean stop began
  // (the kept marker's modification time): what they wrote is newer.
  std::optional<std::filesystem::file_time_type> unclean_since() const { return unclean_since_; }

 private:
  RunMarker(std::string path, std::optional<std::filesystem::file_time_type> unclean_since)
      : path_(std::move(path)), unclean_since_(unclean_since) {}
  const std::string path_;
  const std::optional<std::filesystem::file_time_type> unclean_since_;
};

absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

// Lower-case hex SHA-256.
std::string Sha256Hex(std::string_view data);

// Incremental SHA-256, for data that arrives in pieces.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);
  // The 32 digest bytes; call once (this or FinishHex).
  std::string Finish();
  // Lower-case hex; call once (this or Finish).
  std::string FinishHex();

 private:
  struct Context;
  std::unique_ptr<Context> context_;  // An OpenSSL EVP_MD_CTX, kept out of this header.
};

}  // namespace classifier

#endif  // CLASSIFIER_BASE_FILE_UTIL_H_
