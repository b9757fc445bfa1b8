// Private to classifier_model (state_dict.cc): a pickle interpreter for the one kind of pickle
// a PyTorch state dict file holds. Includes a LibTorch header, so never include it from a
// public header, server/ or client/.
//
// Why our own: LibTorch's torch::pickle_load cannot read what Python's
// torch.save(model.state_dict()) writes: it turns the collections.OrderedDict into None and
// throws "Expected GenericDict but got None", on 1.13 and 2.6 alike (torch_pickle_load_test
// checks it on the tutorial's own file on each line). So the pickle is read here by a small
// interpreter that knows exactly the opcodes and globals a state dict uses (from Python's
// torch.save, from ToStateDictBytes, and from torch::pickle_save, which earlier versions of
// ToStateDictBytes used) and refuses everything else. The zip container and the tensor storages
// around the pickle are read by state_dict.cc, with LibTorch's PyTorchStreamReader.
//
// The contract:
// - Accepted: pickle protocols 2-5 with the opcodes PROTO, FRAME, STOP, MARK, NONE, NEWTRUE,
//   NEWFALSE, BININT1, BININT2, BININT, LONG1 (up to 8 bytes), BINFLOAT, BINUNICODE,
//   SHORT_BINUNICODE, BINUNICODE8, EMPTY_TUPLE, TUPLE1-3, TUPLE, EMPTY_LIST, LIST, APPEND,
//   APPENDS, EMPTY_DICT, DICT, SETITEM, SETITEMS, GLOBAL, STACK_GLOBAL, BINPUT, LONG_BINPUT,
//   MEMOIZE, BINGET, LONG_BINGET, REDUCE, BUILD (its state is dropped: it only ever carries an
//   OrderedDict's _metadata) and BINPERSID (only torch.save's ('storage', class, key, location,
//   numel) references, with one of the torch.<Type>Storage classes).
// - REDUCE applies only these globals, each interpreted here, never looked up or called:
//   collections.OrderedDict (an empty dict), torch._utils._rebuild_tensor_v2 (a tensor view of
//   a storage), torch._utils._rebuild_parameter (its tensor) and
//   torch.jit._pickle.restore_type_tag (its container).
// - Refused, as INVALID_ARGUMENT "unsupported or corrupt state dict pickle: ...": every other
//   opcode or global, and any malformed or truncated input (a short stack, a GET of an unknown
//   memo entry, a bad storage reference, ...). Whatever the bytes, the result is a value or a
//   status (or std::bad_alloc when memory runs out): never a crash, an unbounded memo, a deep
//   recursion or a leak.
// - It runs no code: globals are names compared against the list above, so a hostile pickle
//   can build nothing but the values of PickleValue.
// - It reads no storage: a tensor names its storage's record key, which the caller resolves.
#ifndef CLASSIFIER_MODEL_PICKLE_READER_H_
#define CLASSIFIER_MODEL_PICKLE_READER_H_

#include <c10/core/ScalarType.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace classifier {

struct PickleValue;
using PicklePtr = std::shared_ptr<PickleValue>;

// One value of an unpickled state dict.
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

// "None", "int", "dict", ...: for messages.
const char* KindName(PickleValue::Kind kind);

// Owns every value of one unpickling. Values link to each other through shared pointers, and
// a hostile pickle can nest them a million deep or make cycles; the arena cuts every link
// before anything is freed, so destruction never recurses and cycles cannot leak.
class PickleArena {
 public:
  PickleArena() = default;
  PickleArena(const PickleArena&) = delete;
  PickleArena& operator=(const PickleArena&) = delete;
  ~PickleArena();

  PicklePtr Make(PickleValue::Kind kind);

 private:
  std::vector<PicklePtr> values_;
};

// Interprets the `size` bytes at `data` (a whole pickle, up to its STOP) and returns its root
// value, which `arena` owns: its links are cut when the arena goes. The values of a tensor are
// not checked against anything (its storage may be missing, its view may not fit): the caller
// checks them with the storages in hand. INVALID_ARGUMENT for anything refused (see above).
absl::StatusOr<PicklePtr> Unpickle(const char* data, size_t size, PickleArena& arena);

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_PICKLE_READER_H_
