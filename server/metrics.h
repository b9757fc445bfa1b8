// The server's Prometheus metrics: one registry, served over HTTP at /metrics by prometheus-cpp's
// Exposer. The pieces that record (the service, the job manager, the training executor, the
// model registry) take a nullable Metrics*; null records nothing.
#ifndef CLASSIFIER_SERVER_METRICS_H_
#define CLASSIFIER_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace prometheus {
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace classifier {

class ProcessCollectable;

class Metrics {
 public:
  // Serves /metrics on `listen_address` (host:port; port 0 picks a free one, see port()).
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Metrics>> Start(const std::string& listen_address);

  // Stops serving.
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The bound port.
  int port() const { return port_; }

  // Every method below is thread-safe.

  // One finished RPC: `code` is its gRPC status code.
  void ObserveRpc(const std::string& method, int code, double seconds);
  // One Predict request of `images` images that was answered.
  void ObservePredict(int images);
  // The dynamic batcher ran one forward pass over `images` images gathered from `calls` calls.
  void ObserveBatch(int images, int calls);
  // A Predict call waited `seconds` in the batcher's queue, from its arrival there to the start
  // of the forward pass that computes (the first part of) it.
  void ObserveBatcherQueueDelay(double seconds);
  // Jobs waiting in the queue and running now.
  void SetJobCounts(int queued, int running);
  // A job reached a final state (e.g. "JOB_STATE_SUCCEEDED").
  void CountFinishedJob(const std::string& state);
  // The running job ended an epoch.
  void ObserveEpoch(int epoch, double train_loss, double train_accuracy,
                    std::optional<double> validation_loss,
                    std::optional<double> validation_accuracy, double images_per_second);
  // A model was deployed (made the default for Predict and Evaluate).
  void CountDeploy();
  // A model was loaded into memory (read back at start, trained or imported).
  void CountModelLoad();
  // The model cache (ModelRegistry): models whose networks are held in memory now and the bytes
  // their weights take, and the models registered (records and weight files, loaded or not).
  void SetModelCache(int models_in_memory, int64_t bytes_in_memory, int models_registered);
  // A request found its model's network in memory (hit) or had to load it (miss).
  void CountModelCacheLookup(bool hit);
  // The store's database file, in bytes, and the weight files' total.
  void SetStorageBytes(int64_t database_bytes, int64_t model_files_bytes);

 private:
  Metrics();

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<ProcessCollectable> process_;
  prometheus::Family<prometheus::Counter>* rpcs_ = nullptr;
  prometheus::Family<prometheus::Histogram>* rpc_duration_ = nullptr;
  // rpc_duration_'s bucket boundaries, made once: Family::Add takes them at every call, used or
  // not.
  std::vector<double> rpc_duration_buckets_;
  prometheus::Counter* predict_images_ = nullptr;
  prometheus::Histogram* predict_batch_size_ = nullptr;
  prometheus::Histogram* batcher_queue_delay_ = nullptr;
  prometheus::Histogram* batcher_batch_images_ = nullptr;
  prometheus::Histogram* batcher_batch_calls_ = nullptr;
  prometheus::Gauge* jobs_queued_ = nullptr;
  prometheus::Gauge* jobs_running_ = nullptr;
  prometheus::Family<prometheus::Counter>* jobs_finished_ = nullptr;
  prometheus::Gauge* epoch_ = nullptr;
  prometheus::Gauge* train_loss_ = nullptr;
  prometheus::Gauge* train_accuracy_ = nullptr;
  prometheus::Gauge* validation_loss_ = nullptr;
  prometheus::Gauge* validation_accuracy_ = nullptr;
  prometheus::Gauge* images_per_second_ = nullptr;
  prometheus::Counter* deploys_ = nullptr;
  prometheus::Counter* model_loads_ = nullptr;
  prometheus::Gauge* models_loaded_ = nullptr;
  prometheus::Gauge* model_cache_bytes_ = nullptr;
  prometheus::Gauge* models_registered_ = nullptr;
  prometheus::Counter* model_cache_hits_ = nullptr;
  prometheus::Counter* model_cache_misses_ = nullptr;
  prometheus::Gauge* store_database_bytes_ = nullptr;
  prometheus::Gauge* model_files_bytes_ = nullptr;
  int port_ = 0;
  // Last member: stops serving first.
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_METRICS_H_
