// The dynamic batcher: Predict calls for the same model are coalesced into one forward pass on
// threads the batcher owns (never gRPC's callback threads), and each call gets its own rows of
// the result back.
//
// Why: a forward pass of this service's small CNNs costs ~200 us of fixed overhead (LibTorch's
// dispatch, oneDNN set-up) plus ~35 us per image, so 64 one-image calls computed one by one
// cost ~6x the CPU of the same 64 images in one pass.
//
// How a batch forms. A thread that becomes free takes the oldest queued call, then every other
// queued call of the same model in arrival order, up to `max_images` images. Calls bigger than
// that are cut into slices of `max_images` images (a cache-sized forward: no cliff at 10,000
// images), which other calls' slices can share a pass with, and which every thread can work on
// at once. Calls queue while the threads compute, so under load batches form by themselves.
// On top of that a batch may wait for more calls, up to `max_delay` after its oldest call
// arrived, but only while the batcher is coalescing (the previous batch held more than one
// call), and only until as many calls are queued as the previous batch answered: callers
// waiting on their answers send their next calls as soon as they have them, so the previous
// batch's callers are the ones worth waiting for (2 callers: a batch of 2 goes as soon as the
// second call is in; 64: as soon as the 64th is). A lone caller, whose next call cannot arrive
// before this one is answered, never waits; a batch of `max_images` images never waits. The
// wait also ends after a quarter of `max_delay` in which no call arrived (a caller that left).
//
// Deadlines: a call whose deadline has passed when its turn comes is answered
// DEADLINE_EXCEEDED without being computed (its client has given up).
//
// Numerics: a call's probabilities may differ in the last float bits (measured: under 1e-5)
// with the batch it shared, as the kernels block a bigger pass differently.
#ifndef CLASSIFIER_SERVER_BATCHER_H_
#define CLASSIFIER_SERVER_BATCHER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/network.h"
#include "server/metrics.h"
#include "server/mutex.h"

namespace classifier {

struct BatcherOptions {
  // Images in one forward pass at most, and the slice size of bigger calls.
  int max_images = 256;
  // How long a batch smaller than max_images may wait for more calls while coalescing (see
  // above); zero never waits.
  absl::Duration max_delay = absl::Microseconds(1000);
  // How long a thread that finds no call polls for one (yielding to any other runnable thread,
  // the lock not held) before it sleeps, while polling is on (SetIdlePolling). A sleeping
  // thread takes 40-60 us to wake on another core of this machine's VM and then runs its
  // forward pass on cold caches; a steady caller's next call, which arrives a round trip after
  // its answer, finds a polling thread instead. Costs up to this much CPU after every batch;
  // zero sleeps at once.
  absl::Duration idle_poll = absl::ZeroDuration();
  // Threads running forward passes, each with `compute_threads` LibTorch intra-op threads:
  // together, the inference thread budget (see README "Thread budget").
  int threads = 1;
  int compute_threads = 1;
};

class Batcher {
 public:
  // One Predict call, as the batcher sees it.
  struct Call {
    // The network that computes it; calls are coalesced with others of the same network. Must
    // not be null.
    std::shared_ptr<const TrainedModel> network;
    // Images in the call (>= 1).
    int64_t images = 0;
    // When the caller stops waiting for the answer.
    std::chrono::system_clock::time_point deadline = std::chrono::system_clock::time_point::max();
    // Writes images [first, first + count) of the call, as the network's input (count *
    // channels * side * side floats in [0, 1]), to `out`. Runs on a batcher thread, possibly
    // on several threads at once for disjoint ranges of one call. An error fails the call.
    std::function<absl::Status(int64_t first, int64_t count, float* out)> fill;
    // Receives images * num_classes softmax probabilities, image after image, or why there are
    // none: called exactly once per submitted call, on a batcher thread (or inside Submit when
    // the batcher has stopped). Must not throw; should be quick (it holds a batcher thread).
    std::function<void(absl::StatusOr<std::vector<float>>)> done;
  };

