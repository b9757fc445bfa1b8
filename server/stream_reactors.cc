#include "server/stream_reactors.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace classifier {
namespace {

// Export chunks stay far below gRPC's default 4 MiB message limit.
constexpr size_t kExportChunkBytes = 1 << 20;

}  // namespace

JobEventStream::JobEventStream(std::shared_ptr<Job> job, int64_t from_sequence, RpcLog log,
                               StreamLimiter::Slot slot)
    : QueuedWriter(Backlog::kEvery,
                   ::grpc::Status(::grpc::StatusCode::CANCELLED, "the client cancelled the stream"),
                   ::grpc::Status(::grpc::StatusCode::CANCELLED, "the client went away")),
      job_(std::move(job)),
      log_(std::move(log)),
      slot_(std::move(slot)) {
  job_->Subscribe(this, from_sequence);
  // A finished job whose final event was not replayed (from_sequence lies past it): nothing
  // will come, so the call ends once the replay (if any) is written.
  if (job_->finished()) FinishWhenDrained(::grpc::Status::OK);
}

JobEventStream::~JobEventStream() { job_->Unsubscribe(this); }

void JobEventStream::OnEvent(const v1::JobEvent& event) {
  {
    MutexLock lock(&mu_);
    last_queued_ = event.sequence();
  }
  Send(event);
  // The job's last event: the call ends well once it is written.
  if (event.has_finished()) FinishWhenDrained(::grpc::Status::OK);
}

void JobEventStream::OnDetached(const std::string& reason) {
  // No event comes after this one (the job's lock is held), so `last_queued_` is the last event
  // the client will have: the job goes on after the server restarts, from the next one.
  int64_t next;
  {
    MutexLock lock(&mu_);
    next = last_queued_ + 1;
  }
  FinishWhenDrained(::grpc::Status(
      ::grpc::StatusCode::UNAVAILABLE,
      absl::StrCat(reason, "; job ", job_->id(),
                   " continues when the server is back: WatchJob with from_sequence ", next)));
}

ChunkStream::ChunkStream(std::string contents, std::string sha256, std::string model_id,
                         std::string file_name, RpcLog log, StreamLimiter::Slot slot)
    : QueuedWriter(Backlog::kEvery,
                   ::grpc::Status(::grpc::StatusCode::CANCELLED, "the client went away"),
                   ::grpc::Status(::grpc::StatusCode::CANCELLED, "the client went away")),
      contents_(std::move(contents)),
      sha256_(std::move(sha256)),
      model_id_(std::move(model_id)),
      file_name_(std::move(file_name)),
      log_(std::move(log)),
      slot_(std::move(slot)) {
  SendNextChunk();
}

void ChunkStream::OnWriteDone(bool ok) {
  // Queued while the finished write still counts as in flight, so the writer starts it next.
  if (ok) SendNextChunk();
  QueuedWriter::OnWriteDone(ok);
}

void ChunkStream::SendNextChunk() {
  // At least one chunk, so that an empty file still arrives with its size and hash.
  if (sent_last_) return;
  const size_t offset = next_offset_;
  const size_t length = std::min(kExportChunkBytes, contents_.size() - offset);
  v1::WeightsChunk chunk;
  chunk.set_data(contents_.substr(offset, length));
  chunk.set_offset(static_cast<int64_t>(offset));
  chunk.set_total_size(static_cast<int64_t>(contents_.size()));
  chunk.set_model_id(model_id_);
  chunk.set_file_name(file_name_);
  const bool last = offset + length >= contents_.size();
  if (last) chunk.set_sha256(sha256_);
  next_offset_ = offset + length;
  sent_last_ = last;
  Send(std::move(chunk));
  if (last) FinishWhenDrained(::grpc::Status::OK);
}

ImportStream::ImportStream(::grpc::CallbackServerContext* context, int64_t max_bytes,
                           WorkQueue* queue, Register register_upload, RpcLog log)
    : context_(context),
      max_bytes_(max_bytes),
      queue_(queue),
      register_upload_(std::move(register_upload)),
      log_(std::move(log)) {
  StartRead(&message_);
}

void ImportStream::OnReadDone(bool ok) {
  if (!ok) {
    // The upload ended: half-closed by the client, or cancelled (then nothing registers).
    if (context_->IsCancelled()) {
      Done(::grpc::Status(::grpc::StatusCode::CANCELLED, "the upload was cancelled"));
      return;
    }
    queue_->Submit([this] { Done(ToGrpcStatus(register_upload_(dataset_, bytes_))); });
    return;
  }
  if (first_) {
    first_ = false;
    dataset_ = message_.dataset();
    if (message_.format() != v1::WEIGHTS_FORMAT_UNSPECIFIED &&
        message_.format() != v1::PYTORCH_STATE_DICT) {
      Done(ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("format ", v1::WeightsFormat_Name(message_.format()),
                       " cannot be imported; upload a PYTORCH_STATE_DICT file"))));
      return;
    }
  }
  if (static_cast<int64_t>(bytes_.size() + message_.data().size()) > max_bytes_) {
    Done(ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat("the upload is larger than the server's limit of ", max_bytes_, " bytes"))));
    return;
  }
  bytes_ += message_.data();
  StartRead(&message_);
}

void ImportStream::Done(const ::grpc::Status& status) {
  log_.Done(status);
  Finish(status);
}

}  // namespace classifier
