// The commands of training jobs: train, watch, jobs, job, cancel; and the TrainRequest that
// train's flags describe.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/command_util.h"
#include "client/commands.h"
#include "client/format.h"
#include "client/paging.h"
#include "client/pictures.h"

namespace classifier::cli {
namespace {

using grpc::ClientContext;

// --reattach_seconds when not given: long enough for a replica's lease to run out and another
// to take its job over (--job_lease, 10 s), or for a server to restart.
constexpr int kDefaultReattachSeconds = 60;

struct FollowOptions {
  bool json = false;
  // Print the job id once queued and leave (train --detach).
  bool detach = false;
  // How long a broken stream is opened again (WatchJob from the next event) before giving up.
  absl::Duration reattach = absl::ZeroDuration();
  // Collect the job's epoch_end events here (for `watch --plot`), and the sweep trial of each.
  std::vector<v1::JobEvent::EpochEnd>* epochs = nullptr;
  std::vector<int>* trials = nullptr;
};

// Whether a stream that ended before the job did was cut by the way to the server (it stopped,
// restarted or died; a load balancer in between says UNKNOWN "Stream removed" or INTERNAL when
// the replica behind it dies, and HAProxy 3.0, Debian 13's, resets the stream: CANCELLED, never
// this CLI's own doing, since it cancels a watch only on its way out), rather than refused by
// the server (NOT_FOUND, a limit, ...). A clean end without the job's end is the server's
// error, not a break.
bool StreamBroke(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::CANCELLED:
      return true;
    default:
      return false;
  }
}

// What --reattach_seconds asks for; INVALID_ARGUMENT naming it when negative.
absl::StatusOr<absl::Duration> ReattachFor(const Invocation& invocation) {
  const int seconds = invocation.Int32("reattach_seconds", kDefaultReattachSeconds);
  if (seconds < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--reattach_seconds must be 0 (never) or more, got ", seconds));
  }
  return absl::Seconds(seconds);
}

// Prints a job's events until its Finished event; the exit code follows the job's end state.
// A stream that breaks before it (UNAVAILABLE: the server stopped or restarted, or the replica
// behind a load balancer died) is opened again as WatchJob from the next event, waiting for a
// server for up to options.reattach, so the output stays one gap-free log.
int FollowJob(ClientContext* context, grpc::ClientReaderInterface<v1::JobEvent>* reader,
              const CommandEnvironment& env, const FollowOptions& options) {
  JobEventPrinter printer(*env.out, env.terminal, options.json);
  std::optional<v1::JobEvent::Finished> finished;
  std::string job_id;
  int64_t last_sequence = 0;
  // The streams opened again, and until when to try.
  std::unique_ptr<ClientContext> watch_context;
  std::unique_ptr<grpc::ClientReaderInterface<v1::JobEvent>> watch_reader;
  absl::Time give_up = absl::InfiniteFuture();
  absl::Duration backoff = absl::Milliseconds(200);
  v1::JobEvent event;
  for (;;) {
    while (reader->Read(&event)) {
      job_id = event.job_id();
      if (options.detach) {
        // The job is queued: leave it to the server (closing the stream does not stop it).
        if (options.json) {
          printer.Print(event);
        } else {
          *env.out << event.job_id() << "\n" << std::flush;
        }
        context->TryCancel();
        while (reader->Read(&event)) {
        }
        (void)reader->Finish();
        return kExitOk;
      }
      // A stream opened again starts at the next event; anything older was printed.
      if (event.sequence() != 0 && event.sequence() <= last_sequence) continue;
      last_sequence = event.sequence();
      give_up = absl::InfiniteFuture();  // The job moves on again.
      backoff = absl::Milliseconds(200);
      printer.Print(event);
      if (options.epochs != nullptr && event.has_epoch_end()) {
        options.epochs->push_back(event.epoch_end());
        if (options.trials != nullptr) options.trials->push_back(event.trial());
      }
      if (event.has_finished()) finished = event.finished();
    }
    printer.EndLine();
    const grpc::Status status = reader->Finish();
    if (finished.has_value()) break;
    const bool broken = StreamBroke(status);
    const absl::Time now = absl::Now();
    if (give_up == absl::InfiniteFuture()) give_up = now + options.reattach;
    if (!broken || job_id.empty() || now >= give_up) {
      if (!status.ok()) return RpcFailed(env, status);
      *env.err << "error: the server closed the stream before job "
               << (job_id.empty() ? "?" : job_id) << " finished\n";
      return kExitServerError;
    }
    *env.err << "note: the stream of job " << job_id << " broke (" << status.error_message()
             << "); watching it again from event " << last_sequence + 1 << "\n";
    absl::SleepFor(std::min(backoff, give_up - now));
    backoff = std::min(backoff * 2, absl::Seconds(2));
    v1::WatchJobRequest watch;
    watch.set_job_id(job_id);
    watch.set_from_sequence(last_sequence + 1);
    watch_context = std::make_unique<ClientContext>();
    // Waits for a server to answer (one restarting, another replica) until giving up.
    watch_context->set_wait_for_ready(true);
    watch_context->set_deadline(absl::ToChronoTime(give_up));
    watch_reader = env.classifier->WatchJob(watch_context.get(), watch);
    context = watch_context.get();
    reader = watch_reader.get();
  }
  if (finished->state() == v1::JOB_STATE_SUCCEEDED) return kExitOk;
  *env.err << "error: job " << job_id << " " << StateName(finished->state());
  if (!finished->error().empty()) *env.err << ": " << finished->error();
  *env.err << "\n";
  return kExitJobFailed;
}

// "1,2,3" -> {1, 2, 3}; INVALID_ARGUMENT naming `flag` for anything else.
template <typename T>
absl::StatusOr<std::vector<T>> ParseList(const std::string& text, const std::string& flag) {
  std::vector<T> values;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    T value{};
    bool ok = false;
    if constexpr (std::is_same_v<T, double>) {
      ok = absl::SimpleAtod(item, &value);
    } else {
      ok = absl::SimpleAtoi(item, &value);
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat("invalid value '", std::string(item), "' in ",
                                                     flag,
                                                     ": expected numbers "
                                                     "separated by commas"));
    }
    values.push_back(value);
  }
  if (values.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " needs at least one value"));
  }
  return values;
}

}  // namespace

