#include "model/compute_threads.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>

namespace classifier {

void SetThreadComputeThreads(int threads) {
  // First the process default, as LibTorch would do at this thread's first op (and would then
  // overwrite what follows)...
  at::internal::lazy_init_num_threads();
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
