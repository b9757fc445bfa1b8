#include "server/auth.h"

#include <openssl/crypto.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"

namespace classifier {

absl::StatusOr<TokenAuthenticator> TokenAuthenticator::FromFile(const std::string& path,
                                                                bool allow_read_only) {
  absl::StatusOr<std::string> contents = ReadWholeFile(path);
  if (!contents.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read the auth token file ", path, ": ", contents.status().message()));
  }
  TokenAuthenticator auth;
  auth.token_ = std::string(absl::StripAsciiWhitespace(*contents));
  if (auth.token_.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("the auth token file ", path, " is empty"));
  }
  auth.allow_read_only_ = allow_read_only;
  return auth;
}

absl::Status TokenAuthenticator::Check(
    const std::multimap<::grpc::string_ref, ::grpc::string_ref>& metadata, bool read_only) const {
  if (!enabled() || (read_only && allow_read_only_)) return absl::OkStatus();
  auto it = metadata.find(kAuthorizationHeader);
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "missing 'authorization: Bearer <token>' metadata (the server requires a token)");
  }
  const ::grpc::string_ref value = it->second;
  const size_t prefix = sizeof(kBearerPrefix) - 1;
  const bool matches = value.size() == prefix + token_.size() &&
                       CRYPTO_memcmp(value.data(), kBearerPrefix, prefix) == 0 &&
                       CRYPTO_memcmp(value.data() + prefix, token_.data(), token_.size()) == 0;
  if (!matches) return absl::UnauthenticatedError("invalid bearer token");
  return absl::OkStatus();
}

}  // namespace classifier
