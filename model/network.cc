#include "model/network.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <new>
#include <optional>
#include <sstream>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/cnn.h"
#include "model/relu_pool.h"
#include "model/rowwise_linear.h"
#include "model/single_channel_conv.h"

namespace classifier {
namespace {

// Bounds for ValidateArchitecture: generous for MNIST-like data, small enough that a
// malformed request cannot ask for gigabytes of parameters.
constexpr int kMaxInputChannels = 64;
constexpr int kMaxImageSize = 4096;
constexpr int kMinClasses = 2;
constexpr int kMaxClasses = 256;  // Labels are bytes.
constexpr size_t kMaxConvLayers = 8;
constexpr int kMaxConvChannels = 1024;
constexpr int kMaxKernelSize = 15;
constexpr int64_t kMaxFcInputs = int64_t{1} << 20;
constexpr int kMaxHiddenUnits = 4096;
constexpr double kMaxDropout = 0.9;
// Inference runs in chunks: on the CPU a batch much bigger than this falls out of the caches
// and gets slower per image (measured: 512 images at once halve the throughput); on a GPU
// bigger chunks keep it busy.
constexpr int64_t kCpuChunk = 128;
constexpr int64_t kCudaChunk = 8192;
constexpr double kPixelScale = 255.0;  // uint8 -> [0, 1], exactly as torchvision's ToTensor.
// No tensor of a state dict we accept comes near this (the tutorial's biggest has 7,840).
constexpr int64_t kMaxStateDictElements = int64_t{1} << 28;

int64_t ChunkFor(const torch::Device& device) { return device.is_cuda() ? kCudaChunk : kCpuChunk; }

std::string ShapeString(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape.begin(), shape.end(), ", "), "]");
}

absl::Status OutOfRange(const std::string& field, int64_t value, int64_t low, int64_t high) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be between ", low, " and ", high, ", got ", value));
}

// A dataset must be grey images of the architecture's size, with labels it can predict.
absl::Status CheckDatasetFits(const Dataset& dataset, const Architecture& architecture) {
  if (architecture.input_channels != 1) {
    return absl::InvalidArgumentError(absl::StrCat("architecture.input_channels is ",
                                                   architecture.input_channels,
                                                   " but datasets hold grey images (1 channel)"));
  }
  if (dataset.rows != architecture.image_size || dataset.cols != architecture.image_size) {
    return absl::InvalidArgumentError(absl::StrCat("the dataset's images are ", dataset.rows, "x",
                                                   dataset.cols, " but architecture.image_size is ",
                                                   architecture.image_size));
  }
  if (static_cast<int64_t>(dataset.pixels.size()) != dataset.size() * dataset.image_size()) {
    return absl::InvalidArgumentError(absl::StrCat("the dataset holds ", dataset.pixels.size(),
                                                   " pixels for ", dataset.size(), " images of ",
                                                   dataset.rows, "x", dataset.cols));
  }
  const auto max_label = std::max_element(dataset.labels.begin(), dataset.labels.end());
  if (max_label != dataset.labels.end() && *max_label >= architecture.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat("the dataset has label ", int{*max_label},
                                                   " but architecture.num_classes is ",
                                                   architecture.num_classes));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Reading state dict files.
//
// LibTorch's own torch::pickle_load cannot read what Python's torch.save(model.state_dict())
// writes: it turns the collections.OrderedDict into None (1.13 and 2.6 alike; 2.6 then throws).
// So the pickle is read here by a small interpreter that knows exactly the opcodes and globals a
// state dict uses (from Python's torch.save, from ToStateDictBytes, and from torch::pickle_save,
// which earlier versions of ToStateDictBytes used) and refuses everything else; the zip
// container and the tensor storages are read with LibTorch's PyTorchStreamReader.

struct PickleValue;
using PicklePtr = std::shared_ptr<PickleValue>;

struct PickleValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kStorage,
    kTensor
  };
  Kind kind = Kind::kNone;
  int64_t integer = 0;  // kBool, kInt; kStorage: element count.
  double real = 0;
  std::string text;              // kString; kGlobal: "module.name"; kStorage: its record key.
  std::vector<PicklePtr> items;  // kTuple, kList.
  std::vector<std::pair<PicklePtr, PicklePtr>> entries;  // kDict.
  c10::ScalarType dtype = c10::ScalarType::Float;        // kStorage, kTensor.
  PicklePtr storage;                                     // kTensor.
  int64_t offset = 0;                                    // kTensor.
  std::vector<int64_t> sizes, strides;                   // kTensor.
};

const char* KindName(PickleValue::Kind kind) {
  switch (kind) {
    case PickleValue::Kind::kNone:
      return "None";
    case PickleValue::Kind::kBool:
      return "bool";
    case PickleValue::Kind::kInt:
      return "int";
    case PickleValue::Kind::kFloat:
      return "float";
    case PickleValue::Kind::kString:
      return "str";
    case PickleValue::Kind::kTuple:
      return "tuple";
    case PickleValue::Kind::kList:
      return "list";
    case PickleValue::Kind::kDict:
      return "dict";
    case PickleValue::Kind::kGlobal:
      return "global";
    case PickleValue::Kind::kStorage:
      return "storage";
    case PickleValue::Kind::kTensor:
      return "tensor";
  }
  return "?";
}

// Owns every value of one unpickling. Values link to each other through shared pointers, and
// a hostile pickle can nest them a million deep or make cycles; the arena cuts every link
// before anything is freed, so destruction never recurses and cycles cannot leak.
class PickleArena {
 public:
  PickleArena() = default;
  PickleArena(const PickleArena&) = delete;
  PickleArena& operator=(const PickleArena&) = delete;
  ~PickleArena() {
    for (const PicklePtr& value : values_) {
      value->items.clear();
      value->entries.clear();
      value->storage.reset();
    }
  }

