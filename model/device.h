// Choosing and preparing the machine a model runs on: the device and the process's intra-op
// thread count. Free of LibTorch headers, so server/ and bench/ may include it.
#ifndef CLASSIFIER_MODEL_DEVICE_H_
#define CLASSIFIER_MODEL_DEVICE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace classifier {

// Checks a device spec ("auto", "cpu", "cuda", "cuda:N") against this machine and returns the
// concrete device ("cpu" or "cuda:N"). "auto" is CUDA when present, else CPU. Asking for CUDA
// where there is none is FAILED_PRECONDITION; a malformed spec is INVALID_ARGUMENT.
absl::StatusOr<std::string> ResolveDevice(const std::string& spec);

// The device of one rank of a data-parallel job, by torchrun's convention: a spec that names no
// GPU ("cuda", or "auto" where CUDA is present) means GPU LOCAL_RANK (modulo the GPUs this host
// has, so that more ranks than GPUs share them), not every rank on GPU 0; "cuda:N" and "cpu"
// are kept. Errors as ResolveDevice's.
absl::StatusOr<std::string> ResolveRankDevice(const std::string& spec, int local_rank);

// Pays a device's one-time start before the first job does: on CUDA, the context and the
// loading of cuDNN and cuBLAS (about half a second on an H200, as long as two epochs of the
// tutorial), by running the tutorial's network forward and backward once on a small batch. Does
// nothing for "cpu". `device` is one ResolveDevice returned.
absl::Status WarmUpDevice(const std::string& device);

// Sets LibTorch's intra-op thread count for the process (0 = leave LibTorch's default).
void SetComputeThreads(int threads);

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_DEVICE_H_
