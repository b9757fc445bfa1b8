#include "model/batch_draws.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <mutex>

namespace classifier {
namespace {

// SplitMix64's finaliser: neighbouring (epoch, batch) pairs get unrelated seeds.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Mixed into the run's seed, so that the batches' streams are not the run generator's.
constexpr uint64_t kBatchDrawsSalt = 0x6261746368647277ULL;  // "batchdrw"

}  // namespace

namespace {

// A generator of the device's kind (Philox on CUDA), this run's own, so no other thread's draws
// move it. On the CPU a new one: LibTorch 1.13's Generator::clone() leaks the clone (its
// GeneratorImpl::clone takes one reference too many; LeakSanitizer shows 2,632 bytes per run).
// A device generator can only be had as a clone of the device's default.
at::Generator DeviceGenerator(torch::Device device) {
  if (device.is_cpu()) return at::detail::createCPUGenerator(/*seed_in=*/0);
  return at::globalContext().defaultGenerator(device).clone();
}

}  // namespace

BatchDraws::BatchDraws(torch::Device device, uint64_t seed)
    : seed_(Mix(seed ^ kBatchDrawsSalt)), generator_(DeviceGenerator(device)) {}

at::Generator& BatchDraws::ForBatch(int epoch, int64_t batch) {
  const uint64_t position = (static_cast<uint64_t>(epoch) << 40) ^ static_cast<uint64_t>(batch);
  std::lock_guard<std::mutex> lock(generator_.mutex());
  generator_.set_current_seed(Mix(seed_ ^ Mix(position)));
  return generator_;
}

}  // namespace classifier