  PicklePtr Make(PickleValue::Kind kind) {
    values_.push_back(std::make_shared<PickleValue>());
    values_.back()->kind = kind;
    return values_.back();
  }

 private:
  std::vector<PicklePtr> values_;
};

absl::Status PickleError(const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported or corrupt state dict pickle: ", what));
}

// The storage classes torch.save names, e.g. torch.FloatStorage.
bool StorageDtype(const std::string& global, c10::ScalarType* dtype) {
  static const std::pair<const char*, c10::ScalarType> kStorages[] = {
      {"torch.FloatStorage", c10::ScalarType::Float},
      {"torch.DoubleStorage", c10::ScalarType::Double},
      {"torch.HalfStorage", c10::ScalarType::Half},
      {"torch.BFloat16Storage", c10::ScalarType::BFloat16},
      {"torch.LongStorage", c10::ScalarType::Long},
      {"torch.IntStorage", c10::ScalarType::Int},
      {"torch.ShortStorage", c10::ScalarType::Short},
      {"torch.CharStorage", c10::ScalarType::Char},
      {"torch.ByteStorage", c10::ScalarType::Byte},
      {"torch.BoolStorage", c10::ScalarType::Bool},
  };
  for (const auto& [name, type] : kStorages) {
    if (global == name) {
      *dtype = type;
      return true;
    }
  }
  return false;
}

absl::StatusOr<std::vector<int64_t>> IntTuple(const PicklePtr& value, const char* what) {
  if (value->kind != PickleValue::Kind::kTuple) {
    return PickleError(absl::StrCat(what, " is not a tuple"));
  }
  std::vector<int64_t> ints;
  for (const PicklePtr& item : value->items) {
    if (item->kind != PickleValue::Kind::kInt) {
      return PickleError(absl::StrCat(what, " holds a non-integer"));
    }
    ints.push_back(item->integer);
  }
  return ints;
}

// Applies a global to its argument tuple (the REDUCE opcode).
absl::StatusOr<PicklePtr> Reduce(const PicklePtr& callable, const PicklePtr& args,
                                 PickleArena& arena) {
  if (callable->kind != PickleValue::Kind::kGlobal) return PickleError("REDUCE on a non-global");
  if (args->kind != PickleValue::Kind::kTuple) {
    return PickleError("REDUCE arguments are not a tuple");
  }
  const std::string& name = callable->text;
  const std::vector<PicklePtr>& a = args->items;
  if (name == "collections.OrderedDict") {
    // The state dict itself, and a tensor's (always empty) backward hooks.
    return arena.Make(PickleValue::Kind::kDict);
  }
  if (name == "torch.jit._pickle.restore_type_tag") {
    // torch::pickle_save's wrapper naming a container's static type: keep the container.
    if (a.size() != 2) return PickleError("restore_type_tag expects 2 arguments");
    return a[0];
  }
  if (name == "torch._utils._rebuild_parameter") {
    if (a.empty() || a[0]->kind != PickleValue::Kind::kTensor) {
      return PickleError("_rebuild_parameter without a tensor");
    }
    return a[0];
  }
  if (name == "torch._utils._rebuild_tensor_v2") {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (a.size() < 4 || a[0]->kind != PickleValue::Kind::kStorage ||
        a[1]->kind != PickleValue::Kind::kInt) {
      return PickleError("malformed _rebuild_tensor_v2 arguments");
    }
    auto tensor = arena.Make(PickleValue::Kind::kTensor);
    tensor->storage = a[0];
    tensor->dtype = a[0]->dtype;
    tensor->offset = a[1]->integer;
    absl::StatusOr<std::vector<int64_t>> sizes = IntTuple(a[2], "a tensor's size");
    if (!sizes.ok()) return sizes.status();
    absl::StatusOr<std::vector<int64_t>> strides = IntTuple(a[3], "a tensor's stride");
    if (!strides.ok()) return strides.status();
    tensor->sizes = *std::move(sizes);
    tensor->strides = *std::move(strides);
    return tensor;
  }
  return PickleError(
      absl::StrCat("unsupported global ", name, " (a state dict holds only tensors)"));
}

