#include "server/batcher.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/compute_threads.h"

namespace classifier {

// A submitted call and its progress. `next` (the first image not yet handed to a batch) is
// guarded by the batcher's mu_; the rest by `mu`, since several batches (on several threads)
// may hold parts of one call.
struct Batcher::Pending {
  Call call;
  Clock::time_point arrived;
  int64_t next = 0;
  // Set when the call has failed: its remaining slices are answered without computing them.
  std::atomic<bool> failed{false};

  Mutex mu;
  std::vector<float> probabilities ABSL_GUARDED_BY(mu);
  int64_t outstanding ABSL_GUARDED_BY(mu) = 0;  // Images neither computed nor failed yet.
  absl::Status error ABSL_GUARDED_BY(mu);       // The first failure.
};

// Images [first, first + count) of one call, computed in one batch.
struct Batcher::Slice {
  std::shared_ptr<Pending> pending;
  int64_t first = 0;
  int64_t count = 0;
};

namespace {

// Records that `count` images of `pending` are done (computed or, with an error, failed) and
// answers the call when they were its last. `rows` (may be null) holds their probabilities.
template <typename PendingT>
void CompleteSlice(PendingT& pending, int64_t first, int64_t count, int64_t classes,
                   const float* rows, const absl::Status& status) {
  std::function<void(absl::StatusOr<std::vector<float>>)> done;
  absl::StatusOr<std::vector<float>> result;
  {
    MutexLock lock(&pending.mu);
    if (!status.ok()) {
      if (pending.error.ok()) pending.error = status;
      pending.failed.store(true);
    } else if (rows != nullptr && pending.error.ok()) {
      std::memcpy(pending.probabilities.data() + first * classes, rows,
                  sizeof(float) * static_cast<size_t>(count * classes));
    }
    pending.outstanding -= count;
    if (pending.outstanding > 0) return;
    if (pending.error.ok()) {
      result = std::move(pending.probabilities);
    } else {
      result = pending.error;
    }
    done = std::move(pending.call.done);
  }
  done(std::move(result));
}

}  // namespace

Batcher::Batcher(BatcherOptions options, Metrics* metrics)
    : options_([&options] {
        options.max_images = std::max(options.max_images, 1);
        options.max_delay = std::max(options.max_delay, absl::ZeroDuration());
        options.idle_poll = std::max(options.idle_poll, absl::ZeroDuration());
        options.threads = std::max(options.threads, 1);
        options.compute_threads = std::max(options.compute_threads, 1);
        return options;
      }()),
      metrics_(metrics) {
  threads_.reserve(options_.threads);
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { Loop(); });
}

Batcher::~Batcher() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_.SignalAll();
  batch_ready_.SignalAll();
  for (std::thread& thread : threads_) thread.join();
}

void Batcher::Submit(Call call) {
  auto pending = std::make_shared<Pending>();
  const int64_t classes = call.network->architecture().num_classes;
  pending->arrived = Clock::now();
  {
    MutexLock lock(&pending->mu);
    pending->outstanding = call.images;
    pending->probabilities.resize(static_cast<size_t>(call.images * classes));
  }
  pending->call = std::move(call);
  bool wake_idle = false;
  bool wake_waiting = false;
  {
    MutexLock lock(&mu_);
    if (!stopping_) {
      queued_images_ += pending->call.images;
      queue_.push_back(std::move(pending));
      queued_calls_.store(queue_.size(), std::memory_order_relaxed);
      pending = nullptr;
      // A thread holding a batch open takes this call with it; only a ready batch ends its
      // wait (checked again there, per network). Otherwise an idle thread takes the call.
      wake_waiting =
          waiting_threads_ > 0 && (queued_images_ >= options_.max_images ||
                                   static_cast<int64_t>(queue_.size()) >= last_batch_calls_);
      wake_idle = waiting_threads_ == 0 && idle_threads_ > 0;
    }
  }
  if (pending != nullptr) {
    pending->call.done(absl::UnavailableError("the server is shutting down"));
    return;
  }
  if (wake_waiting) batch_ready_.SignalAll();
  if (wake_idle) work_.Signal();
}

Batcher::Pause Batcher::PauseBatches() {
  MutexLock lock(&mu_);
  ++pauses_;
  return Pause(this);
}

Batcher::Pause::~Pause() {
  if (batcher_ == nullptr) return;
  {
    MutexLock lock(&batcher_->mu_);
    --batcher_->pauses_;
  }
  batcher_->work_.SignalAll();
}

bool Batcher::ShouldWait() const {
  return !stopping_ && last_batch_calls_ > 1 && options_.max_delay > absl::ZeroDuration() &&
         !BatchReady();
}

bool Batcher::BatchReady() const {
  if (queue_.empty()) return false;
  const TrainedModel* network = queue_.front()->call.network.get();
  int64_t images = 0;
  int64_t calls = 0;
  for (const std::shared_ptr<Pending>& pending : queue_) {
    if (pending->call.network.get() != network) continue;
    images += pending->call.images - pending->next;
    ++calls;
    if (images >= options_.max_images || calls >= last_batch_calls_) return true;
  }
  return false;
}

bool Batcher::BatchTakeable() const { return stopping_ || queue_.empty() || BatchReady(); }

bool Batcher::WaitForBatch(Clock::time_point deadline) {
  // std::condition_variable::wait_until with a predicate, spelled out so that the analysis
  // sees the predicate read guarded state with mu_ held.
  while (!BatchTakeable()) {
    if (!batch_ready_.WaitUntil(&mu_, deadline)) return BatchTakeable();
  }
  return true;
}

