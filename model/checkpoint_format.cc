#include "model/checkpoint_format.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import_read.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace classifier {
namespace {

constexpr char kCheckpointMagic[8] = {'C', 'L', 'F', 'Y', 'C', 'K', 'P', 'T'};
constexpr uint32_t kCheckpointVersion = 1;
constexpr size_t kCheckpointHeaderSize = sizeof(kCheckpointMagic) + 4 + 8 + 8;

void AppendLittleEndian(uint64_t value, int bytes, std::string& out) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t ReadLittleEndian(const char* data, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value |= uint64_t{static_cast<unsigned char>(data[i])} << (8 * i);
  }
  return value;
}

uint64_t RotateLeft(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

std::string ShapeString(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape.begin(), shape.end(), ", "), "]");
}

// The key a checkpoint stores an option under: its field name without "architecture." (the
// keys of format 1, which checkpoints already written carry).
std::string CheckpointKey(absl::string_view field) {
  constexpr absl::string_view kArchitecture = "architecture.";
  return std::string(absl::StartsWith(field, kArchitecture) ? field.substr(kArchitecture.size())
                                                            : field);
}

// An option as a checkpoint's payload holds it.
c10::IValue OptionValue(int value) { return int64_t{value}; }
c10::IValue OptionValue(uint64_t value) { return static_cast<int64_t>(value); }  // Same 64 bits.
c10::IValue OptionValue(double value) { return value; }
c10::IValue OptionValue(bool value) { return value; }
c10::IValue OptionValue(OptimizerKind value) { return static_cast<int64_t>(value); }
c10::IValue OptionValue(LearningRateSchedule value) { return static_cast<int64_t>(value); }
c10::IValue OptionValue(const std::vector<int>& value) {
  return c10::List<int64_t>(std::vector<int64_t>(value.begin(), value.end()));
}

// The options as format 1 records them. It predates "unset" for the STEP schedule's parameters
// and wrote their defaults for runs of the other schedules; so does this build, so that
// checkpoints keep the same bytes, whichever build wrote or reads them.
TrainOptions AsRecorded(TrainOptions options) {
  if (options.lr_schedule != LearningRateSchedule::kStep) {
    options.lr_step_size = kDefaultLrStepSize;
    options.lr_gamma = kDefaultLrGamma;
  }
  return options;
}

// The value of `field` in a run whose checkpoint lacks it: written before the option existed,
// the run had its default. Looked up only for a missing key, so no table of defaults is kept.
c10::IValue DefaultOptionValue(absl::string_view field) {
  const TrainOptions defaults = AsRecorded(TrainOptions());
  c10::IValue found;
  ForEachRunOption(defaults, [&](const char* name, const auto& value) {
    if (name == field) found = OptionValue(value);
  });
  return found;
}

}  // namespace

// A fast 64-bit digest (four lanes of XXH64's round, then a final mix) that catches truncation
// and corruption, not deliberate forgery. It reads words in the host's byte order: checkpoints
// move between little-endian machines only.
uint64_t Digest(const void* data, size_t size, uint64_t seed) {
  constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ull;
  constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4Full;
  constexpr uint64_t kPrime3 = 0x165667B19E3779F9ull;
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint64_t lanes[4] = {seed + kPrime1 + kPrime2, seed + kPrime2, seed, seed - kPrime1};
  size_t i = 0;
  for (; i + 32 <= size; i += 32) {
    for (int lane = 0; lane < 4; ++lane) {
      uint64_t word;
      std::memcpy(&word, bytes + i + 8 * lane, sizeof(word));
      lanes[lane] = RotateLeft(lanes[lane] + word * kPrime2, 31) * kPrime1;
    }
  }
  uint64_t h = RotateLeft(lanes[0], 1) + RotateLeft(lanes[1], 7) + RotateLeft(lanes[2], 12) +
               RotateLeft(lanes[3], 18);
  for (; i < size; ++i) h = RotateLeft(h ^ (bytes[i] * kPrime3), 11) * kPrime1;
  h ^= static_cast<uint64_t>(size) * kPrime3;
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  h *= kPrime3;
  h ^= h >> 32;
  return h;
}

c10::IValue Field(const c10::impl::GenericDict& dict, const std::string& key) {
  const auto found = dict.find(c10::IValue(key));
  if (found == dict.end()) throw CheckpointError(absl::StrCat("it lacks the field ", key));
  return found->value();
}

int64_t IntField(const c10::impl::GenericDict& dict, const std::string& key) {
  const c10::IValue value = Field(dict, key);
  if (!value.isInt()) throw CheckpointError(absl::StrCat("its field ", key, " is not an int"));
  return value.toInt();
}

double DoubleField(const c10::impl::GenericDict& dict, const std::string& key) {
  const c10::IValue value = Field(dict, key);
  if (!value.isDouble()) throw CheckpointError(absl::StrCat("its field ", key, " is not a float"));
  return value.toDouble();
}

at::Tensor TensorField(const c10::impl::GenericDict& dict, const std::string& key) {
  const c10::IValue value = Field(dict, key);
  if (!value.isTensor()) throw CheckpointError(absl::StrCat("its field ", key, " is not a tensor"));
  return value.toTensor();
}

c10::impl::GenericDict DictField(const c10::impl::GenericDict& dict, const std::string& key) {
  const c10::IValue value = Field(dict, key);
  if (!value.isGenericDict()) {
    throw CheckpointError(absl::StrCat("its field ", key, " is not a dict"));
  }
  return value.toGenericDict();
}