int Train(const Invocation& invocation, const CommandEnvironment& env) {
  absl::StatusOr<v1::TrainRequest> request = BuildTrainRequest(invocation);
  if (!request.ok()) return UsageFailed(env, request.status());
  absl::StatusOr<absl::Duration> reattach = ReattachFor(invocation);
  if (!reattach.ok()) return UsageFailed(env, reattach.status());
  ClientContext context;
  std::unique_ptr<grpc::ClientReaderInterface<v1::JobEvent>> reader =
      env.classifier->Train(&context, *request);
  FollowOptions options;
  options.json = invocation.Bool("json");
  options.detach = invocation.Bool("detach");
  options.reattach = *reattach;
  return FollowJob(&context, reader.get(), env, options);
}

int Watch(const Invocation& invocation, const CommandEnvironment& env) {
  v1::WatchJobRequest request;
  request.set_job_id(invocation.args[0]);
  request.set_from_sequence(invocation.Int64("from"));
  absl::StatusOr<absl::Duration> reattach = ReattachFor(invocation);
  if (!reattach.ok()) return UsageFailed(env, reattach.status());
  ClientContext context;
  std::unique_ptr<grpc::ClientReaderInterface<v1::JobEvent>> reader =
      env.classifier->WatchJob(&context, request);
  FollowOptions options;
  options.json = invocation.Bool("json");
  options.reattach = *reattach;
  if (!invocation.Has("plot")) return FollowJob(&context, reader.get(), env, options);
  std::vector<v1::JobEvent::EpochEnd> epochs;
  std::vector<int> trials;
  options.epochs = &epochs;
  options.trials = &trials;
  const int code = FollowJob(&context, reader.get(), env, options);
  // The job ended (well or not): its curves are complete. A broken stream leaves no file.
  if (code != kExitOk && code != kExitJobFailed) return code;
  const std::string plot = invocation.String("plot");
  if (absl::Status written =
          WriteOutputFile(plot, TrainingCurvesSvg(request.job_id(), epochs, trials));
      !written.ok()) {
    return LocalFailed(env, written);
  }
  *(invocation.Bool("json") ? env.err : env.out)
      << "saved the curves of " << epochs.size() << " epoch" << (epochs.size() == 1 ? "" : "s")
      << " to " << plot << "\n";
  return code;
}