// Interprets the pickle protocol 2-5 subset that state dicts use.
absl::StatusOr<PicklePtr> Unpickle(const char* data, size_t size, PickleArena& arena) {
  constexpr size_t kMaxMemo = size_t{1} << 20;
  std::vector<PicklePtr> stack;
  std::vector<size_t> marks;
  std::vector<PicklePtr> memo;
  size_t pos = 0;
  auto need = [&](size_t n) { return size - pos >= n; };
  auto read_le = [&](size_t n) -> uint64_t {
    uint64_t value = 0;
    for (size_t i = 0; i < n; ++i) {
      value |= uint64_t{static_cast<unsigned char>(data[pos + i])} << (8 * i);
    }
    pos += n;
    return value;
  };
  auto pop = [&]() -> PicklePtr {
    PicklePtr value = stack.back();
    stack.pop_back();
    return value;
  };
  // Pops everything above the last mark.
  auto pop_mark = [&](std::vector<PicklePtr>* items) -> bool {
    if (marks.empty() || marks.back() > stack.size()) return false;
    items->assign(stack.begin() + marks.back(), stack.end());
    stack.resize(marks.back());
    marks.pop_back();
    return true;
  };
  auto put = [&](size_t index) -> absl::Status {
    if (stack.empty()) return PickleError("PUT on an empty stack");
    if (index >= kMaxMemo) return PickleError("memo index too large");
    if (memo.size() <= index) memo.resize(index + 1);
    memo[index] = stack.back();
    return absl::OkStatus();
  };
  auto get = [&](size_t index) -> absl::Status {
    if (index >= memo.size() || memo[index] == nullptr) {
      return PickleError("GET of an unknown memo entry");
    }
    stack.push_back(memo[index]);
    return absl::OkStatus();
  };
  auto push_string = [&](size_t length) -> absl::Status {
    if (!need(length)) return PickleError("truncated string");
    auto value = arena.Make(PickleValue::Kind::kString);
    value->text.assign(data + pos, length);
    pos += length;
    stack.push_back(std::move(value));
    return absl::OkStatus();
  };
  auto push_int = [&](int64_t integer) {
    auto value = arena.Make(PickleValue::Kind::kInt);
    value->integer = integer;
    stack.push_back(std::move(value));
  };
  auto set_items = [&](PicklePtr& dict, const std::vector<PicklePtr>& items) -> absl::Status {
    if (dict->kind != PickleValue::Kind::kDict || items.size() % 2 != 0) {
      return PickleError("SETITEMS on a non-dict");
    }
    for (size_t i = 0; i < items.size(); i += 2) dict->entries.emplace_back(items[i], items[i + 1]);
    return absl::OkStatus();
  };

  while (true) {
    if (!need(1)) return PickleError("ends before STOP");
    const unsigned char opcode = static_cast<unsigned char>(data[pos++]);
    absl::Status status;
    switch (opcode) {
      case 0x80:  // PROTO
        if (!need(1)) return PickleError("truncated PROTO");
        ++pos;
        break;
      case 0x95:  // FRAME: a length hint only.
        if (!need(8)) return PickleError("truncated FRAME");
        pos += 8;
        break;
      case '.':  // STOP
        if (stack.size() != 1) return PickleError("STOP with a malformed stack");
        return stack.back();
      case '(':  // MARK
        marks.push_back(stack.size());
        break;
      case 'N':  // NONE
        stack.push_back(arena.Make(PickleValue::Kind::kNone));
        break;
      case 0x88:    // NEWTRUE
      case 0x89: {  // NEWFALSE
        auto value = arena.Make(PickleValue::Kind::kBool);
        value->integer = opcode == 0x88;
        stack.push_back(std::move(value));
        break;
      }
      case 'K':  // BININT1
        if (!need(1)) return PickleError("truncated BININT1");
        push_int(static_cast<int64_t>(read_le(1)));
        break;
      case 'M':  // BININT2
        if (!need(2)) return PickleError("truncated BININT2");
        push_int(static_cast<int64_t>(read_le(2)));
        break;
      case 'J':  // BININT: signed 32 bits.
        if (!need(4)) return PickleError("truncated BININT");
        push_int(static_cast<int32_t>(static_cast<uint32_t>(read_le(4))));
        break;
      case 0x8a: {  // LONG1: n little-endian two's complement bytes.
        if (!need(1)) return PickleError("truncated LONG1");
        const size_t n = static_cast<size_t>(read_le(1));
        if (n > 8 || !need(n)) return PickleError("LONG1 out of range");
        uint64_t value = n == 0 ? 0 : read_le(n);
        if (n > 0 && n < 8 && (value >> (8 * n - 1)) & 1) value |= ~uint64_t{0} << (8 * n);
        push_int(static_cast<int64_t>(value));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double.
        if (!need(8)) return PickleError("truncated BINFLOAT");
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<unsigned char>(data[pos + i]);
        pos += 8;
        auto value = arena.Make(PickleValue::Kind::kFloat);
        std::memcpy(&value->real, &bits, sizeof(bits));
        stack.push_back(std::move(value));
        break;
      }
      case 'X':  // BINUNICODE
        if (!need(4)) return PickleError("truncated BINUNICODE");
        status = push_string(static_cast<size_t>(read_le(4)));
        break;
      case 0x8c:  // SHORT_BINUNICODE
        if (!need(1)) return PickleError("truncated SHORT_BINUNICODE");
        status = push_string(static_cast<size_t>(read_le(1)));
        break;
      case 0x8d:  // BINUNICODE8
        if (!need(8)) return PickleError("truncated BINUNICODE8");
        status = push_string(static_cast<size_t>(read_le(8)));
        break;
      case ')':  // EMPTY_TUPLE
        stack.push_back(arena.Make(PickleValue::Kind::kTuple));
        break;
      case 0x85:    // TUPLE1
      case 0x86:    // TUPLE2
      case 0x87: {  // TUPLE3
        const size_t n = opcode - 0x84u;
        if (stack.size() < n) return PickleError("TUPLE on a short stack");
        auto tuple = arena.Make(PickleValue::Kind::kTuple);
        tuple->items.assign(stack.end() - n, stack.end());
        stack.resize(stack.size() - n);
        stack.push_back(std::move(tuple));
        break;
      }
      case 't':    // TUPLE
      case 'l': {  // LIST
        auto value =
            arena.Make(opcode == 't' ? PickleValue::Kind::kTuple : PickleValue::Kind::kList);
        if (!pop_mark(&value->items)) return PickleError("TUPLE without MARK");
        stack.push_back(std::move(value));
        break;
      }
      case ']':  // EMPTY_LIST
        stack.push_back(arena.Make(PickleValue::Kind::kList));
        break;
      case 'a':  // APPEND
        if (stack.size() < 2 || stack[stack.size() - 2]->kind != PickleValue::Kind::kList) {
          return PickleError("APPEND on a non-list");
        } else {
          PicklePtr item = pop();
          stack.back()->items.push_back(std::move(item));
        }
        break;
      case 'e': {  // APPENDS
        std::vector<PicklePtr> items;
        if (!pop_mark(&items)) return PickleError("APPENDS without MARK");
        if (stack.empty() || stack.back()->kind != PickleValue::Kind::kList) {
          return PickleError("APPENDS on a non-list");
        }
        stack.back()->items.insert(stack.back()->items.end(), items.begin(), items.end());
        break;
      }
      case '}':  // EMPTY_DICT
        stack.push_back(arena.Make(PickleValue::Kind::kDict));
        break;
      case 'd': {  // DICT
        std::vector<PicklePtr> items;
        if (!pop_mark(&items)) return PickleError("DICT without MARK");
        auto dict = arena.Make(PickleValue::Kind::kDict);
        status = set_items(dict, items);
        stack.push_back(std::move(dict));
        break;
      }
      case 's': {  // SETITEM
        if (stack.size() < 3) return PickleError("SETITEM on a short stack");
        std::vector<PicklePtr> items(stack.end() - 2, stack.end());
        stack.resize(stack.size() - 2);
        status = set_items(stack.back(), items);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<PicklePtr> items;
        if (!pop_mark(&items)) return PickleError("SETITEMS without MARK");
        if (stack.empty()) return PickleError("SETITEMS on an empty stack");
        status = set_items(stack.back(), items);
        break;
      }
      case 'c': {  // GLOBAL: "module\nname\n"
        const char* end = data + size;
        const char* first = std::find(data + pos, end, '\n');
        if (first == end) return PickleError("truncated GLOBAL");
        const char* second = std::find(first + 1, end, '\n');
        if (second == end) return PickleError("truncated GLOBAL");
        auto global = arena.Make(PickleValue::Kind::kGlobal);
        global->text =
            absl::StrCat(std::string(data + pos, first), ".", std::string(first + 1, second));
        pos = static_cast<size_t>(second + 1 - data);
        stack.push_back(std::move(global));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        if (stack.size() < 2) return PickleError("STACK_GLOBAL on a short stack");
        PicklePtr name = pop();
        PicklePtr module = pop();
        if (name->kind != PickleValue::Kind::kString ||
            module->kind != PickleValue::Kind::kString) {
          return PickleError("STACK_GLOBAL without strings");
        }
        auto global = arena.Make(PickleValue::Kind::kGlobal);
        global->text = absl::StrCat(module->text, ".", name->text);
        stack.push_back(std::move(global));
        break;
      }
      case 'q':  // BINPUT
        if (!need(1)) return PickleError("truncated BINPUT");
        status = put(static_cast<size_t>(read_le(1)));
        break;
      case 'r':  // LONG_BINPUT
        if (!need(4)) return PickleError("truncated LONG_BINPUT");
        status = put(static_cast<size_t>(read_le(4)));
        break;
      case 0x94:  // MEMOIZE
        status = put(memo.size());
        break;
      case 'h':  // BINGET
        if (!need(1)) return PickleError("truncated BINGET");
        status = get(static_cast<size_t>(read_le(1)));
        break;
      case 'j':  // LONG_BINGET
        if (!need(4)) return PickleError("truncated LONG_BINGET");
        status = get(static_cast<size_t>(read_le(4)));
        break;
      case 'R': {  // REDUCE
        if (stack.size() < 2) return PickleError("REDUCE on a short stack");
        PicklePtr args = pop();
        PicklePtr callable = pop();
        absl::StatusOr<PicklePtr> result = Reduce(callable, args, arena);
        if (!result.ok()) return result.status();
        stack.push_back(*std::move(result));
        break;
      }
      case 'b': {  // BUILD: an OrderedDict's attributes (state_dict._metadata): not needed.
        if (stack.size() < 2) return PickleError("BUILD on a short stack");
        pop();
        if (stack.back()->kind != PickleValue::Kind::kDict) {
          return PickleError("BUILD on a non-dict");
        }
        break;
      }
      case 'Q': {  // BINPERSID: ('storage', storage class, key, location, numel)
        if (stack.empty()) return PickleError("BINPERSID on an empty stack");
        PicklePtr id = pop();
        const std::vector<PicklePtr>& f = id->items;
        if (id->kind != PickleValue::Kind::kTuple || f.size() != 5 ||
            f[0]->kind != PickleValue::Kind::kString || f[0]->text != "storage" ||
            f[1]->kind != PickleValue::Kind::kGlobal || f[2]->kind != PickleValue::Kind::kString ||
            f[4]->kind != PickleValue::Kind::kInt || f[4]->integer < 0) {
          return PickleError("malformed storage reference");
        }
        auto storage = arena.Make(PickleValue::Kind::kStorage);
        if (!StorageDtype(f[1]->text, &storage->dtype)) {
          return PickleError(absl::StrCat("unsupported storage type ", f[1]->text));
        }
        storage->text = f[2]->text;
        storage->integer = f[4]->integer;
        stack.push_back(std::move(storage));
        break;
      }
      default:
        return PickleError(
            absl::StrCat("unsupported opcode 0x", absl::Hex(opcode), " at byte ", pos - 1));
    }
    if (!status.ok()) return status;
  }
}

