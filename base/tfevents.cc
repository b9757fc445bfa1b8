#include "base/tfevents.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace classifier {
namespace {

constexpr std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) != 0 ? 0x82F63B78u : 0);
    table[byte] = crc;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = MakeCrc32cTable();

// Protobuf's wire format, the few pieces the events need.
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void PutVarint(std::string* out, uint64_t value) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}
void PutTag(std::string* out, uint32_t field, WireType type) {
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | type);
}
void PutLittleEndian(std::string* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}
void PutDouble(std::string* out, uint32_t field, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  PutTag(out, field, kFixed64);
  PutLittleEndian(out, bits, 8);
}
void PutFloat(std::string* out, uint32_t field, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  PutTag(out, field, kFixed32);
  PutLittleEndian(out, bits, 4);
}
void PutInt64(std::string* out, uint32_t field, int64_t value) {
  PutTag(out, field, kVarint);
  PutVarint(out, static_cast<uint64_t>(value));
}
void PutBytes(std::string* out, uint32_t field, std::string_view bytes) {
  PutTag(out, field, kLengthDelimited);
  PutVarint(out, bytes.size());
  out->append(bytes);
}

// tensorboard.Event's fields (event.proto).
constexpr uint32_t kEventWallTime = 1;
constexpr uint32_t kEventStep = 2;
constexpr uint32_t kEventFileVersion = 3;
constexpr uint32_t kEventSummary = 5;
constexpr uint32_t kEventSessionLog = 7;
// tensorboard.Summary and Summary.Value (summary.proto).
constexpr uint32_t kSummaryValue = 1;
constexpr uint32_t kValueTag = 1;
constexpr uint32_t kValueSimpleValue = 2;
// tensorboard.SessionLog: status, of which START is 1.
constexpr uint32_t kSessionLogStatus = 1;
constexpr int64_t kSessionLogStart = 1;

std::string EventHeader(double wall_time, int64_t step) {
  std::string event;
  PutDouble(&event, kEventWallTime, wall_time);
  if (step != 0) PutInt64(&event, kEventStep, step);
  return event;
}

}  // namespace

uint32_t Crc32c(std::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const char c : data) {
    crc = kCrc32cTable[(crc ^ static_cast<unsigned char>(c)) & 0xFF] ^ (crc >> 8);
  }
  return crc ^ 0xFFFFFFFFu;
}

uint32_t MaskedCrc32c(std::string_view data) {
  const uint32_t crc = Crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string TfRecord(std::string_view data) {
  std::string length;
  PutLittleEndian(&length, data.size(), 8);
  std::string record = length;
  PutLittleEndian(&record, MaskedCrc32c(length), 4);
  record.append(data);
  PutLittleEndian(&record, MaskedCrc32c(data), 4);
  return record;
}

std::string FileVersionEvent(double wall_time) {
  std::string event = EventHeader(wall_time, 0);
  PutBytes(&event, kEventFileVersion, "brain.Event:2");
  return event;
}

std::string ScalarsEvent(double wall_time, int64_t step,
                         const std::vector<TensorBoardScalar>& scalars) {
  std::string summary;
  for (const TensorBoardScalar& scalar : scalars) {
    std::string value;
    PutBytes(&value, kValueTag, scalar.tag);
    PutFloat(&value, kValueSimpleValue, scalar.value);
    PutBytes(&summary, kSummaryValue, value);
  }
  std::string event = EventHeader(wall_time, step);
  PutBytes(&event, kEventSummary, summary);
  return event;
}

std::string SessionStartEvent(double wall_time, int64_t step) {
  std::string session_log;
  PutInt64(&session_log, kSessionLogStatus, kSessionLogStart);
  std::string event = EventHeader(wall_time, step);
  PutBytes(&event, kEventSessionLog, session_log);
  return event;
}

absl::StatusOr<std::unique_ptr<EventFileWriter>> EventFileWriter::Create(const std::string& dir,
                                                                         double wall_time) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  }
  // The microseconds, zero-padded, keep apart (and in TensorBoard's order: it reads a run's
  // files sorted by name) two files one process opens in one second: a job that resumes at once.
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) std::strcpy(host.data(), "localhost");
  const auto seconds = static_cast<int64_t>(wall_time);
  const auto microseconds = static_cast<int64_t>((wall_time - static_cast<double>(seconds)) * 1e6);
  const std::string path =
      absl::StrCat(dir, "/events.out.tfevents.", seconds, ".", host.data(), ".", getpid(), ".",
                   absl::Dec(microseconds, absl::kZeroPad6));
  // "x": never an existing file.
  std::FILE* file = std::fopen(path.c_str(), "wbx");
  if (file == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  std::unique_ptr<EventFileWriter> writer(new EventFileWriter(path, file));
  if (absl::Status status = writer->Write(FileVersionEvent(wall_time)); !status.ok()) {
    return status;
  }
  return writer;
}

EventFileWriter::~EventFileWriter() { std::fclose(file_); }

absl::Status EventFileWriter::Write(std::string_view event) {
  const std::string record = TfRecord(event);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() ||
      std::fflush(file_) != 0) {
    const int error = errno;
    std::clearerr(file_);
    return absl::InternalError(absl::StrCat("cannot write ", path_, ": ", std::strerror(error)));
  }
  return absl::OkStatus();
}

}  // namespace classifier