int Jobs(const Invocation& invocation, const CommandEnvironment& env) {
  absl::StatusOr<Paging> paging = ReadPaging(invocation);
  if (!paging.ok()) return UsageFailed(env, paging.status());
  v1::ListJobsRequest request;
  if (invocation.Has("state")) {
    absl::StatusOr<v1::JobState> state = ParseJobState(invocation.String("state"));
    if (!state.ok()) return UsageFailed(env, state.status());
    request.set_state(*state);
  }
  request.set_dataset(invocation.String("dataset"));
  if (invocation.Has("created_after")) {
    absl::StatusOr<google::protobuf::Timestamp> after =
        ParseCreatedAfter(invocation.String("created_after"));
    if (!after.ok()) return UsageFailed(env, after.status());
    *request.mutable_created_after() = *after;
  }
  v1::ListJobsResponse response;
  const grpc::Status status = ListPages(
      env, invocation, &v1::Classifier::StubInterface::ListJobs, request, *paging,
      [](v1::ListJobsResponse* r) { return r->mutable_jobs(); }, &response);
  if (!status.ok()) return RpcFailed(env, status);
  *env.out << (invocation.Bool("json") ? ToJsonLine(response) + "\n" : JobsTable(response));
  NoteMore(response.next_page_token(), "jobs", env);
  return kExitOk;
}

int GetJob(const Invocation& invocation, const CommandEnvironment& env) {
  v1::GetJobRequest request;
  request.set_job_id(invocation.args[0]);
  v1::Job job;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status = env.classifier->GetJob(&context, request, &job);
  if (!status.ok()) return RpcFailed(env, status);
  *env.out << (invocation.Bool("json") ? ToJsonLine(job) + "\n" : JobDetails(job));
  return kExitOk;
}

int Cancel(const Invocation& invocation, const CommandEnvironment& env) {
  v1::CancelJobRequest request;
  request.set_job_id(invocation.args[0]);
  v1::Job job;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status = env.classifier->CancelJob(&context, request, &job);
  if (!status.ok()) return RpcFailed(env, status);
  if (invocation.Bool("json")) {
    *env.out << ToJsonLine(job) << "\n";
  } else {
    *env.out << "job " << job.job_id() << " " << StateName(job.state());
    if (job.state() == v1::JOB_STATE_RUNNING) *env.out << " (stops at its next batch)";
    *env.out << "\n";
  }
  return kExitOk;
}

