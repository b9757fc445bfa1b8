#include "base/file_util.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace classifier {
namespace {

absl::Status ErrnoError(const char* what, const std::string& path) {
  const int error = errno;
  std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(error));
  if (error == ENOSPC || error == EDQUOT) return FileSystemFullError(message);
  return absl::InternalError(std::move(message));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError("cannot fsync", path);
  return absl::OkStatus();
}

// Marks a FileSystemFullError, so that callers need not read its message.
constexpr char kFileSystemFullPayload[] = "classifier/file-system-full";

// AtomicFileWriter's temporaries are named <path><kTemporarySuffix><pid>-<random>.
constexpr char kTemporarySuffix[] = ".tmp-";

bool IsTemporaryName(const std::string& name) {
  const size_t suffix = name.rfind(kTemporarySuffix);
  if (suffix == std::string::npos || suffix == 0) return false;
  const std::string rest = name.substr(suffix + std::strlen(kTemporarySuffix));
  const size_t dash = rest.find('-');
  auto digits = [](const std::string& text) {
    return !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  };
  return dash != std::string::npos && digits(rest.substr(0, dash)) && digits(rest.substr(dash + 1));
}

}  // namespace

absl::Status FileSystemFullError(const std::string& message) {
  absl::Status status =
      absl::ResourceExhaustedError(absl::StrCat(message, " (the file system holding it is full)"));
  status.SetPayload(kFileSystemFullPayload, absl::Cord());
  return status;
}

bool IsFileSystemFull(const absl::Status& status) {
  return absl::IsResourceExhausted(status) && status.GetPayload(kFileSystemFullPayload).has_value();
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path directory = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code error;
  fs::create_directories(directory, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create directory ", directory.string(), ": ", error.message()));
  }
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> file = AtomicFileWriter::Create(path);
  if (!file.ok()) return file.status();
  if (absl::Status status = (*file)->Append(contents); !status.ok()) return status;
  return (*file)->Commit();
}

absl::StatusOr<int> RemoveTemporaryFiles(const std::string& directory) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::exists(directory, error)) return 0;
  int removed = 0;
  for (fs::directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
    if (!it->is_regular_file(error) || !IsTemporaryName(it->path().filename().string())) continue;
    fs::remove(it->path(), error);
    if (error) {
      return absl::InternalError(absl::StrCat("cannot remove the temporary file ",
                                              it->path().string(), ": ", error.message()));
    }
    ++removed;
  }
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot list the directory ", directory, ": ", error.message()));
  }
  return removed;
}

absl::StatusOr<std::unique_ptr<RunMarker>> RunMarker::Create(const std::string& path) {
  std::error_code error;
  const std::filesystem::file_time_type kept = std::filesystem::last_write_time(path, error);
  if (!error) return std::unique_ptr<RunMarker>(new RunMarker(path, kept));
  if (error != std::errc::no_such_file_or_directory) {
    return absl::InternalError(absl::StrCat("cannot look at ", path, ": ", error.message()));
  }
  if (absl::Status written = WriteFileAtomically(path, absl::StrCat(::getpid(), "\n"));
      !written.ok()) {
    return written;
  }
  return std::unique_ptr<RunMarker>(new RunMarker(path, std::nullopt));
}

RunMarker::~RunMarker() { ::unlink(path_.c_str()); }

absl::StatusOr<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Create(
    const std::string& path) {
  // A name no other writer of this or another process uses, so that O_EXCL never trips on a
  // writer in progress (or on one a crash left behind).
  std::random_device entropy;
  const std::string temp_path =
      absl::StrCat(path, kTemporarySuffix, ::getpid(), "-", entropy() & 0xffffff);
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", temp_path);
  return std::unique_ptr<AtomicFileWriter>(new AtomicFileWriter(path, temp_path, fd));
}

AtomicFileWriter::AtomicFileWriter(std::string path, std::string temp_path, int fd)
    : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {}

AtomicFileWriter::~AtomicFileWriter() {
  if (!done_) Discard();
}

void AtomicFileWriter::Discard() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!done_) ::unlink(temp_path_.c_str());
  done_ = true;
}

absl::Status AtomicFileWriter::Append(std::string_view data) {
  if (done_ || fd_ < 0) return absl::FailedPreconditionError(path_ + ": file already closed");
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot write", temp_path_);
    }
    data.remove_prefix(static_cast<size_t>(n));
    size_ += n;
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (done_ || fd_ < 0) return absl::FailedPreconditionError(path_ + ": file already closed");
  if (::fsync(fd_) != 0) {
    absl::Status status = ErrnoError("cannot fsync", temp_path_);
    Discard();
    return status;
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    absl::Status status = ErrnoError("cannot close", temp_path_);
    Discard();
    return status;
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    absl::Status status = ErrnoError("cannot rename to", path_);
    Discard();
    return status;
  }
  done_ = true;
  // The rename itself is durable only once the directory entry is.
  const std::filesystem::path target(path_);
  return FsyncPath(target.has_parent_path() ? target.parent_path().string() : ".",
                   O_RDONLY | O_DIRECTORY);
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!std::filesystem::exists(path)) return absl::NotFoundError(absl::StrCat("no file ", path));
    return absl::InternalError(absl::StrCat("cannot open ", path));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return std::move(contents).str();
}

struct Sha256::Context {
  EVP_MD_CTX* md = nullptr;
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
  context_->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(context_->md, EVP_sha256(), nullptr);
}

Sha256::~Sha256() { EVP_MD_CTX_free(context_->md); }

void Sha256::Update(std::string_view data) {
  EVP_DigestUpdate(context_->md, data.data(), data.size());
}

std::string Sha256::Finish() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context_->md, digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string Sha256::FinishHex() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (const char byte : Finish()) {
    hex.push_back(kHex[static_cast<unsigned char>(byte) >> 4]);
    hex.push_back(kHex[static_cast<unsigned char>(byte) & 0xf]);
  }
  return hex;
}

std::string Sha256Hex(std::string_view data) {
  Sha256 hash;
  hash.Update(data);
  return hash.FinishHex();
}

}  // namespace classifier
