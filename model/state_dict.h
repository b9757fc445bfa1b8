// Private to classifier_model (network.cc): PyTorch's state dict file, read and written. The
// file is torch.save's zip format: a pickle (data.pkl) of a dict from parameter name to tensor,
// and one record per tensor storage. Includes LibTorch headers, so never include it from a
// public header, server/ or client/.
#ifndef CLASSIFIER_MODEL_STATE_DICT_H_
#define CLASSIFIER_MODEL_STATE_DICT_H_

#include <ATen/core/Dict.h>
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace classifier {

// Reads a torch.save zip file of a dict of tensors: Python's torch.save(model.state_dict())
// (what pickle_reader.h accepts: protocols 2-5, the torch.<Type>Storage classes it lists),
// torch::pickle_save of a c10::Dict, or
// what WriteStateDict writes. Tensors come back on the CPU in the file's dtype, contiguous,
// owning their memory. Anything else (not a zip, another pickle, a key that is not a string, a
// value that is not a tensor, a missing or truncated storage, a view reaching past its storage,
// a big-endian file, more than 2^28 elements in a tensor) is INVALID_ARGUMENT saying which; out
// of memory is RESOURCE_EXHAUSTED. Other exceptions propagate: call it inside a try, as any
// LibTorch code.
absl::StatusOr<std::map<std::string, at::Tensor>> ReadStateDict(const std::string& bytes);

// The file Python's torch.load opens as a plain dict of `tensors` (CPU tensors, in the dict's
// order), even with weights_only=True. Throws what LibTorch throws on failure.
std::string WriteStateDict(const c10::Dict<std::string, at::Tensor>& tensors);

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_STATE_DICT_H_
