// TensorBoard's event files: what `tensorboard --logdir` reads. A file is a sequence of
// TFRecords (length, masked CRC-32C of the length, the bytes, masked CRC-32C of the bytes), each
// one a serialized `tensorboard.Event`; the first says the format's version, the others carry a
// step, a wall time and a Summary of scalar values. The messages are few and small, so they are
// encoded here by hand (field numbers from TensorBoard's event.proto and summary.proto) rather
// than through protobuf: this layer links no protobuf.
#ifndef CLASSIFIER_BASE_TFEVENTS_H_
#define CLASSIFIER_BASE_TFEVENTS_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace classifier {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses it.
uint32_t Crc32c(std::string_view data);
// TFRecord's masked form of a CRC: rotated right by 15 bits plus 0xa282ead8, so that a CRC of
// bytes that themselves hold CRCs does not degenerate.
uint32_t MaskedCrc32c(std::string_view data);
// One TFRecord: `data` framed with its length and both checksums.
std::string TfRecord(std::string_view data);

struct TensorBoardScalar {
  std::string tag;  // e.g. "train/loss"; a '/' groups charts in TensorBoard.
  float value = 0;
};

// The serialized Events (without framing).
// The first event of every file: its wall time and file_version "brain.Event:2".
std::string FileVersionEvent(double wall_time);
// Scalars at one step (Summary.Value.simple_value each).
std::string ScalarsEvent(double wall_time, int64_t step,
                         const std::vector<TensorBoardScalar>& scalars);
// A SessionLog START at `step`: the run restarted from there. TensorBoard then drops what the
// earlier files hold at later steps (written by a run that crashed and redid them).
std::string SessionStartEvent(double wall_time, int64_t step);

// Appends events to a new file in a run's directory, named as TensorBoard and PyTorch's
// SummaryWriter name theirs (events.out.tfevents.<seconds>.<host>.<pid>.<microseconds>): a run that
// resumes writes a new file beside the earlier ones and never appends to a file a crash may have
// cut short. Each Write reaches the file system at once (flushed, not fsynced: a live TensorBoard
// sees it; a crash may cut the last record, which TensorBoard ignores). Not thread-safe.
class EventFileWriter {
 public:
  // Creates `dir` (and its parents) and the file, whose first record is the version event.
  // Errors name the path.
  static absl::StatusOr<std::unique_ptr<EventFileWriter>> Create(const std::string& dir,
                                                                 double wall_time);
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  // Frames and appends one serialized Event. Errors name the path.
  absl::Status Write(std::string_view event);

  const std::string& path() const { return path_; }

 private:
  EventFileWriter(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}

  const std::string path_;
  std::FILE* const file_;
};

}  // namespace classifier

#endif  // CLASSIFIER_BASE_TFEVENTS_H_
