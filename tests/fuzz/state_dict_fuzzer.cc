// Feeds a state-dict file (the pickle in a torch.save zip, or ToStateDictBytes' own) to
// InferArchitecture and TrainedModel::FromStateDictBytes (model/network.h): the bytes of an
// imported model. Refusals are fine; a crash, leak or hang is not. A file whose architecture
// is inferred loads with it, and the default architecture is tried as well.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "model/network.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<classifier::Architecture> inferred = classifier::InferArchitecture(bytes);
  if (inferred.ok()) {
    // InferArchitecture read every key and shape: the same bytes must load with them.
    if (!classifier::TrainedModel::FromStateDictBytes(bytes, *inferred, "cpu").ok()) std::abort();
  }
  (void)classifier::TrainedModel::FromStateDictBytes(bytes, classifier::Architecture(), "cpu");
  return 0;
}
