#include "server/tensorboard_log.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace classifier {
namespace {

double NowSeconds() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

}  // namespace

std::string TensorBoardRunDir(const std::string& runs_dir, const std::string& job_id, int trial) {
  std::string dir = absl::StrCat(runs_dir, "/", job_id);
  if (trial > 0) absl::StrAppend(&dir, "/trial-", trial);
  return dir;
}

std::vector<TensorBoardScalar> EpochScalars(const v1::JobEvent::EpochEnd& epoch_end) {
  std::vector<TensorBoardScalar> scalars = {
      {"train/loss", static_cast<float>(epoch_end.train_loss())},
      {"train/accuracy", static_cast<float>(epoch_end.train_accuracy())},
  };
  if (epoch_end.has_validation_loss()) {
    scalars.push_back({"validation/loss", static_cast<float>(epoch_end.validation_loss())});
  }
  if (epoch_end.has_validation_accuracy()) {
    scalars.push_back({"validation/accuracy", static_cast<float>(epoch_end.validation_accuracy())});
  }
  scalars.push_back({"learning_rate", static_cast<float>(epoch_end.learning_rate())});
  scalars.push_back({"images_per_second", static_cast<float>(epoch_end.images_per_second())});
  return scalars;
}

void TensorBoardLog::StartRun(int epochs_done) {
  writer_.reset();
  failed_ = false;
  first_epoch_ = epochs_done + 1;
}

void TensorBoardLog::RecordEpoch(const v1::JobEvent::EpochEnd& epoch_end) {
  if (run_dir_.empty() || failed_) return;
  absl::Status status = absl::OkStatus();
  const double now = NowSeconds();
  if (writer_ == nullptr) {
    absl::StatusOr<std::unique_ptr<EventFileWriter>> created =
        EventFileWriter::Create(run_dir_, now);
    status = created.status();
    if (created.ok()) {
      writer_ = *std::move(created);
      status = writer_->Write(SessionStartEvent(now, first_epoch_));
    }
  }
  if (status.ok())
    status = writer_->Write(ScalarsEvent(now, epoch_end.epoch(), EpochScalars(epoch_end)));
  if (!status.ok()) {
    spdlog::warn("TensorBoard curves stop for {}: {}", run_dir_, std::string(status.message()));
    failed_ = true;
    writer_.reset();
  }
}

}  // namespace classifier
