// A job's training curves as TensorBoard event files: `tensorboard --logdir STATE/runs` shows
// every job (and every trial of a sweep) side by side. The files are a view of the job's
// epoch_end events, written as they happen; the event log stays the source of truth, so a file
// that cannot be written costs the curves (logged), never the job.
#ifndef CLASSIFIER_SERVER_TENSORBOARD_LOG_H_
#define CLASSIFIER_SERVER_TENSORBOARD_LOG_H_

#include <memory>
#include <string>
#include <vector>

#include "base/tfevents.h"
#include "classifier/v1/classifier.pb.h"

namespace classifier {

// <runs_dir>/<job_id> for a plain job, <runs_dir>/<job_id>/trial-<n> for trial n of a sweep.
std::string TensorBoardRunDir(const std::string& runs_dir, const std::string& job_id, int trial);

// The scalars of one epoch, tagged as TensorBoard groups them: train/loss, train/accuracy,
// validation/loss and validation/accuracy (when the job validates), learning_rate and
// images_per_second.
std::vector<TensorBoardScalar> EpochScalars(const v1::JobEvent::EpochEnd& epoch_end);

class TensorBoardLog {
 public:
  // `run_dir` empty: writes nothing.
  explicit TensorBoardLog(std::string run_dir) : run_dir_(std::move(run_dir)) {}

  // A training run starts (again) after `epochs_done` complete epochs: the next epoch goes to a
  // new file, which first tells TensorBoard to drop whatever earlier files hold from that epoch
  // on (a run that crashed after writing an epoch whose checkpoint it did not keep redoes it).
  void StartRun(int epochs_done);
  // Writes the epoch's scalars at step `epoch`. A failure is logged once per run, and the run
  // writes no more.
  void RecordEpoch(const v1::JobEvent::EpochEnd& epoch_end);

 private:
  const std::string run_dir_;
  int first_epoch_ = 1;
  std::unique_ptr<EventFileWriter> writer_;
  bool failed_ = false;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_TENSORBOARD_LOG_H_