std::vector<Batcher::Slice> Batcher::TakeBatch() {
  std::vector<Slice> batch;
  const std::shared_ptr<const TrainedModel> network = queue_.front()->call.network;
  const Clock::time_point now = Clock::now();
  int64_t taken = 0;
  for (auto it = queue_.begin(); it != queue_.end() && taken < options_.max_images;) {
    Pending& pending = **it;
    if (pending.call.network != network) {
      ++it;
      continue;
    }
    const int64_t count = std::min(pending.call.images - pending.next, options_.max_images - taken);
    if (pending.next == 0 && metrics_ != nullptr) {
      metrics_->ObserveBatcherQueueDelay(
          std::chrono::duration<double>(now - pending.arrived).count());
    }
    batch.push_back(Slice{*it, pending.next, count});
    pending.next += count;
    taken += count;
    if (pending.next == pending.call.images) {
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  queued_images_ -= taken;
  queued_calls_.store(queue_.size(), std::memory_order_relaxed);
  last_batch_calls_ = static_cast<int64_t>(batch.size());
  return batch;
}

void Batcher::Loop() {
  // This thread's share of the inference budget, apart from the training job's threads.
  SetThreadComputeThreads(options_.compute_threads);
  std::vector<float> input;  // Reused: the batch's pixels, without a fresh allocation per pass.
  for (;;) {
    std::vector<Slice> batch;
    PollForWork();
    {
      MutexLock lock(&mu_);
      ++idle_threads_;
      while (!stopping_ && (queue_.empty() || pauses_ != 0)) work_.Wait(&mu_);
      --idle_threads_;
      if (queue_.empty()) return;  // Stopping, and every accepted call is answered or taken.
      if (ShouldWait()) {
        const Clock::time_point until =
            queue_.front()->arrived + absl::ToChronoNanoseconds(options_.max_delay);
        ++waiting_threads_;
        // Wait in steps of a quarter of max_delay and stop early after a step in which no call
        // arrived: a caller of the previous batch that went away is not waited for to the end
        // of the delay; under load calls keep arriving and the batch fills.
        const auto step = absl::ToChronoNanoseconds(options_.max_delay / 4);
        for (int64_t seen = queued_images_;;) {
          const Clock::time_point now = Clock::now();
          if (now >= until || WaitForBatch(std::min(until, now + step))) break;
          if (queued_images_ <= seen) break;  // A quiet step: take what is here.
          seen = queued_images_;
        }
        --waiting_threads_;
        if (queue_.empty()) continue;  // Another thread took them.
      }
      batch = TakeBatch();
      // What this batch left behind goes to another idle thread, if there is one.
      if (!queue_.empty() && idle_threads_ > 0) work_.Signal();
    }
    Run(batch, input);
  }
}

void Batcher::PollForWork() const {
  if (options_.idle_poll <= absl::ZeroDuration() ||
      !idle_polling_.load(std::memory_order_relaxed)) {
    return;
  }
  const Clock::time_point until = Clock::now() + absl::ToChronoNanoseconds(options_.idle_poll);
  while (queued_calls_.load(std::memory_order_relaxed) == 0 && Clock::now() < until) {
    // Any other runnable thread of this core goes first: gRPC's threads, which bring the next
    // call, and a training job's. (A pure spin kept them waiting for their time slice: with a
    // job training on the other core, the echo's p99 rose from 0.4 to 1-3 ms.)
    std::this_thread::yield();
  }
}

void Batcher::Run(std::vector<Slice>& batch, std::vector<float>& input) {
  const std::shared_ptr<const TrainedModel>& network = batch.front().pending->call.network;
  const Architecture& architecture = network->architecture();
  const int64_t per_image =
      int64_t{architecture.input_channels} * architecture.image_size * architecture.image_size;
  const int64_t classes = architecture.num_classes;

  // Drop what nobody waits for, then gather the rest's pixels.
  const auto now = std::chrono::system_clock::now();
  std::vector<Slice> live;
  live.reserve(batch.size());
  int64_t images = 0;
  for (Slice& slice : batch) {
    Pending& pending = *slice.pending;
    if (pending.failed.load()) {
      CompleteSlice(pending, slice.first, slice.count, classes, nullptr,
                    absl::CancelledError("an earlier part of the call failed"));
      continue;
    }
    if (pending.call.deadline <= now) {
      CompleteSlice(pending, slice.first, slice.count, classes, nullptr,
                    absl::DeadlineExceededError(
                        "the deadline passed while the request waited in the inference queue; it "
                        "was dropped without being computed"));
      continue;
    }
    input.resize(static_cast<size_t>((images + slice.count) * per_image));
    absl::Status filled =
        pending.call.fill(slice.first, slice.count, input.data() + images * per_image);
    if (!filled.ok()) {
      CompleteSlice(pending, slice.first, slice.count, classes, nullptr, filled);
      continue;
    }
    images += slice.count;
    live.push_back(std::move(slice));
  }
  if (live.empty()) return;
  input.resize(static_cast<size_t>(images * per_image));

  absl::StatusOr<std::vector<float>> probabilities = network->PredictProbabilities(input, images);
  if (metrics_ != nullptr)
    metrics_->ObserveBatch(static_cast<int>(images), static_cast<int>(live.size()));
  int64_t row = 0;
  for (const Slice& slice : live) {
    if (probabilities.ok()) {
      CompleteSlice(*slice.pending, slice.first, slice.count, classes,
                    probabilities->data() + row * classes, absl::OkStatus());
    } else {
      CompleteSlice(*slice.pending, slice.first, slice.count, classes, nullptr,
                    probabilities.status());
    }
    row += slice.count;
  }
}

}  // namespace classifier