at::Tensor MatchingTensor(const c10::impl::GenericDict& dict, const std::string& key,
                          const torch::Tensor& like) {
  const at::Tensor tensor = TensorField(dict, key);
  if (tensor.sizes() != like.sizes() || tensor.scalar_type() != like.scalar_type()) {
    throw CheckpointError(
        absl::StrCat("its tensor ", key, " is ", c10::toString(tensor.scalar_type()),
                     ShapeString(tensor.sizes()), "; the network needs ",
                     c10::toString(like.scalar_type()), ShapeString(like.sizes())));
  }
  return tensor;
}

at::Tensor ForSaving(const torch::Tensor& tensor) {
  return tensor.detach().to(torch::kCPU).contiguous();
}

c10::impl::GenericDict NewDict() {
  return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
}

std::string FrameCheckpoint(const c10::impl::GenericDict& payload_dict) {
  const std::vector<char> payload = torch::pickle_save(c10::IValue(payload_dict));
  std::string bytes;
  bytes.reserve(kCheckpointHeaderSize + payload.size());
  bytes.append(kCheckpointMagic, sizeof(kCheckpointMagic));
  AppendLittleEndian(kCheckpointVersion, 4, bytes);
  AppendLittleEndian(payload.size(), 8, bytes);
  AppendLittleEndian(Digest(payload.data(), payload.size(), /*seed=*/0), 8, bytes);
  bytes.append(payload.data(), payload.size());
  return bytes;
}

c10::impl::GenericDict UnframeCheckpoint(const std::string& bytes) {
  if (bytes.empty() || std::memcmp(bytes.data(), kCheckpointMagic,
                                   std::min(bytes.size(), sizeof(kCheckpointMagic))) != 0) {
    throw CheckpointError("not a training checkpoint (no checkpoint header)");
  }
  if (bytes.size() < kCheckpointHeaderSize) {
    throw CheckpointError(
        absl::StrCat("truncated: ", bytes.size(), " bytes, shorter than its header"));
  }
  const char* header = bytes.data() + sizeof(kCheckpointMagic);
  const uint64_t version = ReadLittleEndian(header, 4);
  if (version != kCheckpointVersion) {
    throw CheckpointError(absl::StrCat("format version ", version, "; this build reads version ",
                                       kCheckpointVersion));
  }
  const uint64_t payload_size = ReadLittleEndian(header + 4, 8);
  const uint64_t digest = ReadLittleEndian(header + 12, 8);
  const uint64_t actual_size = bytes.size() - kCheckpointHeaderSize;
  if (payload_size != actual_size) {
    throw CheckpointError(absl::StrCat(payload_size > actual_size ? "truncated" : "trailing bytes",
                                       ": the header announces ", payload_size,
                                       " payload bytes, there are ", actual_size));
  }
  const char* payload = bytes.data() + kCheckpointHeaderSize;
  if (Digest(payload, payload_size, /*seed=*/0) != digest) {
    throw CheckpointError("corrupt: its checksum does not match its contents");
  }
  // torch::pickle_save writes a zip: anything else is refused before LibTorch's zip reader,
  // which leaks its state when it throws.
  if (payload_size < 4 || std::memcmp(payload, "PK\x03\x04", 4) != 0) {
    throw CheckpointError("corrupt: its payload is not the zip torch::pickle_save writes");
  }
  // What torch::pickle_load does, but through an istream: its own reader (a vector adapter)
  // does not bound the reads the zip directory asks for, so a payload with a forged digest
  // could make it read past its end (found by the checkpoint fuzzer); the istream adapter
  // refuses such reads.
  std::istringstream stream(std::string(payload, payload_size));
  caffe2::serialize::PyTorchStreamReader reader(&stream);
  const c10::IValue root = torch::jit::readArchiveAndTensors(
      "data", /*pickle_prefix=*/"", /*tensor_prefix=*/"", /*type_resolver=*/c10::nullopt,
      /*obj_loader=*/c10::nullopt, /*device=*/c10::nullopt, reader);
  if (!root.isGenericDict()) throw CheckpointError("its payload is not a dict");
  return root.toGenericDict();
}

c10::impl::GenericDict RunOptionsDict(const TrainOptions& options) {
  c10::impl::GenericDict run = NewDict();
  const TrainOptions recorded = AsRecorded(options);
  ForEachRunOption(recorded, [&run](const char* field, const auto& value) {
    run.insert(CheckpointKey(field), OptionValue(value));
  });
  return run;
}

void CheckRunOptions(const c10::impl::GenericDict& run, const TrainOptions& options) {
  const TrainOptions recorded = AsRecorded(options);
  ForEachRunOption(recorded, [&](const char* field, const auto& value) {
    const std::string key = CheckpointKey(field);
    const c10::IValue here = OptionValue(value);
    const c10::IValue saved = run.contains(key) ? run.at(key) : DefaultOptionValue(field);
    if (saved.tagKind() != here.tagKind()) {
      throw CheckpointError(absl::StrCat("its option ", field, " is a ", saved.tagKind(),
                                         ", not a ", here.tagKind()));
    }
    if (!(saved == here)) {
      std::ostringstream message;
      message << "it was written with " << field << " = " << saved << ", these options have "
              << here;
      throw CheckpointError(message.str());
    }
  });
}

}  // namespace classifier