// Reads a torch.save zip file of a dict of tensors (Python's torch.save(model.state_dict())
// or torch::pickle_save of a c10::Dict). Tensors come back on the CPU, contiguous, owning their
// memory.
absl::StatusOr<std::map<std::string, at::Tensor>> ReadStateDictOrThrow(const std::string& bytes) {
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

absl::StatusOr<std::map<std::string, at::Tensor>> ReadStateDict(const std::string& bytes) {
  try {
    return ReadStateDictOrThrow(bytes);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a PyTorch state dict file (the zip format of torch.save): ",
                     e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory reading a state dict file");
  }
}

}  // namespace

absl::Status StatusFromException(const std::exception& e, const std::string& what) {
  if (const auto* error = dynamic_cast<const c10::Error*>(&e)) {
    return absl::InternalError(absl::StrCat(what, ": ", error->what_without_backtrace()));
  }
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory"));
  }
  return absl::InternalError(absl::StrCat(what, ": ", e.what()));
}

CnnImpl::CnnImpl(const Architecture& architecture) {
  int64_t channels = architecture.input_channels;
  int64_t side = architecture.image_size;
  for (size_t i = 0; i < architecture.conv_channels.size(); ++i) {
    const int64_t out = architecture.conv_channels[i];
    convs_.push_back(register_module(
        absl::StrCat("conv", i + 1),
        torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, out, architecture.kernel_size)
                              .padding(architecture.kernel_size / 2))));
    channels = out;
    side /= 2;  // Odd kernels with padding k/2 keep the side; the max-pool halves it.
  }
  const int64_t features = channels * side * side;
  const int64_t classes = architecture.num_classes;
  if (architecture.hidden_units > 0) {
    fc1_ = register_module("fc1", torch::nn::Linear(features, int64_t{architecture.hidden_units}));
    fc2_ = register_module("fc2", torch::nn::Linear(int64_t{architecture.hidden_units}, classes));
  } else {
    fc1_ = register_module("fc1", torch::nn::Linear(features, classes));
  }
  dropout_ = architecture.dropout;
}