  // Starts the threads. `metrics` (nullable) must outlive the batcher.
  Batcher(BatcherOptions options, Metrics* metrics);
  // Stops accepting calls, answers every call already accepted (waiting for none), then joins
  // the threads.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Thread-safe; never blocks on a forward pass. After the destructor has started, `done` is
  // called at once with UNAVAILABLE.
  void Submit(Call call);

  const BatcherOptions& options() const { return options_; }

  // While a Pause lives, no thread takes a new batch: calls queue and wait (a thread already
  // computing, or holding a batch open, finishes that batch). Pauses nest; the destructor of
  // the batcher ends them all. What a test uses to hold a call in the queue deterministically,
  // e.g. until its deadline has passed, instead of racing busy work against it.
  class Pause {
   public:
    Pause(Pause&& other) noexcept : batcher_(std::exchange(other.batcher_, nullptr)) {}
    Pause& operator=(Pause&&) = delete;
    Pause(const Pause&) = delete;
    ~Pause();

   private:
    friend class Batcher;
    explicit Pause(Batcher* batcher) : batcher_(batcher) {}
    Batcher* batcher_;
  };
  [[nodiscard]] Pause PauseBatches();

  // Calls queued and not yet wholly taken into a batch; thread-safe.
  size_t queued_calls() const { return queued_calls_.load(std::memory_order_relaxed); }

  // Whether idle threads poll (options().idle_poll) or sleep at once; thread-safe. The server
  // turns polling off while a training job runs: the cores are then the job's and gRPC's, and a
  // polling thread would compete with them for CPU time.
  void SetIdlePolling(bool enabled) { idle_polling_.store(enabled, std::memory_order_relaxed); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending;
  struct Slice;

  void Loop();
  // Polls queued_calls_ for up to options_.idle_poll (see there). No lock held.
  void PollForWork() const ABSL_LOCKS_EXCLUDED(mu_);
  // Whether the oldest queued call should wait for more calls to join its batch.
  bool ShouldWait() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the calls queued for the oldest queued call's network make a batch worth taking
  // now: max_images images, or as many calls as the previous batch held.
  bool BatchReady() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a thread holding a batch open should stop waiting: stopping, the queue emptied by
  // another thread, or BatchReady().
  bool BatchTakeable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits on batch_ready_ until BatchTakeable() or `deadline`; returns BatchTakeable().
  bool WaitForBatch(Clock::time_point deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the next batch off the queue: the oldest call's network, up to max_images images.
  std::vector<Slice> TakeBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Computes one batch and answers the calls it completes. No lock held.
  void Run(std::vector<Slice>& batch, std::vector<float>& input) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const BatcherOptions options_;
  Metrics* const metrics_;

  Mutex mu_;
  // Idle threads wait here for a call.
  CondVar work_;
  // A thread holding a batch open for more calls waits here: woken only when a ready batch
  // may be queued, not at every arrival (64 callers would otherwise wake it 64 times a batch).
  CondVar batch_ready_;
  std::deque<std::shared_ptr<Pending>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_images_ ABSL_GUARDED_BY(mu_) = 0;  // Not yet handed to a batch, any network.
  // queue_.size(), written under mu_, read without it by polling threads.
  std::atomic<size_t> queued_calls_{0};
  std::atomic<bool> idle_polling_{true};
  int idle_threads_ ABSL_GUARDED_BY(mu_) = 0;
  int waiting_threads_ ABSL_GUARDED_BY(mu_) = 0;  // Holding a batch open.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int pauses_ ABSL_GUARDED_BY(mu_) = 0;  // Pause objects alive.
  // Calls in the last batch taken: more than one means coalescing (see the header comment).
  int64_t last_batch_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_;  // Last: joined before the rest is destroyed.
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_BATCHER_H_
