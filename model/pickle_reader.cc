#include "model/pickle_reader.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace classifier {
namespace {

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

}  // namespace

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

PickleArena::~PickleArena() {
  for (const PicklePtr& value : values_) {
    value->items.clear();
    value->entries.clear();
    value->storage.reset();
  }
}

PicklePtr PickleArena::Make(PickleValue::Kind kind) {
  values_.push_back(std::make_shared<PickleValue>());
  values_.back()->kind = kind;
  return values_.back();
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

}  // namespace classifier
