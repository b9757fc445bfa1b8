#include "client/format.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace classifier::cli {
namespace {

constexpr char kFullBlock[] = "█";
// Left-aligned partial blocks, 0/8 to 7/8 of a cell.
constexpr std::array<const char*, 8> kPartialBlocks = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
// Erases from the cursor to the end of the line (ANSI).
constexpr char kClearToEndOfLine[] = "\x1b[K";

std::string OrDash(const std::string& value) { return value.empty() ? "-" : value; }

std::string FormatLoss(double loss) { return absl::StrFormat("%.4f", loss); }

// Whole percent shown beside the bar, rounded down so that 100% means done.
int WholePercent(double fraction) {
  return static_cast<int>(std::floor(std::clamp(fraction, 0.0, 1.0) * 100 + 1e-9));
}

std::string MetricsSummary(const v1::Metrics& metrics) {
  return absl::StrFormat("%s (loss %s, %d images)", FormatPercent(metrics.accuracy()),
                         FormatLoss(metrics.loss()), metrics.count());
}

// The number of epochs a job runs, as far as it is known: 0 when not yet known.
int KnownEpochs(const v1::Job& job) {
  if (job.has_latest_epoch() && job.latest_epoch().epochs() > 0) {
    return job.latest_epoch().epochs();
  }
  return job.request().epochs();
}

std::string OptimizerName(v1::OptimizerKind kind) {
  switch (kind) {
    case v1::OPTIMIZER_KIND_UNSPECIFIED:
      return "default";
    case v1::OPTIMIZER_KIND_ADAM:
      return "adam";
    case v1::OPTIMIZER_KIND_ADAMW:
      return "adamw";
    case v1::OPTIMIZER_KIND_SGD:
      return "sgd";
    default:
      return absl::StrCat("optimizer ", static_cast<int>(kind));
  }
}

std::string ScheduleName(v1::LearningRateSchedule schedule) {
  switch (schedule) {
    case v1::LEARNING_RATE_SCHEDULE_UNSPECIFIED:
    case v1::LEARNING_RATE_SCHEDULE_CONSTANT:
      return "none";
    case v1::LEARNING_RATE_SCHEDULE_STEP:
      return "step";
    case v1::LEARNING_RATE_SCHEDULE_COSINE:
      return "cosine";
    default:
      return absl::StrCat("schedule ", static_cast<int>(schedule));
  }
}

template <typename T>
std::string OrDefault(T value) {
  return value == T{} ? std::string("default") : absl::StrCat(value);
}

}  // namespace

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return absl::StrFormat("%.1fs", seconds);
  const int64_t whole = static_cast<int64_t>(seconds);
  if (whole < 3600) return absl::StrFormat("%dm%02ds", whole / 60, whole % 60);
  return absl::StrFormat("%dh%02dm", whole / 3600, (whole % 3600) / 60);
}

std::string FormatPercent(double fraction) { return absl::StrFormat("%.2f%%", fraction * 100); }

std::string ProgressBar(double fraction, int width) {
  if (!std::isfinite(fraction)) fraction = 0;
  const double cells = std::clamp(fraction, 0.0, 1.0) * width;
  const int full = std::min(width, static_cast<int>(std::floor(cells + 1e-9)));
  const int eighths = full == width ? 0 : static_cast<int>((cells - full) * 8);
  std::string bar = "|";
  for (int i = 0; i < full; ++i) bar += kFullBlock;
  int used = full;
  if (eighths > 0) {
    bar += kPartialBlocks[eighths];
    ++used;
  }
  bar.append(width - used, ' ');
  bar += "|";
  return bar;
}

std::string StateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_UNSPECIFIED:
      return "unspecified";
    case v1::JOB_STATE_QUEUED:
      return "queued";
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    case v1::JOB_STATE_CANCELLED:
      return "cancelled";
    case v1::JOB_STATE_INTERRUPTED:
      return "interrupted";
    default:
      return absl::StrCat("state-", static_cast<int>(state));
  }
}

std::string SplitName(v1::DatasetSplit split) {
  return split == v1::DATASET_SPLIT_TRAIN ? "train" : "test";
}

std::string FormatTimestamp(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(time.seconds()),
                          absl::UTCTimeZone());
}