torch::Tensor CnnImpl::forward(torch::Tensor x, at::Generator* dropout_generator) {
  for (torch::nn::Conv2d& conv : convs_) {
    // On the CPU: the first layer (one input channel) by hand (single_channel_conv.h), and
    // max_pool2d(relu(.), 2) fused (relu_pool.h); see those headers for why.
    const int64_t padding = conv->weight.size(2) / 2;  // As the constructor sets it.
    x = ReluMaxPool2x2(SingleChannelConvApplies(x, conv->weight, padding)
                           ? SingleChannelConv(x, conv->weight, conv->bias, padding)
                           : conv->forward(x));
  }
  x = x.reshape({x.size(0), -1});
  torch::nn::Linear& classifier = fc2_ ? fc2_ : fc1_;
  // RowwiseLinear: the same bits for an image whatever its batch (rowwise_linear.h); it
  // steps aside while training.
  if (fc2_) x = torch::relu(RowwiseLinear(x, fc1_->weight, fc1_->bias));
  if (is_training() && dropout_ > 0) {
    TORCH_CHECK(dropout_generator != nullptr, "dropout needs the trainer's generator");
    // Inverted dropout, as torch.nn.Dropout: keep with 1 - p, scale the kept by 1 / (1 - p). The
    // mask comes from the run's own generator, so that a seed and a resumed run reproduce it.
    const torch::Tensor keep =
        torch::empty(x.sizes(), torch::kFloat).bernoulli_(1.0 - dropout_, *dropout_generator);
    x = x * keep.to(x.device()).div_(1.0 - dropout_);
  }
  return RowwiseLinear(x, classifier->weight, classifier->bias);
}

std::vector<torch::Tensor> CnnImpl::ConvolutionParameters() {
  std::vector<torch::Tensor> parameters;
  for (torch::nn::Conv2d& conv : convs_) {
    parameters.push_back(conv->weight);
    parameters.push_back(conv->bias);
  }
  return parameters;
}

void CnnImpl::Initialize(at::Generator& generator) {
  torch::NoGradGuard no_grad;
  auto init = [&generator](torch::Tensor& weight, torch::Tensor& bias) {
    // fan_in = in_channels * kernel area for a convolution, in_features for a linear layer.
    const int64_t fan_in = weight.numel() / weight.size(0);
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    weight.uniform_(-bound, bound, generator);
    bias.uniform_(-bound, bound, generator);
  };
  for (torch::nn::Conv2d& conv : convs_) init(conv->weight, conv->bias);
  init(fc1_->weight, fc1_->bias);
  if (fc2_) init(fc2_->weight, fc2_->bias);
}

void CnnImpl::PlaceOn(const torch::Device& device) {
  to(device);
  if (!device.is_cpu()) return;
  torch::NoGradGuard no_grad;
  for (torch::nn::Conv2d& conv : convs_) {
    // Not contiguous(ChannelsLast): for one input channel that keeps the NCHW strides (both
    // layouts are "contiguous"), and oneDNN then picks NCHW for the whole layer.
    torch::Tensor weight =
        torch::empty_like(conv->weight, conv->weight.options(), at::MemoryFormat::ChannelsLast);
    weight.copy_(conv->weight);
    conv->weight.set_data(weight);
  }
}

