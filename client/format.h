// Text that classifier-cli prints. Every format here is documented in client/README.md and
// relied on by scripts and the end-to-end tests: change both together.
#ifndef CLASSIFIER_CLIENT_FORMAT_H_
#define CLASSIFIER_CLIENT_FORMAT_H_

#include <ostream>
#include <string>
#include <vector>

#include "classifier/v1/classifier.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"

namespace classifier::cli {

// Cells of the progress bar.
inline constexpr int kProgressBarWidth = 20;

// "4.1s" below a minute, "2m05s" below an hour, then "1h02m". Negative or non-finite: "?".
std::string FormatDuration(double seconds);
// A fraction as a percentage with two decimals: 0.97851 -> "97.85%".
std::string FormatPercent(double fraction);
// `fraction` of a `width`-cell bar in Unicode eighth blocks, between bars: "|████▌     |".
// The fraction is clamped to [0, 1].
std::string ProgressBar(double fraction, int width = kProgressBarWidth);

// "queued", "running", "succeeded", "failed", "cancelled", "interrupted", "unspecified".
std::string StateName(v1::JobState state);
std::string SplitName(v1::DatasetSplit split);  // "test" (also for unspecified) or "train".
// RFC 3339 in UTC, e.g. "2024-05-01T12:00:03Z"; "-" when unset (zero).
std::string FormatTimestamp(const google::protobuf::Timestamp& time);

// epoch 3/10 |████████████████████| 100% loss 0.0712 acc 97.85% [val_loss 0.0650 val_acc
// 98.02% ]18234 img/s elapsed 4.1s eta 9.6s
std::string EpochLine(const v1::JobEvent::EpochEnd& epoch);
// epoch 3/10 |█████████           |  45% 450/1000 loss 0.0712 acc 97.85% 18234 img/s
std::string ProgressLine(const v1::JobEvent::Progress& progress);

// The message as one line of JSON, with the .proto field names and every field printed, even
// when it holds its default value (int64 values are strings, as proto3's JSON mapping says).
std::string ToJsonLine(const google::protobuf::Message& message);

// Left-aligned columns separated by two spaces, the header first; no trailing spaces.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

std::string JobsTable(const v1::ListJobsResponse& jobs);
std::string JobDetails(const v1::Job& job);
std::string ModelsTable(const v1::ListModelsResponse& models);
std::string EvaluationReport(const v1::EvaluateResponse& evaluation);
// One block per file: "FILE: LABEL (p=0.9876)", then "  top N: LABEL (p=...)" lines when
// more than one label was asked for. `files` and the predictions are in the same order.
std::string PredictionReport(const std::vector<std::string>& files,
                             const v1::PredictResponse& response, int top_k);

// Prints a job's events as they arrive: one line per event, progress within an epoch
// redrawn in place on a terminal and left out otherwise, or one JSON object per line.
class JobEventPrinter {
 public:
  JobEventPrinter(std::ostream& out, bool terminal, bool json)
      : out_(out), terminal_(terminal), json_(json) {}
  JobEventPrinter(const JobEventPrinter&) = delete;
  JobEventPrinter& operator=(const JobEventPrinter&) = delete;
  ~JobEventPrinter() { EndLine(); }

  void Print(const v1::JobEvent& event);
  // Ends a progress line still being redrawn, so that what follows starts on a new line.
  void EndLine();

 private:
  std::ostream& out_;
  const bool terminal_;
  const bool json_;
  bool line_open_ = false;  // A progress line was drawn without its newline.
};

}  // namespace classifier::cli

#endif  // CLASSIFIER_CLIENT_FORMAT_H_
