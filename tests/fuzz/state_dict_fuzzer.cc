// Feeds a state-dict file (the pickle in a torch.save zip, or ToStateDictBytes' own) to
// InferArchitecture and TrainedModel::FromStateDictBytes (model/network.h): the bytes of an
// imported model. Refusals are fine; a crash, leak or hang is not. A file whose architecture
// is inferred is loaded with it (reaching the value checks, which InferArchitecture skips: it
// may still be refused, for a NaN say), and with the default architecture as well.
#include <cstddef>
#include <cstdint>
#include <string>

#include "model/network.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<classifier::Architecture> inferred = classifier::InferArchitecture(bytes);
  if (inferred.ok()) {
    (void)classifier::TrainedModel::FromStateDictBytes(bytes, *inferred, "cpu");
  }
  (void)classifier::TrainedModel::FromStateDictBytes(bytes, classifier::Architecture(), "cpu");
  return 0;
}