absl::Status ValidateArchitecture(const Architecture& a) {
  if (a.input_channels < 1 || a.input_channels > kMaxInputChannels) {
    return OutOfRange("architecture.input_channels", a.input_channels, 1, kMaxInputChannels);
  }
  if (a.image_size < 1 || a.image_size > kMaxImageSize) {
    return OutOfRange("architecture.image_size", a.image_size, 1, kMaxImageSize);
  }
  if (a.num_classes < kMinClasses || a.num_classes > kMaxClasses) {
    return OutOfRange("architecture.num_classes", a.num_classes, kMinClasses, kMaxClasses);
  }
  if (a.conv_channels.size() > kMaxConvLayers) {
    return absl::InvalidArgumentError(absl::StrCat("architecture.conv_channels has ",
                                                   a.conv_channels.size(), " layers; at most ",
                                                   kMaxConvLayers));
  }
  if (a.kernel_size < 1 || a.kernel_size > kMaxKernelSize || a.kernel_size % 2 == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("architecture.kernel_size must be odd and between 1 and ", kMaxKernelSize,
                     ", got ", a.kernel_size));
  }
  int64_t side = a.image_size;
  for (size_t i = 0; i < a.conv_channels.size(); ++i) {
    const int channels = a.conv_channels[i];
    if (channels < 1 || channels > kMaxConvChannels) {
      return OutOfRange(absl::StrCat("architecture.conv_channels[", i, "]"), channels, 1,
                        kMaxConvChannels);
    }
    if (side < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "architecture.conv_channels: ", a.conv_channels.size(),
          " conv layers do not fit architecture.image_size ", a.image_size,
          " (each 2x2 max-pool halves the side; conv", i + 1, " would get a side of ", side, ")"));
    }
    side /= 2;
  }
  const int64_t channels = a.conv_channels.empty() ? a.input_channels : a.conv_channels.back();
  if (channels * side * side > kMaxFcInputs) {
    return absl::InvalidArgumentError(
        absl::StrCat("architecture: fc1 would have ", channels * side * side, " inputs; at most ",
                     kMaxFcInputs, " (use more conv layers or fewer channels)"));
  }
  if (a.hidden_units < 0 || a.hidden_units > kMaxHiddenUnits) {
    return OutOfRange("architecture.hidden_units", a.hidden_units, 0, kMaxHiddenUnits);
  }
  if (!std::isfinite(a.dropout) || a.dropout < 0 || a.dropout > kMaxDropout) {
    return absl::InvalidArgumentError(absl::StrCat("architecture.dropout must be in [0, ",
                                                   kMaxDropout, "] (0 = none), got ", a.dropout));
  }
  return absl::OkStatus();
}

bool SameShape(const Architecture& a, const Architecture& b) {
  return a.input_channels == b.input_channels && a.image_size == b.image_size &&
         a.num_classes == b.num_classes && a.conv_channels == b.conv_channels &&
         a.kernel_size == b.kernel_size && a.hidden_units == b.hidden_units;
}

std::string DescribeArchitecture(const Architecture& a) {
  std::string text =
      absl::StrCat("conv [", absl::StrJoin(a.conv_channels, ", "), "] kernel ", a.kernel_size);
  if (a.hidden_units > 0) absl::StrAppend(&text, ", hidden ", a.hidden_units);
  absl::StrAppend(&text, ", ", a.num_classes, " classes");
  if (a.image_size != 28 || a.input_channels != 1) {
    absl::StrAppend(&text, ", ", a.input_channels, "x", a.image_size, "x", a.image_size, " images");
  }
  return text;
}

absl::StatusOr<std::vector<ParameterShape>> StateDictLayout(const Architecture& architecture) {
  if (absl::Status status = ValidateArchitecture(architecture); !status.ok()) return status;
  try {
    // The real module, so that the layout can never drift from what is registered.
    Cnn module(architecture);
    std::vector<ParameterShape> layout;
    for (const auto& item : module->named_parameters()) {
      const c10::IntArrayRef sizes = item.value().sizes();
      layout.push_back({item.key(), std::vector<int64_t>(sizes.begin(), sizes.end())});
    }
    return layout;
  } catch (const std::exception& e) {
    return StatusFromException(e, "building the network");
  }
}

absl::StatusOr<Architecture> InferArchitecture(const std::string& bytes, int image_size,
                                               int input_channels) {
  try {
    absl::StatusOr<std::map<std::string, at::Tensor>> tensors = ReadStateDict(bytes);
    if (!tensors.ok()) return tensors.status();
    auto shape_of = [&tensors](const std::string& key) -> std::optional<c10::IntArrayRef> {
      const auto found = tensors->find(key);
      if (found == tensors->end()) return std::nullopt;
      return found->second.sizes();
    };
    Architecture a;
    a.image_size = image_size;
    a.input_channels = input_channels;
    a.conv_channels.clear();
    for (size_t i = 1; i <= kMaxConvLayers; ++i) {
      const std::string key = absl::StrCat("conv", i, ".weight");
      const std::optional<c10::IntArrayRef> shape = shape_of(key);
      if (!shape.has_value()) break;
      if (shape->size() != 4 || (*shape)[2] != (*shape)[3]) {
        return absl::InvalidArgumentError(absl::StrCat("state dict key \"", key, "\" has shape ",
                                                       ShapeString(*shape),
                                                       "; a conv weight is [out, in, k, k]"));
      }
      a.conv_channels.push_back(static_cast<int>((*shape)[0]));
      a.kernel_size = static_cast<int>((*shape)[2]);
    }
    const std::optional<c10::IntArrayRef> fc1 = shape_of("fc1.weight");
    if (!fc1.has_value() || fc1->size() != 2) {
      return absl::InvalidArgumentError(
          "state dict has no 2-d \"fc1.weight\": not a state dict of this service's CNN");
    }
    const std::optional<c10::IntArrayRef> fc2 = shape_of("fc2.weight");
    if (fc2.has_value()) {
      if (fc2->size() != 2) {
        return absl::InvalidArgumentError(absl::StrCat("state dict key \"fc2.weight\" has shape ",
                                                       ShapeString(*fc2),
                                                       "; a linear weight is [out, in]"));
      }
      a.hidden_units = static_cast<int>((*fc1)[0]);
      a.num_classes = static_cast<int>((*fc2)[0]);
    } else {
      a.num_classes = static_cast<int>((*fc1)[0]);
    }
    // The keys and every shape are then checked by loading against this architecture.
    if (absl::Status status = ValidateArchitecture(a); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the state dict's shapes describe no valid network (", status.message(), ")"));
    }
    return a;
  } catch (const std::exception& e) {
    return StatusFromException(e, "reading the state dict");
  }
}

