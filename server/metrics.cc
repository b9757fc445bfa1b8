#include "server/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <exception>
#include <fstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace classifier {

// Process metrics, read from /proc at each scrape.
class ProcessCollectable : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    // /proc/self/statm: size resident shared ... in pages.
    std::ifstream statm("/proc/self/statm");
    long size_pages = 0;
    long resident_pages = 0;
    if (!(statm >> size_pages >> resident_pages)) return {};
    const double page_bytes = static_cast<double>(sysconf(_SC_PAGESIZE));
    return {Gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                  resident_pages * page_bytes),
            Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                  size_pages * page_bytes)};
  }

 private:
  static prometheus::MetricFamily Gauge(const char* name, const char* help, double value) {
    prometheus::MetricFamily family;
    family.name = name;
    family.help = help;
    family.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric metric;
    metric.gauge.value = value;
    family.metric.push_back(std::move(metric));
    return family;
  }
};

namespace {

// Latency buckets from 1 ms to about 65 s (RPCs range from a ListJobs to a whole export).
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (double bound = 0.001; bound < 100; bound *= 4) buckets.push_back(bound);
  return buckets;
}

// Predict batch sizes: 1, 2, 4, ... 8192 images.
prometheus::Histogram::BucketBoundaries BatchSizeBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (double bound = 1; bound <= 8192; bound *= 2) buckets.push_back(bound);
  return buckets;
}

// Time a call waits for its batch: 25 us to about 3 s (a 10,000-image request ahead of it).
prometheus::Histogram::BucketBoundaries QueueDelayBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (double bound = 25e-6; bound < 4; bound *= 2) buckets.push_back(bound);
  return buckets;
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      process_(std::make_shared<ProcessCollectable>()),
      rpc_duration_buckets_(LatencyBuckets()) {
  prometheus::Registry& r = *registry_;
  rpcs_ = &prometheus::BuildCounter()
               .Name("classifier_rpcs_total")
               .Help("Finished classifier RPCs by method and gRPC status code.")
               .Register(r);
  rpc_duration_ = &prometheus::BuildHistogram()
                       .Name("classifier_rpc_duration_seconds")
                       .Help("Time from the start of a classifier RPC to its status, by method.")
                       .Register(r);
  predict_images_ = &prometheus::BuildCounter()
                         .Name("classifier_predict_images_total")
                         .Help("Images classified by Predict.")
                         .Register(r)
                         .Add({});
  predict_batch_size_ = &prometheus::BuildHistogram()
                             .Name("classifier_predict_batch_size")
                             .Help("Images per answered Predict request.")
                             .Register(r)
                             .Add({}, BatchSizeBuckets());
  // The name is what the Grafana dashboard (docker/) plots: keep it.
  batcher_queue_delay_ = &prometheus::BuildHistogram()
                              .Name("classifier_batcher_queue_delay_seconds")
                              .Help(
                                  "Time a Predict call waits in the dynamic batcher's queue "
                                  "before the forward pass that computes it starts.")
                              .Register(r)
                              .Add({}, QueueDelayBuckets());
  batcher_batch_images_ = &prometheus::BuildHistogram()
                               .Name("classifier_batcher_batch_images")
                               .Help("Images per forward pass of the dynamic batcher.")
                               .Register(r)
                               .Add({}, BatchSizeBuckets());
  batcher_batch_calls_ = &prometheus::BuildHistogram()
                              .Name("classifier_batcher_batch_calls")
                              .Help(
                                  "Predict calls sharing one forward pass of the dynamic "
                                  "batcher (above 1: calls were coalesced).")
                              .Register(r)
                              .Add({}, BatchSizeBuckets());
  auto& jobs = prometheus::BuildGauge()
                   .Name("classifier_jobs")
                   .Help("Training jobs waiting or running now, by state.")
                   .Register(r);
  jobs_queued_ = &jobs.Add({{"state", "queued"}});
  jobs_running_ = &jobs.Add({{"state", "running"}});
  jobs_finished_ = &prometheus::BuildCounter()
                        .Name("classifier_jobs_finished_total")
                        .Help("Training jobs the worker ran to a final state, by state.")
                        .Register(r);
  auto gauge = [&r](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
  };
  epoch_ = gauge("classifier_training_epoch", "The last epoch the running job completed.");
  train_loss_ = gauge("classifier_training_loss", "Training loss of the last completed epoch.");
  train_accuracy_ = gauge("classifier_training_accuracy",
                          "Training accuracy (0..1) of the last completed epoch.");
  validation_loss_ = gauge("classifier_validation_loss",
                           "Validation loss of the last completed epoch (jobs with a split).");
  validation_accuracy_ =
      gauge("classifier_validation_accuracy",
            "Validation accuracy (0..1) of the last completed epoch (jobs with a split).");
  images_per_second_ = gauge("classifier_training_images_per_second",
                             "Training throughput of the last completed epoch.");
  deploys_ = &prometheus::BuildCounter()
                  .Name("classifier_model_deploys_total")
                  .Help("Models deployed as the default.")
                  .Register(r)
                  .Add({});
  model_loads_ = &prometheus::BuildCounter()
                      .Name("classifier_model_loads_total")
                      .Help("Models loaded into memory (read back, trained or imported).")
                      .Register(r)
                      .Add({});
  models_loaded_ = gauge("classifier_models_loaded", "Models whose networks are held in memory.");
  model_cache_bytes_ =
      gauge("classifier_model_cache_bytes", "Bytes of weights held in memory (--model_cache_mb).");
  models_registered_ =
      gauge("classifier_models_registered", "Models registered: records and weight files.");
  auto& cache_lookups = prometheus::BuildCounter()
                            .Name("classifier_model_cache_lookups_total")
                            .Help("Requests for a model's network, by whether it was in memory.")
                            .Register(r);
  model_cache_hits_ = &cache_lookups.Add({{"result", "hit"}});
  model_cache_misses_ = &cache_lookups.Add({{"result", "miss"}});
  store_database_bytes_ =
      gauge("classifier_store_database_bytes", "Size of the store's database file.");
  model_files_bytes_ =
      gauge("classifier_model_files_bytes", "Total size of the registered models' weight files.");
}

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Start(const std::string& listen_address) {
  std::unique_ptr<Metrics> metrics(new Metrics());
  try {
    metrics->exposer_ = std::make_unique<prometheus::Exposer>(listen_address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen_address, ": ", e.what()));
  }
  const std::vector<int> ports = metrics->exposer_->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", listen_address));
  }
  metrics->port_ = ports.front();
  metrics->exposer_->RegisterCollectable(metrics->registry_);
  metrics->exposer_->RegisterCollectable(metrics->process_);
  return metrics;
}

