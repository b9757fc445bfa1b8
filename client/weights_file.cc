#include "client/weights_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace classifier::cli {
namespace {

// The temporary file to remove if a signal ends the process. A signal handler can only see
// globals; these are written before the flag arms them and read only by the handler.
constexpr size_t kMaxCleanupPath = 4096;
char cleanup_path[kMaxCleanupPath];
volatile sig_atomic_t cleanup_armed = 0;

extern "C" void RemoveTempFileAndDie(int signal_number) {
  if (cleanup_armed) unlink(cleanup_path);  // Async-signal-safe.
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

void ArmCleanup(const std::string& temp_path) {
  if (temp_path.size() >= kMaxCleanupPath) return;
  static const bool installed = [] {
    struct sigaction action;
    std::memset(&action, 0, sizeof(action));
    action.sa_handler = RemoveTempFileAndDie;
    sigemptyset(&action.sa_mask);
    for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) sigaction(signal_number, &action, nullptr);
    return true;
  }();
  (void)installed;
  cleanup_armed = 0;
  std::memcpy(cleanup_path, temp_path.c_str(), temp_path.size() + 1);
  cleanup_armed = 1;
}

void DisarmCleanup() { cleanup_armed = 0; }

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  const int error = errno;
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(error)));
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string SafeFileName(absl::string_view from_server, absl::string_view model_id,
                         absl::string_view extension) {
  const size_t slash = from_server.find_last_of("/\\");
  absl::string_view name =
      slash == absl::string_view::npos ? from_server : from_server.substr(slash + 1);
  bool safe = !name.empty() && name != "." && name != "..";
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) safe = false;
  }
  if (safe) return std::string(name);
  std::string id;
  for (char c : model_id) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') id += c;
  }
  return absl::StrCat("model-", id.empty() ? "weights" : id, extension);
}

std::string WithExtension(absl::string_view name, absl::string_view extension) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (absl::EndsWith(lower, absl::AsciiStrToLower(extension))) return std::string(name);
  for (absl::string_view pytorch : {".pth", ".pt"}) {
    if (absl::EndsWith(lower, pytorch) && name.size() > pytorch.size()) {
      return absl::StrCat(name.substr(0, name.size() - pytorch.size()), extension);
    }
  }
  return absl::StrCat(name, extension);
}

std::string ResolveOutputPath(const std::string& out, const std::string& file_name) {
  if (out.empty()) return file_name;
  struct stat info;
  if (stat(out.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    return out.back() == '/' ? out + file_name : absl::StrCat(out, "/", file_name);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Create(
    const std::string& path) {
  const std::string temp_path = absl::StrCat(path, ".tmp-", getpid());
  const int fd = open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", temp_path);
  ArmCleanup(temp_path);
  return std::unique_ptr<AtomicFileWriter>(new AtomicFileWriter(path, temp_path, fd));
}

AtomicFileWriter::AtomicFileWriter(std::string path, std::string temp_path, int fd)
    : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) Discard();
}

void AtomicFileWriter::Discard() {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  unlink(temp_path_.c_str());
  DisarmCleanup();
}

absl::Status AtomicFileWriter::Append(absl::string_view data) {
  if (fd_ < 0 || committed_) return absl::FailedPreconditionError("file already closed");
  digest_.Update(std::string_view(data.data(), data.size()));
  while (!data.empty()) {
    const ssize_t written = write(fd_, data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot write", temp_path_);
    }
    data.remove_prefix(static_cast<size_t>(written));
    size_ += written;
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit(int64_t expected_size, absl::string_view expected_sha256) {
  if (fd_ < 0 || committed_) return absl::FailedPreconditionError("file already closed");
  const std::string digest = digest_.FinishHex();
  if (size_ != expected_size) {
    Discard();
    return absl::DataLossError(absl::StrFormat(
        "size mismatch: received %d bytes, the server announced %d", size_, expected_size));
  }
  if (expected_sha256.empty()) {
    Discard();
    return absl::DataLossError("the server sent no SHA-256 to check the file against");
  }
  if (absl::AsciiStrToLower(expected_sha256) != digest) {
    Discard();
    return absl::DataLossError(absl::StrFormat(
        "SHA-256 mismatch: received %s, the server announced %s", digest, expected_sha256));
  }
  if (fsync(fd_) != 0) {
    absl::Status status = ErrnoError("cannot fsync", temp_path_);
    Discard();
    return status;
  }
  const int fd = fd_;
  fd_ = -1;
  if (close(fd) != 0) {
    absl::Status status = ErrnoError("cannot close", temp_path_);
    Discard();
    return status;
  }
  if (rename(temp_path_.c_str(), path_.c_str()) != 0) {
    absl::Status status = ErrnoError(absl::StrCat("cannot rename ", temp_path_, " to"), path_);
    Discard();
    return status;
  }
  committed_ = true;
  DisarmCleanup();
  sha256_ = digest;
  // Make the rename itself durable.
  const std::string directory = DirectoryOf(path_);
  const int dir_fd = open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoError("cannot open directory", directory);
  const int synced = fsync(dir_fd);
  close(dir_fd);
  if (synced != 0) return ErrnoError("cannot fsync directory", directory);
  return absl::OkStatus();
}

}  // namespace classifier::cli
