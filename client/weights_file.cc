#include "client/weights_file.h"

#include <sys/stat.h>
#include <unistd.h>

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

absl::StatusOr<std::unique_ptr<VerifiedFileWriter>> VerifiedFileWriter::Create(
    const std::string& path) {
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> file = AtomicFileWriter::Create(path);
  if (!file.ok()) return file.status();
  ArmCleanup((*file)->temp_path());
  return std::unique_ptr<VerifiedFileWriter>(new VerifiedFileWriter(*std::move(file)));
}

VerifiedFileWriter::VerifiedFileWriter(std::unique_ptr<AtomicFileWriter> file)
    : file_(std::move(file)) {}

VerifiedFileWriter::~VerifiedFileWriter() { Discard(); }

void VerifiedFileWriter::Discard() {
  file_->Discard();  // Nothing to remove once committed.
  DisarmCleanup();
  closed_ = true;
}

absl::Status VerifiedFileWriter::Append(absl::string_view data) {
  if (closed_) return absl::FailedPreconditionError("file already closed");
  digest_.Update(std::string_view(data.data(), data.size()));
  return file_->Append(std::string_view(data.data(), data.size()));
}

absl::Status VerifiedFileWriter::Commit(int64_t expected_size, absl::string_view expected_sha256) {
  if (closed_) return absl::FailedPreconditionError("file already closed");
  const std::string digest = digest_.FinishHex();
  if (size() != expected_size) {
    Discard();
    return absl::DataLossError(absl::StrFormat(
        "size mismatch: received %d bytes, the server announced %d", size(), expected_size));
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
  sha256_ = digest;
  absl::Status committed = file_->Commit();
  Discard();  // Renamed, or already removed by the failed Commit: only disarms the cleanup.
  return committed;
}

}  // namespace classifier::cli
