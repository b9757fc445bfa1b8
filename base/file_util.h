// Files that are never half-written: write to a temporary name, fsync, rename,
// fsync the directory. And their SHA-256.
#ifndef CLASSIFIER_BASE_FILE_UTIL_H_
#define CLASSIFIER_BASE_FILE_UTIL_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace classifier {

// Replaces `path` with `contents` atomically: readers see the old file or the
// whole new one, and after a crash the file is either absent, old or complete.
// Creates missing parent directories. Errors name the path.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

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
  // Lower-case hex; call once.
  std::string FinishHex();

 private:
  struct Context;
  std::unique_ptr<Context> context_;  // An OpenSSL EVP_MD_CTX, kept out of this header.
};

}  // namespace classifier

#endif  // CLASSIFIER_BASE_FILE_UTIL_H_
