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

// A download written with base's AtomicFileWriter (a temporary file beside `path`, renamed over
// it by Commit) and checked before it is committed: Commit() refuses a file whose size or
// SHA-256 differs from what the server announced. Destroying the writer before a successful
// Commit() removes the temporary file, and so does SIGINT / SIGTERM / SIGHUP while one is open
// (only one writer per process may be open at a time). Not thread-safe.
class VerifiedFileWriter {
 public:
  // Creates the temporary file. Errors: the OS's, naming the path (a missing directory too).
  static absl::StatusOr<std::unique_ptr<VerifiedFileWriter>> Create(const std::string& path);
  ~VerifiedFileWriter();
  VerifiedFileWriter(const VerifiedFileWriter&) = delete;
  VerifiedFileWriter& operator=(const VerifiedFileWriter&) = delete;

  // Writes `data` at once: a download is streamed to disk as its chunks arrive.
  absl::Status Append(absl::string_view data);
  // Checks that exactly `expected_size` bytes were written and that their SHA-256 is
  // `expected_sha256` (hex, any case): DATA_LOSS when not, and the temporary file is removed.
  // Then commits the file (AtomicFileWriter::Commit).
  absl::Status Commit(int64_t expected_size, absl::string_view expected_sha256);

  int64_t size() const { return file_->size(); }
  const std::string& path() const { return file_->path(); }
  const std::string& temp_path() const { return file_->temp_path(); }
  // The hex digest of what was written, valid after a successful Commit().
  const std::string& sha256() const { return sha256_; }

 private:
  explicit VerifiedFileWriter(std::unique_ptr<AtomicFileWriter> file);
  void Discard();

  const std::unique_ptr<AtomicFileWriter> file_;
  Sha256 digest_;        // Of what was appended.
  bool closed_ = false;  // Committed or discarded.
  std::string sha256_;
};

}  // namespace classifier::cli

#endif  // CLASSIFIER_CLIENT_WEIGHTS_FILE_H_
