// Bearer-token authentication of the classifier RPCs (--auth_token_file).
//
// gRPC 1.51 offers two hooks, neither of which fits: an AuthMetadataProcessor runs only on
// secure (TLS) ports, and a server interceptor cannot fail a call with a status of its own.
// So each handler of ClassifierService asks this one object first. grpc.health.v1.Health and
// server reflection are other services and stay open, so probes and `grpcurl list` work.
#ifndef CLASSIFIER_SERVER_AUTH_H_
#define CLASSIFIER_SERVER_AUTH_H_

#include <grpcpp/support/string_ref.h>

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace classifier {

// The metadata key and scheme a client sends: `authorization: Bearer <token>`.
inline constexpr char kAuthorizationHeader[] = "authorization";
inline constexpr char kBearerPrefix[] = "Bearer ";

class TokenAuthenticator {
 public:
  // Auth off: every call is let through.
  TokenAuthenticator() = default;
  // Reads the token from `path` (surrounding whitespace trimmed). An unreadable or empty file is
  // FAILED_PRECONDITION (the message names the path, never the contents).
  static absl::StatusOr<TokenAuthenticator> FromFile(const std::string& path, bool allow_read_only);

  bool enabled() const { return !token_.empty(); }
  bool allow_read_only() const { return allow_read_only_; }

  // OK when auth is off, when `read_only` and read-only calls are open, or when the metadata
  // holds `authorization: Bearer <token>` (compared in constant time). Else UNAUTHENTICATED;
  // the message never contains what the client sent. Thread-safe (const).
  absl::Status Check(const std::multimap<::grpc::string_ref, ::grpc::string_ref>& metadata,
                     bool read_only) const;

 private:
  std::string token_;
  bool allow_read_only_ = false;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_AUTH_H_
