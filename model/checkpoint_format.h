// The bytes of a training checkpoint (Trainer::Impl::SaveState / LoadState write and read
// them), and the pieces every field of one is written and read with. Private to
// classifier_model: the format is the trainer's, not an API.
//
// The bytes: kCheckpointMagic, the format version (4 bytes), the payload's length and its
// digest (8 bytes each; all little-endian), then the payload: torch::pickle_save of a dict of
// the TrainingState fields, the options and data it was written for, and its tensors on the
// CPU. The digest is checked before LibTorch's unpickler sees a byte, so truncated or damaged
// files are refused here and never reach a parser that was not written for hostile input.
#ifndef CLASSIFIER_MODEL_CHECKPOINT_FORMAT_H_
#define CLASSIFIER_MODEL_CHECKPOINT_FORMAT_H_

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "model/train_options.h"

namespace classifier {

// A fast 64-bit digest that catches truncation and corruption, not deliberate forgery.
uint64_t Digest(const void* data, size_t size, uint64_t seed);

// Thrown while reading a checkpoint; LoadState turns it into INVALID_ARGUMENT ("training
// checkpoint: " and the message).
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A dict of str to anything, for the payload.
c10::impl::GenericDict NewDict();

// The checkpoint's bytes: the header, then torch::pickle_save of `payload`.
std::string FrameCheckpoint(const c10::impl::GenericDict& payload);
// The payload of `bytes`, once the header, length and digest hold: CheckpointError naming what
// does not (no header, another version, truncated, trailing bytes, corrupt) before LibTorch's
// unpickler sees a byte; c10::Error from the unpickler itself.
c10::impl::GenericDict UnframeCheckpoint(const std::string& bytes);

// The payload's fields by type: a missing key or another type is a CheckpointError naming it.
c10::IValue Field(const c10::impl::GenericDict& dict, const std::string& key);
int64_t IntField(const c10::impl::GenericDict& dict, const std::string& key);
double DoubleField(const c10::impl::GenericDict& dict, const std::string& key);
at::Tensor TensorField(const c10::impl::GenericDict& dict, const std::string& key);
c10::impl::GenericDict DictField(const c10::impl::GenericDict& dict, const std::string& key);
// The tensor `key` of `dict`, which must have the dtype and shape of `like`.
at::Tensor MatchingTensor(const c10::impl::GenericDict& dict, const std::string& key,
                          const torch::Tensor& like);
// What pickle_save gets: detached, on the CPU, dense in the default memory format.
at::Tensor ForSaving(const torch::Tensor& tensor);

// A scalar of a field list (TrainingState's, ForEachProgressField) into the payload, and back.
inline c10::IValue ScalarField(int value) { return int64_t{value}; }
inline c10::IValue ScalarField(int64_t value) { return value; }
inline c10::IValue ScalarField(double value) { return value; }
inline void ReadScalarField(const c10::impl::GenericDict& dict, const std::string& key, int& out) {
  out = static_cast<int>(IntField(dict, key));
}
inline void ReadScalarField(const c10::impl::GenericDict& dict, const std::string& key,
                            int64_t& out) {
  out = IntField(dict, key);
}
inline void ReadScalarField(const c10::impl::GenericDict& dict, const std::string& key,
                            double& out) {
  out = DoubleField(dict, key);
}

// The run's options (ForEachRunOption), for a checkpoint's "run" dict.
c10::impl::GenericDict RunOptionsDict(const TrainOptions& options);
// A CheckpointError naming the first option that differs between a checkpoint's "run" dict and
// `options`. An option the checkpoint lacks (written before the option existed) had its
// default value then.
void CheckRunOptions(const c10::impl::GenericDict& run, const TrainOptions& options);

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_CHECKPOINT_FORMAT_H_