std::string EpochLine(const v1::JobEvent::EpochEnd& epoch) {
  std::string line = absl::StrFormat(
      "epoch %d/%d %s %3d%% loss %s acc %s", epoch.epoch(), epoch.epochs(), ProgressBar(1.0), 100,
      FormatLoss(epoch.train_loss()), FormatPercent(epoch.train_accuracy()));
  if (epoch.has_validation_loss()) {
    absl::StrAppend(&line, " val_loss ", FormatLoss(epoch.validation_loss()));
  }
  if (epoch.has_validation_accuracy()) {
    absl::StrAppend(&line, " val_acc ", FormatPercent(epoch.validation_accuracy()));
  }
  absl::StrAppendFormat(&line, " %.0f img/s elapsed %s eta %s", epoch.images_per_second(),
                        FormatDuration(epoch.elapsed_seconds()),
                        FormatDuration(epoch.eta_seconds()));
  return line;
}

std::string ProgressLine(const v1::JobEvent::Progress& progress) {
  const double fraction =
      progress.batches() > 0 ? static_cast<double>(progress.batch()) / progress.batches() : 0.0;
  return absl::StrFormat("epoch %d/%d %s %3d%% %d/%d loss %s acc %s %.0f img/s", progress.epoch(),
                         progress.epochs(), ProgressBar(fraction), WholePercent(fraction),
                         progress.batch(), progress.batches(), FormatLoss(progress.train_loss()),
                         FormatPercent(progress.train_accuracy()), progress.images_per_second());
}

std::string ToJsonLine(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) {
    // Only messages with invalid contents (e.g. a timestamp out of range) fail to print.
    return absl::StrCat("{\"error\":\"cannot print ", message.GetTypeName(), " as JSON\"}");
  }
  return json;
}

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&widths](const std::vector<std::string>& row) {
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c) {
      widths[c] = std::max(widths[c], row[c].size());
    }
  };
  measure(header);
  for (const auto& row : rows) measure(row);
  // Byte widths are right for everything this prints (ASCII).
  auto render = [&widths](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(widths[c] - row[c].size() + 2, ' ');
    }
    return line + "\n";
  };
  std::string out = render(header);
  for (const auto& row : rows) out += render(row);
  return out;
}

std::string JobsTable(const v1::ListJobsResponse& jobs) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::Job& job : jobs.jobs()) {
    const int epochs = KnownEpochs(job);
    const int done = job.has_latest_epoch() ? job.latest_epoch().epoch() : 0;
    rows.push_back({
        OrDash(job.job_id()),
        StateName(job.state()),
        OrDash(job.request().dataset()),
        epochs > 0 ? absl::StrCat(epochs) : "-",
        epochs > 0 ? absl::StrCat(done, "/", epochs) : "-",
        OrDash(job.model_id()),
        job.has_test_metrics() && job.test_metrics().count() > 0
            ? FormatPercent(job.test_metrics().accuracy())
            : "-",
    });
  }
  return FormatTable({"JOB ID", "STATE", "DATASET", "EPOCHS", "PROGRESS", "MODEL ID", "TEST ACC"},
                     rows);
}

std::string JobDetails(const v1::Job& job) {
  const v1::TrainRequest& request = job.request();
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"job_id", OrDash(job.job_id())},
      {"state", StateName(job.state())},
      {"dataset", request.dataset().empty() ? "default" : request.dataset()},
      {"epochs", OrDefault(request.epochs())},
      {"batch_size", OrDefault(request.batch_size())},
      {"learning_rate", OrDefault(request.learning_rate())},
      {"seed", absl::StrCat(request.seed())},
      {"optimizer", OptimizerName(request.optimizer())},
      {"momentum", absl::StrCat(request.momentum())},
      {"weight_decay", absl::StrCat(request.weight_decay())},
      {"lr_schedule", ScheduleName(request.lr_schedule())},
      {"validation_fraction", absl::StrCat(request.validation_fraction())},
      {"keep_best", request.keep_best() ? "true" : "false"},
      {"early_stopping_patience", absl::StrCat(request.early_stopping_patience())},
      {"progress_reports_per_epoch", absl::StrCat(request.progress_reports_per_epoch())},
      {"deploy_when_done", request.deploy_when_done() ? "true" : "false"},
      {"created_time", FormatTimestamp(job.created_time())},
      {"start_time", FormatTimestamp(job.start_time())},
      {"end_time", FormatTimestamp(job.end_time())},
      {"latest_epoch", job.has_latest_epoch() ? EpochLine(job.latest_epoch()) : "-"},
      {"model_id", OrDash(job.model_id())},
      {"test_metrics", job.has_test_metrics() && job.test_metrics().count() > 0
                           ? MetricsSummary(job.test_metrics())
                           : "-"},
      {"error", OrDash(job.error())},
      {"last_sequence", absl::StrCat(job.last_sequence())},
  };
  std::string out;
  for (const auto& [key, value] : fields) {
    absl::StrAppendFormat(&out, "%-28s%s\n", absl::StrCat(key, ":"), value);
  }
  return out;
}

