// The mutex, scoped lock and condition variable of server/: std::mutex and
// std::condition_variable behind the annotations clang's -Wthread-safety understands, so that
// ABSL_GUARDED_BY and ABSL_EXCLUSIVE_LOCKS_REQUIRED are checked, not just comments
// (tests/thread_safety_check.sh runs the check; leveldb's port/port_stdcxx.h and
// util/mutexlock.h are the model).
//
// Why a wrapper and not absl::Mutex:
// - Behaviour stays exactly what it was: the same std::mutex and std::condition_variable,
//   the same wake-ups (Signal is notify_one, SignalAll notify_all) and the same timed waits
//   on the caller's clock. The batcher's wake-up policy was tuned and measured on these (see
//   server/batcher.h); absl::Mutex spins, wakes and re-evaluates Await conditions its own way.
// - Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock detector and its
//   global lock graph on unless each program turns it off (server/main.cc does, measured at
//   3-4% of the server's CPU); the tests and benchmarks would run with it on.
//
// Waits are written as loops in the function that holds the lock, e.g.
//   MutexLock lock(&mu_);
//   while (queue_.empty()) available_.Wait(&mu_);
// so the analysis checks the condition's reads of guarded state like any other; a lambda
// passed as a predicate would be analysed as a function that holds no lock.
#ifndef CLASSIFIER_SERVER_MUTEX_H_
#define CLASSIFIER_SERVER_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace classifier {

// A non-recursive exclusive lock. Prefer MutexLock to calling Lock and Unlock.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // Tells the analysis the caller holds the lock (checks nothing at run time), for code it
  // cannot follow, such as a callback that is documented to run under the lock.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` from construction to the end of the scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A std::condition_variable waited on with a Mutex held. Each wait releases `mu` while it
// sleeps and holds it again when it returns; it may return spuriously, so callers wait in a
// loop on their condition.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // Still held: the caller's MutexLock unlocks it.
  }

  // False when `deadline` passed (std::cv_status::timeout), true when woken (or spuriously).
  template <typename Clock, typename Duration>
  bool WaitUntil(Mutex* mu, const std::chrono::time_point<Clock, Duration>& deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const std::cv_status status = cv_.wait_until(lock, deadline);
    lock.release();
    return status == std::cv_status::no_timeout;
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_MUTEX_H_
