// Caps the streaming calls (Train, WatchJob, ExportWeights) one client holds open at once.
//
// A stream pins a reactor, a job subscription and, for exports, a whole weight file in memory
// for as long as the client keeps it open, so one misbehaving client (a watch loop that never
// closes, a script that retries without backing off) could otherwise exhaust the server for
// everyone. HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS (--max_concurrent_streams) bounds one
// connection, but a client opens as many connections as it likes; this bounds the client.
#ifndef CLASSIFIER_SERVER_STREAM_LIMITER_H_
#define CLASSIFIER_SERVER_STREAM_LIMITER_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/mutex.h"

namespace classifier {

class StreamLimiter {
 public:
  // One open stream; gives its place back when destroyed. Move-only. The limiter must outlive
  // it (the service owns the limiter; gRPC destroys every reactor before the service).
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot();

   private:
    friend class StreamLimiter;
    Slot(StreamLimiter* limiter, std::string client);
    void Release();

    StreamLimiter* limiter_ = nullptr;
    std::string client_;
  };

  // At most `max_per_client` streams per client at once; 0 or less is no limit.
  explicit StreamLimiter(int max_per_client);
  StreamLimiter(const StreamLimiter&) = delete;
  StreamLimiter& operator=(const StreamLimiter&) = delete;

  // A place for one more stream of `client` (see ClientOf), or RESOURCE_EXHAUSTED naming the
  // client, the limit and the flag that raises it. Thread-safe.
  absl::StatusOr<Slot> Acquire(const std::string& client);

  // Streams `client` holds open now. Thread-safe.
  int open(const std::string& client) const;

  // The client a call counts against: "bearer token" when the call carried the valid token
  // (there is one token, so every holder counts as one client: the operator hands it out, and
  // callers behind one proxy would otherwise share an address anyway), else the peer's host
  // without its port, so that every connection from one host counts together. `peer` is gRPC's
  // form ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "unix:/path").
  static std::string ClientOf(absl::string_view peer, bool valid_token);

 private:
  void Release(const std::string& client);

  const int max_per_client_;
  mutable Mutex mu_;
  // Clients with at least one stream open.
  std::map<std::string, int> open_ ABSL_GUARDED_BY(mu_);
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_STREAM_LIMITER_H_
