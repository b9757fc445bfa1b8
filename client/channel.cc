#include "client/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace classifier::cli {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  if (!in || !(contents << in.rdbuf())) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the ", what, " ", path));
  }
  return contents.str();
}

// Adds `authorization: Bearer <token>` to the initial metadata of every call. An interceptor
// rather than call credentials: those are sent only over TLS, and a token is also useful on a
// plaintext loopback port.
class BearerTokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(std::string header) : header_(std::move(header)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", header_});
    }
    methods->Proceed();
  }

 private:
  const std::string header_;
};

class BearerTokenInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(const std::string& token)
      : header_(absl::StrCat("Bearer ", token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerTokenInterceptor(header_);  // gRPC owns interceptors.
  }

 private:
  const std::string header_;
};

}  // namespace

absl::StatusOr<ChannelOptions> ChannelOptionsFrom(const Invocation& invocation,
                                                  absl::string_view token_from_environment) {
  ChannelOptions options;
  options.server = invocation.server;
  options.tls = invocation.Bool("tls");
  const std::string ca = invocation.String("tls_ca");
  const std::string cert = invocation.String("tls_cert");
  const std::string key = invocation.String("tls_key");
  options.tls_server_name = invocation.String("tls_server_name");
  if (!ca.empty() || !cert.empty() || !key.empty() || !options.tls_server_name.empty()) {
    options.tls = true;
  }
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together: give both");
  }
  if (!ca.empty()) {
    absl::StatusOr<std::string> pem = ReadFile(ca, "CA file");
    if (!pem.ok()) return pem.status();
    options.tls_ca_pem = *std::move(pem);
  }
  if (!cert.empty()) {
    absl::StatusOr<std::string> cert_pem = ReadFile(cert, "certificate file");
    if (!cert_pem.ok()) return cert_pem.status();
    absl::StatusOr<std::string> key_pem = ReadFile(key, "private key file");
    if (!key_pem.ok()) return key_pem.status();
    options.tls_cert_pem = *std::move(cert_pem);
    options.tls_key_pem = *std::move(key_pem);
  }
  if (invocation.Has("token_file")) {
    absl::StatusOr<std::string> token = ReadFile(invocation.String("token_file"), "token file");
    if (!token.ok()) return token.status();
    options.token = std::string(absl::StripAsciiWhitespace(*token));
    if (options.token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the token file ", invocation.String("token_file"), " is empty"));
    }
  } else {
    options.token = std::string(absl::StripAsciiWhitespace(token_from_environment));
  }
  return options;
}

const char* RetryingServiceConfig() {
  return R"json({
  "methodConfig": [{
    "name": [
      {"service": "classifier.v1.Classifier", "method": "WatchJob"},
      {"service": "classifier.v1.Classifier", "method": "GetJob"},
      {"service": "classifier.v1.Classifier", "method": "ListJobs"},
      {"service": "classifier.v1.Classifier", "method": "CancelJob"},
      {"service": "classifier.v1.Classifier", "method": "Evaluate"},
      {"service": "classifier.v1.Classifier", "method": "Predict"},
      {"service": "classifier.v1.Classifier", "method": "ExportWeights"},
      {"service": "classifier.v1.Classifier", "method": "ListModels"},
      {"service": "classifier.v1.Classifier", "method": "DeployModel"},
      {"service": "classifier.v1.Classifier", "method": "ListDatasets"},
      {"service": "classifier.v1.Classifier", "method": "GetDatasetSamples"},
      {"service": "grpc.health.v1.Health", "method": "Check"}
    ],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.05s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
})json";
}

std::shared_ptr<grpc::Channel> MakeChannel(const ChannelOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_ca_pem;
    ssl.pem_cert_chain = options.tls_cert_pem;
    ssl.pem_private_key = options.tls_key_pem;
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments arguments;
  arguments.SetServiceConfigJSON(RetryingServiceConfig());
  if (!options.tls_server_name.empty()) {
    arguments.SetSslTargetNameOverride(options.tls_server_name);
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  if (!options.token.empty()) {
    factories.push_back(std::make_unique<BearerTokenInterceptorFactory>(options.token));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(options.server, credentials,
                                                                 arguments, std::move(factories));
}

}  // namespace classifier::cli