absl::StatusOr<v1::TrainRequest> BuildTrainRequest(const Invocation& invocation) {
  v1::TrainRequest request;
  request.set_dataset(invocation.String("dataset", "mnist"));
  request.set_epochs(invocation.Int32("epochs"));
  request.set_batch_size(invocation.Int32("batch_size"));
  request.set_learning_rate(invocation.Double("learning_rate"));
  request.set_seed(invocation.Uint64("seed"));
  request.set_progress_reports_per_epoch(invocation.Int32("progress_reports_per_epoch"));
  request.set_deploy_when_done(invocation.Bool("deploy_when_done"));
  request.set_validation_fraction(invocation.Double("validation_fraction"));
  request.set_keep_best(invocation.Bool("keep_best"));
  request.set_early_stopping_patience(invocation.Int32("early_stopping_patience"));
  if (invocation.Has("optimizer")) {
    const std::string optimizer = absl::AsciiStrToLower(invocation.String("optimizer"));
    if (optimizer == "adam") {
      request.set_optimizer(v1::OPTIMIZER_KIND_ADAM);
    } else if (optimizer == "adamw") {
      request.set_optimizer(v1::OPTIMIZER_KIND_ADAMW);
    } else if (optimizer == "sgd") {
      request.set_optimizer(v1::OPTIMIZER_KIND_SGD);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid value '", invocation.String("optimizer"),
                       "' for --optimizer: expected adam, adamw or sgd"));
    }
  }
  request.set_momentum(invocation.Double("momentum"));
  request.set_weight_decay(invocation.Double("weight_decay"));
  request.set_label_smoothing(invocation.Double("label_smoothing"));
  if (invocation.Has("world_size")) {
    request.mutable_distributed()->set_world_size(invocation.Int32("world_size"));
  }
  if (invocation.Has("lr_schedule")) {
    const std::string schedule = absl::AsciiStrToLower(invocation.String("lr_schedule"));
    if (schedule == "none") {
      request.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_CONSTANT);
    } else if (schedule == "step") {
      request.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_STEP);
    } else if (schedule == "cosine") {
      request.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_COSINE);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid value '", invocation.String("lr_schedule"),
                       "' for --lr_schedule: expected none, step or cosine"));
    }
  }
  request.set_lr_step_size(invocation.Int32("lr_step_size"));
  request.set_lr_gamma(invocation.Double("lr_gamma"));
  for (const char* flag : {"rotation_degrees", "translation", "scale_min", "scale_max",
                           "horizontal_flip", "vertical_flip"}) {
    if (!invocation.Has(flag)) continue;
    v1::Augmentation* augmentation = request.mutable_augmentation();
    augmentation->set_rotation_degrees(invocation.Double("rotation_degrees"));
    augmentation->set_translation(invocation.Double("translation"));
    augmentation->set_scale_min(invocation.Double("scale_min"));
    augmentation->set_scale_max(invocation.Double("scale_max"));
    augmentation->set_horizontal_flip(invocation.Bool("horizontal_flip"));
    augmentation->set_vertical_flip(invocation.Bool("vertical_flip"));
    break;
  }

  v1::Architecture architecture;
  if (invocation.Has("conv_channels")) {
    absl::StatusOr<std::vector<int32_t>> channels =
        ParseList<int32_t>(invocation.String("conv_channels"), "--conv_channels");
    if (!channels.ok()) return channels.status();
    for (int32_t c : *channels) architecture.add_conv_channels(c);
  }
  architecture.set_kernel_size(invocation.Int32("kernel_size"));
  architecture.set_hidden_units(invocation.Int32("hidden_units"));
  architecture.set_dropout(invocation.Double("dropout"));
  for (const char* flag : {"conv_channels", "kernel_size", "hidden_units", "dropout"}) {
    if (invocation.Has(flag)) *request.mutable_architecture() = architecture;
  }
  request.set_init_from_model(invocation.String("init_from_model"));
  request.set_freeze_convolutions(invocation.Bool("freeze_convolutions"));

  v1::Sweep sweep;
  if (invocation.Has("sweep_learning_rates")) {
    absl::StatusOr<std::vector<double>> rates =
        ParseList<double>(invocation.String("sweep_learning_rates"), "--sweep_learning_rates");
    if (!rates.ok()) return rates.status();
    for (double rate : *rates) sweep.add_learning_rates(rate);
  }
  if (invocation.Has("sweep_batch_sizes")) {
    absl::StatusOr<std::vector<int32_t>> sizes =
        ParseList<int32_t>(invocation.String("sweep_batch_sizes"), "--sweep_batch_sizes");
    if (!sizes.ok()) return sizes.status();
    for (int32_t size : *sizes) sweep.add_batch_sizes(size);
  }
  if (invocation.Has("sweep_conv_channels")) {
    for (absl::string_view group :
         absl::StrSplit(invocation.String("sweep_conv_channels"), ';', absl::SkipEmpty())) {
      absl::StatusOr<std::vector<int32_t>> channels =
          ParseList<int32_t>(std::string(group), "--sweep_conv_channels");
      if (!channels.ok()) return channels.status();
      v1::Architecture* option = sweep.add_architectures();
      *option = architecture;
      option->clear_conv_channels();
      for (int32_t c : *channels) option->add_conv_channels(c);
    }
  }
  if (invocation.Has("sweep_augment")) {
    for (absl::string_view value :
         absl::StrSplit(invocation.String("sweep_augment"), ',', absl::SkipEmpty())) {
      if (value != "on" && value != "off") {
        return absl::InvalidArgumentError(absl::StrCat("invalid value '", std::string(value),
                                                       "' in --sweep_augment: expected on or off"));
      }
      sweep.add_augment(value == "on");
    }
  }
  for (const char* flag :
       {"sweep_learning_rates", "sweep_batch_sizes", "sweep_conv_channels", "sweep_augment"}) {
    if (invocation.Has(flag)) *request.mutable_sweep() = sweep;
  }
  return request;
}

}  // namespace classifier::cli
