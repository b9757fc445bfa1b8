// The streaming calls' reactors of classifier.v1.Classifier: a job's events (Train, WatchJob),
// a weights file out (ExportWeights) and in (ImportWeights), and the reactors of streaming calls
// refused before they started.
//
// Ownership: each is made with `new` by a handler and handed to gRPC, and deletes itself in
// OnDone, gRPC's last call to it; what it holds (a job subscription, a StreamLimiter slot)
// is released then. It borrows the call's context and response, which gRPC keeps alive until
// OnDone. Threading: callbacks run on gRPC's small callback thread pool and never block; work
// that may take long (registering an upload) runs on a WorkQueue of ours. Every call is finished
// exactly once, with one RpcLog line.
#ifndef CLASSIFIER_SERVER_STREAM_REACTORS_H_
#define CLASSIFIER_SERVER_STREAM_REACTORS_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "classifier/v1/classifier.pb.h"
#include "server/job.h"
#include "server/mutex.h"
#include "server/queued_writer.h"
#include "server/rpc_log.h"
#include "server/status_util.h"
#include "server/stream_limiter.h"
#include "server/work_queue.h"

namespace classifier {

// A server-streaming call refused before it started: finishes at once with the status.
template <typename Message>
class RefusedWriter : public ::grpc::ServerWriteReactor<Message> {
 public:
  explicit RefusedWriter(const ::grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// A client-streaming call refused before it read anything.
template <typename Request>
class RefusedReader : public ::grpc::ServerReadReactor<Request> {
 public:
  explicit RefusedReader(const ::grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// Logs `status` with `log` and returns a reactor that ends the streaming call with it.
template <typename Message>
::grpc::ServerWriteReactor<Message>* Refuse(const RpcLog& log, const absl::Status& status) {
  ::grpc::Status grpc_status = ToGrpcStatus(status);
  log.Done(grpc_status);
  return new RefusedWriter<Message>(grpc_status);
}

// Streams a job's events from a sequence number until its final event. The job pushes events
// in order, under its lock (JobEventSink); they queue behind the write in flight. When the server
// stops first (OnDetached), the call ends UNAVAILABLE once every event so far is written, telling
// the client the from_sequence to re-attach with. A client that hangs up ends only this stream:
// the job goes on.
class JobEventStream : public QueuedWriter<v1::JobEvent>, public JobEventSink {
 public:
  // Subscribes to `job` from `from_sequence` (replaying what it has recorded); `slot` is this
  // stream's place under --max_streams_per_client.
  JobEventStream(std::shared_ptr<Job> job, int64_t from_sequence, RpcLog log,
                 StreamLimiter::Slot slot);
  // Unsubscribes: after it returns the job never calls this sink again.
  ~JobEventStream() override;

  void OnEvent(const v1::JobEvent& event) override;
  void OnDetached(const std::string& reason) override;

 private:
  void OnFinish(const ::grpc::Status& status) override { log_.Done(status); }

  // Constant after construction.
  const std::shared_ptr<Job> job_;
  const RpcLog log_;
  // Given back when the reactor is deleted.
  const StreamLimiter::Slot slot_;

  Mutex mu_;
  // The sequence of the last event queued: once the queue is written, the client has it.
  int64_t last_queued_ ABSL_GUARDED_BY(mu_) = 0;
};

// Streams a file's bytes in chunks of at most 1 MiB (far below gRPC's default 4 MiB message
// limit); every chunk names the model and the file, the last one also carries the SHA-256 of the
// whole file.
class ChunkStream : public QueuedWriter<v1::WeightsChunk> {
 public:
  // Takes the file (weights files are a few MB at most; an upload is capped at
  // --max_import_bytes) and starts writing its first chunk. Each next chunk is cut from it only
  // when the one before has been written: the file is held once, with a chunk or two beside it,
  // not a second time as a queue of chunks.
  ChunkStream(std::string contents, std::string sha256, std::string model_id, std::string file_name,
              RpcLog log, StreamLimiter::Slot slot);

  // Queues the next chunk, then lets the writer start it (or finish the call).
  void OnWriteDone(bool ok) override;

 private:
  // Queues the chunk at `next_offset_`; after the last one, finishes once it is written.
  void SendNextChunk();
  void OnFinish(const ::grpc::Status& status) override { log_.Done(status); }

  // Constant after construction.
  const std::string contents_;
  const std::string sha256_;
  const std::string model_id_;
  const std::string file_name_;
  const RpcLog log_;
  const StreamLimiter::Slot slot_;

  // Only the constructor and OnWriteDone touch these, and each OnWriteDone follows the write
  // started before it: they never overlap, so no lock.
  size_t next_offset_ = 0;
  bool sent_last_ = false;
};

// Receives an uploaded weights file (ImportWeights), then registers it on `queue`, off gRPC's
// threads. The first message names the dataset and the format; the upload is refused
// RESOURCE_EXHAUSTED as soon as it grows past `max_bytes`.
class ImportStream : public ::grpc::ServerReadReactor<v1::ImportWeightsRequest> {
 public:
  // Registers the whole upload: (dataset, bytes) -> the call's status. Runs on `queue`.
  using Register =
      std::function<absl::Status(const std::string& dataset, const std::string& bytes)>;

  // `context` is the call's; `queue` must outlive the call.
  ImportStream(::grpc::CallbackServerContext* context, int64_t max_bytes, WorkQueue* queue,
               Register register_upload, RpcLog log);

  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  void Done(const ::grpc::Status& status);

  // Constant after construction.
  ::grpc::CallbackServerContext* const context_;
  const int64_t max_bytes_;
  WorkQueue* const queue_;
  const Register register_upload_;
  const RpcLog log_;

  // Only touched from OnReadDone, and reads never overlap: no lock.
  v1::ImportWeightsRequest message_;
  bool first_ = true;
  std::string dataset_;
  std::string bytes_;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_STREAM_REACTORS_H_
