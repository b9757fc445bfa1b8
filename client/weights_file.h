// Saving downloaded weights without ever leaving a half-written or unverified file behind.
#ifndef CLASSIFIER_CLIENT_WEIGHTS_FILE_H_
#define CLASSIFIER_CLIENT_WEIGHTS_FILE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/file_util.h"

namespace classifier::cli {

// The file name to save a server's weights under: the last path component of `from_server`
// when that is a plain name (no "." / ".." / control characters), else `model-<id><extension>`.
std::string SafeFileName(absl::string_view from_server, absl::string_view model_id,
                         absl::string_view extension = ".pth");

// `name` ending in `extension` (e.g. ".onnx"): unchanged when it already does (any case), a
// PyTorch extension (".pth", ".pt") replaced, else `extension` appended.
std::string WithExtension(absl::string_view name, absl::string_view extension);

// Where `export` writes: `out` itself, or `out`/`file_name` when `out` is an existing
// directory, or `file_name` in the current directory when `out` is empty.
std::string ResolveOutputPath(const std::string& out, const std::string& file_name);

// Writes `path` atomically: the bytes go to `path`.tmp-<pid> in the same directory while
// their SHA-256 is computed; Commit() checks the size and digest, fsyncs the file, renames it
// over `path` and fsyncs the directory. Destroying the writer before a successful Commit()
// removes the temporary file, and so does SIGINT / SIGTERM / SIGHUP while one is open (only
// one writer per process may be open at a time). Not thread-safe.
class AtomicFileWriter {
 public:
  // Creates the temporary file. Errors: the OS's, naming the path.
  static absl::StatusOr<std::unique_ptr<AtomicFileWriter>> Create(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  absl::Status Append(absl::string_view data);
  // Checks that exactly `expected_size` bytes were written and that their SHA-256 is
  // `expected_sha256` (hex, any case): DATA_LOSS when not, and the temporary file is removed.
  absl::Status Commit(int64_t expected_size, absl::string_view expected_sha256);

  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  // The hex digest of what was written, valid after a successful Commit().
  const std::string& sha256() const { return sha256_; }

 private:
  AtomicFileWriter(std::string path, std::string temp_path, int fd);
  void Discard();

  const std::string path_;
  const std::string temp_path_;
  int fd_;         // -1 once closed.
  Sha256 digest_;  // Of what was appended.
  int64_t size_ = 0;
  bool committed_ = false;
  std::string sha256_;
};

}  // namespace classifier::cli

#endif  // CLASSIFIER_CLIENT_WEIGHTS_FILE_H_
