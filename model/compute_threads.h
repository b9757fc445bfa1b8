// Intra-op thread budgets per thread, so that inference and training can each have their own.
//
// LibTorch 1.13 on Debian runs its intra-op parallelism (and oneDNN's) on OpenMP. There,
// at::set_num_threads sets a process-wide default *and* the calling thread's OpenMP
// nthreads-var; every other thread picks the default up the first time it runs a LibTorch op
// (at::init_num_threads), and each thread that opens a parallel region gets its own OpenMP
// team of that size. The count is therefore per thread: SetThreadComputeThreads changes only
// the caller's, which is how the server gives its inference threads a budget apart from the
// training job's (see server/batcher.h and README "Thread budget").
#ifndef CLASSIFIER_MODEL_COMPUTE_THREADS_H_
#define CLASSIFIER_MODEL_COMPUTE_THREADS_H_

namespace classifier {

// Sets the intra-op thread count of the calling thread only (threads >= 1): other threads and
// the process default (SetComputeThreads in device.h) keep theirs. Call it once at the start
// of a thread, before its first forward pass; anything that later calls at::init_num_threads
// or at::set_num_threads on this thread resets it to the process default.
void SetThreadComputeThreads(int threads);

// The calling thread's intra-op thread count (what its next parallel op would use).
int ThreadComputeThreads();

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_COMPUTE_THREADS_H_