absl::StatusOr<std::string> ResolveDevice(const std::string& spec) {
  try {
    if (spec == "cpu") return std::string("cpu");
    if (spec == "auto") return std::string(torch::cuda::is_available() ? "cuda:0" : "cpu");
    int64_t index = 0;
    if (spec != "cuda") {
      const std::string prefix = "cuda:";
      const std::string digits = spec.substr(std::min(spec.size(), prefix.size()));
      if (spec.compare(0, prefix.size(), prefix) != 0 || digits.empty() || digits.size() > 3 ||
          !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return absl::InvalidArgumentError(absl::StrCat(
            "device \"", spec, "\" is not one of \"auto\", \"cpu\", \"cuda\", \"cuda:N\""));
      }
      index = std::stoi(digits);
    }
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(
          absl::StrCat("device \"", spec, "\": CUDA is not available on this machine"));
    }
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (index >= count) {
      return absl::FailedPreconditionError(
          absl::StrCat("device \"", spec, "\": this machine has ", count, " CUDA device(s)"));
    }
    return absl::StrCat("cuda:", index);
  } catch (const std::exception& e) {
    return StatusFromException(e, absl::StrCat("resolving device \"", spec, "\""));
  }
}

absl::Status WarmUpDevice(const std::string& device) {
  if (device == "cpu") return absl::OkStatus();
  try {
    const torch::Device on(device);
    const Architecture tutorial;
    Cnn network(tutorial);
    network->to(on);
    const torch::Tensor images =
        torch::zeros({2, tutorial.input_channels, tutorial.image_size, tutorial.image_size},
                     torch::TensorOptions().device(on));
    const torch::Tensor labels = torch::zeros({2}, torch::dtype(torch::kLong).device(on));
    const torch::Tensor loss =
        torch::nn::functional::cross_entropy(network->forward(images), labels);
    loss.backward();
    (void)loss.item<float>();  // Waits for the device.
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return StatusFromException(e, absl::StrCat("starting device ", device));
  }
}

void SetComputeThreads(int threads) {
  if (threads > 0) at::set_num_threads(threads);
}

TrainedModel::TrainedModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TrainedModel::~TrainedModel() = default;

const Architecture& TrainedModel::architecture() const { return impl_->architecture; }
const std::string& TrainedModel::device() const { return impl_->device_name; }

absl::StatusOr<std::unique_ptr<TrainedModel>> TrainedModel::FromStateDictBytes(
    const std::string& bytes, const Architecture& architecture, const std::string& device) {
  if (absl::Status status = ValidateArchitecture(architecture); !status.ok()) return status;
  absl::StatusOr<std::string> device_name = ResolveDevice(device);
  if (!device_name.ok()) return device_name.status();

  try {
    absl::StatusOr<std::map<std::string, at::Tensor>> tensors_or = ReadStateDict(bytes);
    if (!tensors_or.ok()) return tensors_or.status();
    const std::map<std::string, at::Tensor>& tensors = *tensors_or;

    auto impl = std::make_unique<Impl>(
        Impl{architecture, *device_name, torch::Device(*device_name), Cnn(architecture)});
    std::vector<std::string> expected;
    for (const auto& item : impl->module->named_parameters()) expected.push_back(item.key());
    for (const auto& [key, tensor] : tensors) {
      if (std::find(expected.begin(), expected.end(), key) == expected.end()) {
        return absl::InvalidArgumentError(absl::StrCat("state dict has unexpected key \"", key,
                                                       "\"; expected exactly ",
                                                       absl::StrJoin(expected, ", ")));
      }
    }
    torch::NoGradGuard no_grad;
    for (auto& item : impl->module->named_parameters()) {
      const std::string& key = item.key();
      const auto found = tensors.find(key);
      if (found == tensors.end()) {
        return absl::InvalidArgumentError(absl::StrCat("state dict lacks key \"", key,
                                                       "\"; expected exactly ",
                                                       absl::StrJoin(expected, ", ")));
      }
      const at::Tensor& tensor = found->second;
      if (tensor.sizes() != item.value().sizes()) {
        return absl::InvalidArgumentError(
            absl::StrCat("state dict key \"", key, "\" has shape ", ShapeString(tensor.sizes()),
                         "; the architecture needs ", ShapeString(item.value().sizes())));
      }
      if (!tensor.is_floating_point()) {
        return absl::InvalidArgumentError(absl::StrCat("state dict key \"", key, "\" has dtype ",
                                                       c10::toString(tensor.scalar_type()),
                                                       "; expected floating point"));
      }
      const at::Tensor values = tensor.to(torch::kCPU, torch::kFloat);
      if (!torch::isfinite(values).all().item<bool>()) {
        return absl::InvalidArgumentError(
            absl::StrCat("state dict key \"", key, "\" holds NaN or infinite values"));
      }
      item.value().copy_(values);
    }
    impl->module->PlaceOn(impl->device);
    impl->module->eval();
    return std::make_unique<TrainedModel>(std::move(impl));
  } catch (const std::exception& e) {
    return StatusFromException(e, "loading the state dict");
  }
}