Metrics::~Metrics() = default;

void Metrics::ObserveRpc(const std::string& method, int code, double seconds) {
  const std::string code_name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  rpcs_->Add({{"method", method}, {"code", code_name}}).Increment();
  rpc_duration_->Add({{"method", method}}, rpc_duration_buckets_).Observe(seconds);
}

void Metrics::ObservePredict(int images) {
  predict_images_->Increment(images);
  predict_batch_size_->Observe(images);
}

void Metrics::ObserveBatch(int images, int calls) {
  batcher_batch_images_->Observe(images);
  batcher_batch_calls_->Observe(calls);
}

void Metrics::ObserveBatcherQueueDelay(double seconds) { batcher_queue_delay_->Observe(seconds); }

void Metrics::SetJobCounts(int queued, int running) {
  jobs_queued_->Set(queued);
  jobs_running_->Set(running);
}

void Metrics::CountFinishedJob(const std::string& state) {
  jobs_finished_->Add({{"state", state}}).Increment();
}

void Metrics::ObserveEpoch(int epoch, double train_loss, double train_accuracy,
                           std::optional<double> validation_loss,
                           std::optional<double> validation_accuracy, double images_per_second) {
  epoch_->Set(epoch);
  train_loss_->Set(train_loss);
  train_accuracy_->Set(train_accuracy);
  if (validation_loss.has_value()) validation_loss_->Set(*validation_loss);
  if (validation_accuracy.has_value()) validation_accuracy_->Set(*validation_accuracy);
  images_per_second_->Set(images_per_second);
}

void Metrics::CountDeploy() { deploys_->Increment(); }

void Metrics::CountModelLoad() { model_loads_->Increment(); }

void Metrics::SetModelCache(int models_in_memory, int64_t bytes_in_memory, int models_registered) {
  models_loaded_->Set(models_in_memory);
  model_cache_bytes_->Set(static_cast<double>(bytes_in_memory));
  models_registered_->Set(models_registered);
}

void Metrics::CountModelCacheLookup(bool hit) {
  (hit ? model_cache_hits_ : model_cache_misses_)->Increment();
}

void Metrics::SetStorageBytes(int64_t database_bytes, int64_t model_files_bytes) {
  store_database_bytes_->Set(static_cast<double>(database_bytes));
  model_files_bytes_->Set(static_cast<double>(model_files_bytes));
}

}  // namespace classifier
