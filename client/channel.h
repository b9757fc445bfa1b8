// The channel to the server: plaintext or TLS (optionally with a client certificate for mutual
// TLS), and the bearer token added to every call when one is configured.
#ifndef CLASSIFIER_CLIENT_CHANNEL_H_
#define CLASSIFIER_CLIENT_CHANNEL_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/args.h"

namespace classifier::cli {

// Environment variable holding the bearer token itself (--token_file wins over it).
inline constexpr char kTokenEnvironmentVariable[] = "CLASSIFIER_TOKEN";

struct ChannelOptions {
  std::string server;
  bool tls = false;
  std::string tls_ca_pem;    // Empty = the system's CA roots.
  std::string tls_cert_pem;  // Client certificate chain (mutual TLS); with tls_key_pem.
  std::string tls_key_pem;
  std::string tls_server_name;  // Overrides the name checked against the certificate.
  std::string token;            // Empty = no authorization header.
};

// Reads the files named by the global flags --tls_ca, --tls_cert, --tls_key and --token_file.
// TLS is on when --tls or any --tls_* flag is given. `token_from_environment` is the value of
// CLASSIFIER_TOKEN (empty when unset). A missing file or a half-given certificate pair is
// INVALID_ARGUMENT (the message names the file, never its contents).
absl::StatusOr<ChannelOptions> ChannelOptionsFrom(const Invocation& invocation,
                                                  absl::string_view token_from_environment);

// The gRPC service config every channel of the CLI uses: the idempotent RPCs (reads, Predict,
// Evaluate, exports, CancelJob, DeployModel, WatchJob, health checks) are tried again on
// UNAVAILABLE, up to 5 attempts with backoff from 50 ms, so a replica that dies or drains behind a
// load balancer costs its callers nothing; Train, ImportWeights, DeleteModel and RegisterDataset
// are not (a second attempt would make a second job or model, or answer differently). The README
// shows it for other clients.
const char* RetryingServiceConfig();

std::shared_ptr<grpc::Channel> MakeChannel(const ChannelOptions& options);

}  // namespace classifier::cli

#endif  // CLASSIFIER_CLIENT_CHANNEL_H_