namespace {

// torch::pickle_save's file (torch.save's zip format) without its type tags. pickle_save wraps
// every dict in torch.jit._pickle.restore_type_tag, a global that torch.load refuses when
// weights_only=True, its default since PyTorch 2.6. Untagged, the pickle names only what
// Python's own state dicts name (torch._utils._rebuild_tensor_v2, torch.FloatStorage,
// collections.OrderedDict), and the dict comes back as a plain dict.
std::string SaveUntagged(const c10::IValue& value) {
  std::vector<char> pickle;
  torch::jit::Pickler pickler(
      [&pickle](const char* bytes, size_t size) {
        pickle.insert(pickle.end(), bytes, bytes + size);
      },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
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

}  // namespace

absl::StatusOr<std::string> TrainedModel::ToStateDictBytes() const {
  try {
    c10::Dict<std::string, at::Tensor> dict;
    for (const auto& item : impl_->module->named_parameters()) {
      dict.insert(item.key(), item.value().detach().to(torch::kCPU).contiguous().clone());
    }
    return SaveUntagged(c10::IValue(dict));
  } catch (const std::exception& e) {
    return StatusFromException(e, "writing the state dict");
  }
}

absl::StatusOr<std::vector<ParameterValues>> TrainedModel::Parameters() const {
  try {
    std::vector<ParameterValues> parameters;
    for (const auto& item : impl_->module->named_parameters()) {
      // contiguous() undoes the channels-last layout PlaceOn gives the conv weights on the CPU.
      const at::Tensor tensor = item.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
      const float* data = tensor.data_ptr<float>();
      parameters.push_back({item.key(),
                            std::vector<int64_t>(tensor.sizes().begin(), tensor.sizes().end()),
                            std::vector<float>(data, data + tensor.numel())});
    }
    return parameters;
  } catch (const std::exception& e) {
    return StatusFromException(e, "copying the parameters");
  }
}

absl::StatusOr<std::vector<float>> TrainedModel::PredictProbabilities(
    const std::vector<float>& pixels, int64_t count) const {
  const Architecture& a = impl_->architecture;
  const int64_t per_image = int64_t{a.input_channels} * a.image_size * a.image_size;
  if (count < 0 || static_cast<int64_t>(pixels.size()) != count * per_image) {
    return absl::InvalidArgumentError(
        absl::StrCat("PredictProbabilities got ", pixels.size(), " pixels for ", count,
                     " images of ", a.input_channels, "x", a.image_size, "x", a.image_size));
  }
  std::vector<float> probabilities(static_cast<size_t>(count) * a.num_classes);
  try {
    // This thread's count as set at its start (model/compute_threads.h), else the process
    // default. (at::init_num_threads here would reset a thread's own count to the default, and
    // drop LibTorch's cached oneDNN primitives at every call.)
    at::internal::lazy_init_num_threads();
    c10::InferenceMode inference;
    const int64_t chunk = ChunkFor(impl_->device);
    for (int64_t start = 0; start < count; start += chunk) {
      const int64_t n = std::min(chunk, count - start);
      // from_blob does not copy; the forward pass only reads its input.
      torch::Tensor input =
          torch::from_blob(const_cast<float*>(pixels.data()) + start * per_image,
                           {n, a.input_channels, a.image_size, a.image_size}, torch::kFloat)
              .to(impl_->device);
      const torch::Tensor output = torch::softmax(impl_->module.ptr()->forward(input), /*dim=*/1)
                                       .to(torch::kCPU)
                                       .contiguous();
      std::memcpy(probabilities.data() + start * a.num_classes, output.data_ptr<float>(),
                  sizeof(float) * n * a.num_classes);
    }
  } catch (const std::exception& e) {
    return StatusFromException(e, "predicting");
  }
  return probabilities;
}

absl::StatusOr<EvaluationResult> TrainedModel::Evaluate(const Dataset& dataset) const {
  const Architecture& a = impl_->architecture;
  if (absl::Status status = CheckDatasetFits(dataset, a); !status.ok()) return status;
  const int64_t classes = a.num_classes;
  double loss_sum = 0;
  std::vector<std::vector<int64_t>> confusion(classes, std::vector<int64_t>(classes, 0));
  try {
    // This thread's count as set at its start (model/compute_threads.h), else the process
    // default. (at::init_num_threads here would reset a thread's own count to the default, and
    // drop LibTorch's cached oneDNN primitives at every call.)
    at::internal::lazy_init_num_threads();
    c10::InferenceMode inference;
    const torch::Device& device = impl_->device;
    torch::Tensor counts =
        torch::zeros({classes * classes}, torch::dtype(torch::kLong).device(device));
    torch::Tensor losses = torch::zeros({}, torch::dtype(torch::kDouble).device(device));
    const int64_t chunk = ChunkFor(device);
    const int64_t pixels_per_image = dataset.image_size();
    for (int64_t start = 0; start < dataset.size(); start += chunk) {
      const int64_t n = std::min(chunk, dataset.size() - start);
      const torch::Tensor images =
          torch::from_blob(const_cast<uint8_t*>(dataset.pixels.data()) + start * pixels_per_image,
                           {n, 1, a.image_size, a.image_size}, torch::kUInt8)
              .to(device)
              .to(torch::kFloat)
              .div_(kPixelScale);
      const torch::Tensor labels =
          torch::from_blob(const_cast<uint8_t*>(dataset.labels.data()) + start, {n}, torch::kUInt8)
              .to(device)
              .to(torch::kLong);
      const torch::Tensor logits = impl_->module.ptr()->forward(images);
      losses += torch::nn::functional::cross_entropy(
                    logits, labels,
                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .to(torch::kDouble);
      counts += torch::bincount(labels * classes + logits.argmax(/*dim=*/1), /*weights=*/{},
                                /*minlength=*/classes * classes);
    }
    loss_sum = losses.item<double>();
    const torch::Tensor host_counts = counts.to(torch::kCPU).contiguous();
    const int64_t* data = host_counts.data_ptr<int64_t>();
    for (int64_t t = 0; t < classes; ++t) {
      for (int64_t p = 0; p < classes; ++p) confusion[t][p] = data[t * classes + p];
    }
  } catch (const std::exception& e) {
    return StatusFromException(e, "evaluating");
  }
  return MetricsFromConfusion(std::move(confusion), loss_sum);
}

}  // namespace classifier
