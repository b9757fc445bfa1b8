#include "model/compute_threads.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>

namespace classifier {

void SetThreadComputeThreads(int threads) {
  // First the process default, as LibTorch would do at this thread's first op (and would then
  // overwrite what follows). lazy_init_num_threads is an inline function with a thread_local
  // "done" flag: LibTorch 1.13 exports it, so there is one flag; 2.x does not, so LibTorch's
  // library and our code each have their own, and LibTorch's first op on this thread would
  // reset the count below. at::get_num_threads runs LibTorch's copy; the direct call, ours (the
  // one at::parallel_for in our own code runs).
  at::internal::lazy_init_num_threads();
  at::get_num_threads();
  // ...then this thread's own OpenMP nthreads-var, which at::get_num_threads reads and
  // at::parallel_for and oneDNN size their teams by. at::set_num_threads would change the
  // process default for every thread that starts later (the training job's among them).
  omp_set_num_threads(std::max(threads, 1));
}

int ThreadComputeThreads() {
  at::internal::lazy_init_num_threads();
  return at::get_num_threads();
}

}  // namespace classifier
