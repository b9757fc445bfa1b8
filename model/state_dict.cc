#include "model/state_dict.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/pickle_reader.h"

namespace classifier {
namespace {

// No tensor of a state dict we accept comes near this (the tutorial's biggest has 7,840).
constexpr int64_t kMaxStateDictElements = int64_t{1} << 28;

// Every file torch.save writes in its zip format starts with a zip local file header.
constexpr char kZipLocalHeaderMagic[] = "PK\x03\x04";

// ReadStateDict's work. The zip container and the tensor storages are read with LibTorch's
// PyTorchStreamReader, which throws c10::Error on what is not such a zip file; the pickle by
// pickle_reader.h.
absl::StatusOr<std::map<std::string, at::Tensor>> ReadStateDictOrThrow(const std::string& bytes) {
  // LibTorch 1.13's reader leaks miniz's archive state (152 bytes a file) when its constructor
  // throws after the zip was opened, as it does for the legacy format of
  // torch.save(..., _use_new_zipfile_serialization=False) (the state_dict fuzzer's first leak):
  // what is not even a zip is refused before the reader allocates anything.
  if (bytes.compare(0, sizeof(kZipLocalHeaderMagic) - 1, kZipLocalHeaderMagic) != 0) {
    return absl::InvalidArgumentError(
        "not a PyTorch state dict file (the zip format of torch.save): it does not start with a "
        "zip header (torch.save's legacy format, _use_new_zipfile_serialization=False, is not "
        "read)");
  }
  std::istringstream stream(bytes);
  auto reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(&stream);
  const auto [pickle, pickle_size] = reader->getRecord("data.pkl");
  if (reader->hasRecord("byteorder")) {
    const auto [order, order_size] = reader->getRecord("byteorder");
    if (std::string(static_cast<const char*>(order.get()), order_size) != "little") {
      return absl::InvalidArgumentError("big-endian state dict files are not supported");
    }
  }
  PickleArena arena;
  absl::StatusOr<PicklePtr> root =
      Unpickle(static_cast<const char*>(pickle.get()), pickle_size, arena);
  if (!root.ok()) return root.status();
  if ((*root)->kind != PickleValue::Kind::kDict) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a state dict must be a dict of tensors; the file holds a ", KindName((*root)->kind)));
  }

  std::map<std::string, at::Tensor> storages;  // By record key: tensors may share one.
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [key_value, value] : (*root)->entries) {
    if (key_value->kind != PickleValue::Kind::kString) {
      return absl::InvalidArgumentError(
          absl::StrCat("state dict keys must be strings; found a ", KindName(key_value->kind)));
    }
    const std::string& key = key_value->text;
    if (value->kind != PickleValue::Kind::kTensor) {
      return absl::InvalidArgumentError(absl::StrCat("state dict key \"", key, "\" holds a ",
                                                     KindName(value->kind), ", not a tensor"));
    }
    const PickleValue& storage_ref = *value->storage;
    at::Tensor& storage = storages[storage_ref.text];
    if (!storage.defined()) {
      const std::string record = "data/" + storage_ref.text;
      if (!reader->hasRecord(record)) {
        return absl::InvalidArgumentError(
            absl::StrCat("state dict key \"", key, "\": the file lacks its storage ", record));
      }
      const auto [data, data_size] = reader->getRecord(record);
      const int64_t numel = storage_ref.integer;
      const size_t item = c10::elementSize(storage_ref.dtype);
      if (numel > static_cast<int64_t>(data_size / item)) {
        return absl::InvalidArgumentError(
            absl::StrCat("state dict key \"", key, "\": storage ", record, " is truncated"));
      }
      storage = torch::empty({numel}, torch::dtype(storage_ref.dtype));
      std::memcpy(storage.data_ptr(), data.get(), numel * item);
    }
    // The view must lie inside its storage.
    if (value->sizes.size() != value->strides.size() || value->offset < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("state dict key \"", key, "\" has a malformed size or stride"));
    }
    int64_t last = value->offset;
    int64_t numel = 1;
    bool empty = false;
    for (size_t d = 0; d < value->sizes.size(); ++d) {
      if (value->sizes[d] < 0 || value->strides[d] < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("state dict key \"", key, "\" has a negative size or stride"));
      }
      if (value->sizes[d] == 0) empty = true;
      if (value->sizes[d] > 0 && value->strides[d] > (int64_t{1} << 40) / value->sizes[d]) {
        return absl::InvalidArgumentError(
            absl::StrCat("state dict key \"", key, "\" has an absurd size or stride"));
      }
      last += (value->sizes[d] - 1) * value->strides[d];
      numel = value->sizes[d] > kMaxStateDictElements
                  ? kMaxStateDictElements + 1
                  : std::min(numel * value->sizes[d], kMaxStateDictElements + 1);
    }
    if (numel > kMaxStateDictElements) {
      return absl::InvalidArgumentError(absl::StrCat("state dict key \"", key, "\" has more than ",
                                                     kMaxStateDictElements, " elements"));
    }
    if (!empty && last >= storage.numel()) {
      return absl::InvalidArgumentError(
          absl::StrCat("state dict key \"", key, "\" reaches past the end of its storage"));
    }
    tensors[key] = empty ? torch::empty(value->sizes, torch::dtype(storage_ref.dtype))
                         : storage.as_strided(value->sizes, value->strides, value->offset)
                               .clone(at::MemoryFormat::Contiguous);
  }
  return tensors;
}

}  // namespace

absl::StatusOr<std::map<std::string, at::Tensor>> ReadStateDict(const std::string& bytes) {
  try {
    return ReadStateDictOrThrow(bytes);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a PyTorch state dict file (the zip format of torch.save): ",
                     e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory reading a state dict file");
  } catch (const std::exception& e) {
    // LibTorch's reader also throws the standard library's errors (std::stoull of a version
    // record that is not a number): still a file that is not a state dict, never a crash.
    return absl::InvalidArgumentError(
        absl::StrCat("not a PyTorch state dict file (the zip format of torch.save): ", e.what()));
  }
}

// torch::pickle_save's file (torch.save's zip format) without its type tags. pickle_save wraps
// every dict in torch.jit._pickle.restore_type_tag, a global that torch.load refuses when
// weights_only=True, its default since PyTorch 2.6. Untagged, the pickle names only what
// Python's own state dicts name (torch._utils._rebuild_tensor_v2, torch.FloatStorage,
// collections.OrderedDict), and the dict comes back as a plain dict.
std::string WriteStateDict(const c10::Dict<std::string, at::Tensor>& tensors) {
  std::vector<char> pickle;
  torch::jit::Pickler pickler(
      [&pickle](const char* bytes, size_t size) {
        pickle.insert(pickle.end(), bytes, bytes + size);
      },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(tensors));
  pickler.stop();
  std::string file;
  caffe2::serialize::PyTorchStreamWriter writer([&file](const void* bytes, size_t size) {
    file.append(static_cast<const char*>(bytes), size);
    return size;
  });
  torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(),
                                     writer);
  writer.writeEndOfFile();
  return file;
}

}  // namespace classifier
