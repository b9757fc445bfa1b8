// Feeds a training checkpoint's bytes (model/checkpoint_format.h) to UnframeCheckpoint, which
// LoadState calls on a file it finds on disk. The header, length and digest are checked before
// LibTorch's unpickler sees a byte, so every damaged input must end in a CheckpointError; what
// this asserts is that the checks themselves never crash, leak or over-read.
#include <cstddef>
#include <cstdint>
#include <string>

#include "model/checkpoint_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    (void)classifier::UnframeCheckpoint(bytes);
  } catch (const classifier::CheckpointError&) {
    // Refused, as it should be.
  } catch (const c10::Error&) {
    // The unpickler refused a payload whose digest held (a seed, or a fuzzer's lucky guess).
  }
  return 0;
}
