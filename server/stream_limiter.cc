#include "server/stream_limiter.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace classifier {

constexpr char kTokenClient[] = "bearer token";

StreamLimiter::Slot::Slot(StreamLimiter* limiter, std::string client)
    : limiter_(limiter), client_(std::move(client)) {}

StreamLimiter::Slot::Slot(Slot&& other) noexcept
    : limiter_(std::exchange(other.limiter_, nullptr)), client_(std::move(other.client_)) {}

StreamLimiter::Slot& StreamLimiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    limiter_ = std::exchange(other.limiter_, nullptr);
    client_ = std::move(other.client_);
  }
  return *this;
}

StreamLimiter::Slot::~Slot() { Release(); }

void StreamLimiter::Slot::Release() {
  if (limiter_ != nullptr) std::exchange(limiter_, nullptr)->Release(client_);
}

StreamLimiter::StreamLimiter(int max_per_client) : max_per_client_(max_per_client) {}

absl::StatusOr<StreamLimiter::Slot> StreamLimiter::Acquire(const std::string& client) {
  MutexLock lock(&mu_);
  int& open = open_[client];
  if (max_per_client_ > 0 && open >= max_per_client_) {
    const std::string who = client == kTokenClient ? "the callers holding the bearer token"
                                                   : absl::StrCat("client ", client);
    return absl::ResourceExhaustedError(
        absl::StrCat("too many streaming calls (Train, WatchJob, ExportWeights) from ", who, ": ",
                     open, " open, the server's --max_streams_per_client=", max_per_client_,
                     "; close one or raise the limit"));
  }
  ++open;
  return Slot(this, client);
}

int StreamLimiter::open(const std::string& client) const {
  MutexLock lock(&mu_);
  auto it = open_.find(client);
  return it == open_.end() ? 0 : it->second;
}

void StreamLimiter::Release(const std::string& client) {
  MutexLock lock(&mu_);
  auto it = open_.find(client);
  if (it == open_.end()) return;
  if (--it->second <= 0) open_.erase(it);
}

std::string StreamLimiter::ClientOf(absl::string_view peer, bool valid_token) {
  if (valid_token) return kTokenClient;
  // "ipv4:1.2.3.4:5", "ipv6:[::1]:5": drop the scheme and the port. Anything else (unix
  // sockets) is one client per path.
  for (absl::string_view scheme : {"ipv4:", "ipv6:"}) {
    if (!absl::ConsumePrefix(&peer, scheme)) continue;
    const size_t colon = peer.rfind(':');
    if (colon != absl::string_view::npos) peer = peer.substr(0, colon);
    break;
  }
  return std::string(peer);
}

}  // namespace classifier