std::string ModelsTable(const v1::ListModelsResponse& models) {
  // Enough of the digest to tell models apart at a glance; --json has all of it.
  constexpr size_t kShortDigest = 12;
  std::vector<std::vector<std::string>> rows;
  for (const v1::Model& model : models.models()) {
    rows.push_back({
        OrDash(model.model_id()),
        OrDash(model.job_id()),
        OrDash(model.dataset()),
        FormatTimestamp(model.created_time()),
        model.has_test_metrics() && model.test_metrics().count() > 0
            ? FormatPercent(model.test_metrics().accuracy())
            : "-",
        absl::StrCat(model.size_bytes()),
        OrDash(model.sha256().substr(0, kShortDigest)),
        model.deployed() ? "*" : "-",
    });
  }
  return FormatTable(
      {"MODEL ID", "JOB ID", "DATASET", "CREATED", "TEST ACC", "SIZE", "SHA256", "DEPLOYED"}, rows);
}

std::string EvaluationReport(const v1::EvaluateResponse& evaluation) {
  std::string out;
  absl::StrAppendFormat(&out, "%-10s%s\n", "model:", OrDash(evaluation.model_id()));
  absl::StrAppendFormat(&out, "%-10s%s\n", "dataset:", OrDash(evaluation.dataset()));
  absl::StrAppendFormat(&out, "%-10s%s\n", "split:", SplitName(evaluation.split()));
  absl::StrAppendFormat(&out, "%-10s%d\n", "count:", evaluation.count());
  absl::StrAppendFormat(&out, "%-10s%s\n", "accuracy:", FormatPercent(evaluation.accuracy()));
  absl::StrAppendFormat(&out, "%-10s%s\n", "loss:", FormatLoss(evaluation.loss()));

  std::vector<std::vector<std::string>> rows;
  for (const v1::ClassMetrics& c : evaluation.per_class()) {
    rows.push_back({absl::StrCat(c.label()), absl::StrFormat("%.4f", c.precision()),
                    absl::StrFormat("%.4f", c.recall()), absl::StrFormat("%.4f", c.f1()),
                    absl::StrCat(c.support())});
  }
  absl::StrAppend(&out, "\n", FormatTable({"LABEL", "PRECISION", "RECALL", "F1", "SUPPORT"}, rows));

  // Right-aligned counts; the first column is the true label.
  const auto& matrix = evaluation.confusion_matrix();
  size_t columns = 0;
  size_t width = 1;
  for (const v1::ConfusionRow& row : matrix) {
    columns = std::max<size_t>(columns, row.counts_size());
    for (int64_t count : row.counts()) width = std::max(width, absl::StrCat(count).size());
  }
  width = std::max(width, absl::StrCat(columns).size());
  const size_t label_width = absl::StrCat(std::max(0, matrix.size() - 1)).size();
  absl::StrAppend(&out, "\nconfusion matrix (rows = true label, columns = predicted label):\n");
  std::string header(label_width, ' ');
  for (size_t c = 0; c < columns; ++c) absl::StrAppendFormat(&header, "  %*d", width, c);
  absl::StrAppend(&out, header, "\n");
  for (int r = 0; r < matrix.size(); ++r) {
    std::string line = absl::StrFormat("%*d", label_width, r);
    for (int64_t count : matrix[r].counts()) absl::StrAppendFormat(&line, "  %*d", width, count);
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string PredictionReport(const std::vector<std::string>& files,
                             const v1::PredictResponse& response, int top_k) {
  std::string out;
  const size_t n = std::min<size_t>(files.size(), response.predictions_size());
  for (size_t i = 0; i < n; ++i) {
    const v1::Prediction& p = response.predictions(static_cast<int>(i));
    absl::StrAppendFormat(&out, "%s: %d (p=%.4f)\n", files[i], p.label(), p.probability());
    if (top_k > 1) {
      for (int k = 0; k < p.top_k_size(); ++k) {
        absl::StrAppendFormat(&out, "  top %d: %d (p=%.4f)\n", k + 1, p.top_k(k).label(),
                              p.top_k(k).probability());
      }
    }
  }
  return out;
}

void JobEventPrinter::Print(const v1::JobEvent& event) {
  if (json_) {
    out_ << ToJsonLine(event) << "\n" << std::flush;
    return;
  }
  if (event.has_progress()) {
    if (!terminal_) return;  // A log gets one line per epoch, not a stream of redraws.
    out_ << "\r" << ProgressLine(event.progress()) << kClearToEndOfLine << std::flush;
    line_open_ = true;
    return;
  }
  std::string line;
  switch (event.event_case()) {
    case v1::JobEvent::kQueued:
      line =
          absl::StrFormat("job %s queued (position %d)", event.job_id(), event.queued().position());
      break;
    case v1::JobEvent::kStarted:
      line = absl::StrFormat("job %s started on %s: %d training images, %d epochs", event.job_id(),
                             OrDash(event.started().device()), event.started().train_images(),
                             event.started().epochs());
      break;
    case v1::JobEvent::kEpochEnd:
      line = EpochLine(event.epoch_end());
      break;
    case v1::JobEvent::kCheckpointSaved:
      return;  // Bookkeeping of the server's: a log has no use for it (--json shows it).
    case v1::JobEvent::kResumed:
      line = absl::StrFormat("job %s resumed at epoch %d, batch %d", event.job_id(),
                             event.resumed().epoch(), event.resumed().batch());
      break;
    case v1::JobEvent::kTrialStarted: {
      const v1::JobEvent::TrialStarted& trial = event.trial_started();
      line =
          absl::StrFormat("trial %d/%d: learning_rate %g, batch_size %d, conv [%s] kernel %d%s%s",
                          trial.trial(), trial.trials(), trial.learning_rate(), trial.batch_size(),
                          absl::StrJoin(trial.architecture().conv_channels(), ", "),
                          trial.architecture().kernel_size(),
                          trial.architecture().hidden_units() > 0
                              ? absl::StrCat(", hidden ", trial.architecture().hidden_units())
                              : std::string(),
                          trial.augment() ? ", augmented" : "");
      break;
    }
    case v1::JobEvent::kTrialFinished: {
      const v1::JobEvent::TrialFinished& trial = event.trial_finished();
      line =
          absl::StrFormat("trial %d done: model %s, validation accuracy %.2f%%, test accuracy %s",
                          trial.trial(), trial.model_id(), 100 * trial.validation_accuracy(),
                          MetricsSummary(trial.test_metrics()));
      break;
    }
    case v1::JobEvent::kFinished: {
      const v1::JobEvent::Finished& finished = event.finished();
      line = absl::StrFormat("job %s %s", event.job_id(), StateName(finished.state()));
      if (finished.state() == v1::JOB_STATE_SUCCEEDED) {
        absl::StrAppend(&line, ": model ", OrDash(finished.model_id()), ", test accuracy ",
                        MetricsSummary(finished.test_metrics()));
        if (!finished.note().empty()) absl::StrAppend(&line, " (", finished.note(), ")");
      }
      break;
    }
    default:
      return;  // An event kind newer than this client.
  }
  if (line_open_) {
    out_ << "\r" << line << kClearToEndOfLine << "\n";
    line_open_ = false;
  } else {
    out_ << line << "\n";
  }
  out_ << std::flush;
}

void JobEventPrinter::EndLine() {
  if (line_open_) {
    out_ << "\n" << std::flush;
    line_open_ = false;
  }
}

}  // namespace classifier::cli
