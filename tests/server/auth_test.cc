// TokenAuthenticator alone: the token file's refusals, and every way a call's metadata is let
// through or refused (without echoing what the client sent).
#include "server/auth.h"

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Metadata = std::multimap<::grpc::string_ref, ::grpc::string_ref>;

TEST(TokenAuthenticatorTest, TheTokenFileMustBeReadableAndNotEmpty) {
  testing::TempDir dir;
  absl::StatusOr<TokenAuthenticator> missing =
      TokenAuthenticator::FromFile(dir.path() + "/none", false);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), HasSubstr(dir.path() + "/none"));

  testing::WriteFile(dir.path() + "/blank", " \n\t\n");
  absl::StatusOr<TokenAuthenticator> blank =
      TokenAuthenticator::FromFile(dir.path() + "/blank", false);
  ASSERT_FALSE(blank.ok());
  EXPECT_THAT(blank.status().message(), HasSubstr("is empty"));
}

TEST(TokenAuthenticatorTest, OnlyTheExactBearerTokenPasses) {
  testing::TempDir dir;
  testing::WriteFile(dir.path() + "/token", "  s3cret-token\n");  // Whitespace is trimmed.
  absl::StatusOr<TokenAuthenticator> auth =
      TokenAuthenticator::FromFile(dir.path() + "/token", /*allow_read_only=*/false);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE(auth->enabled());

  struct Case {
    const char* what;
    std::vector<std::pair<std::string, std::string>> metadata;
    bool read_only;
    bool passes;
  };
  const std::vector<Case> cases = {
      {"the token", {{"authorization", "Bearer s3cret-token"}}, false, true},
      {"the token, read-only call", {{"authorization", "Bearer s3cret-token"}}, true, true},
      {"no metadata", {}, false, false},
      {"no metadata, read-only call (not allowed)", {}, true, false},
      {"another token", {{"authorization", "Bearer s3cret-tokem"}}, false, false},
      {"a prefix of it", {{"authorization", "Bearer s3cret"}}, false, false},
      {"more than it", {{"authorization", "Bearer s3cret-token2"}}, false, false},
      {"another scheme", {{"authorization", "Basic s3cret-token"}}, false, false},
      {"the bare token", {{"authorization", "s3cret-token"}}, false, false},
      {"another header", {{"x-token", "Bearer s3cret-token"}}, false, false},
  };
  for (const Case& c : cases) {
    Metadata metadata;
    for (const auto& [key, value] : c.metadata) metadata.emplace(key, value);
    const absl::Status status = auth->Check(metadata, c.read_only);
    EXPECT_EQ(status.ok(), c.passes) << c.what << ": " << status;
    if (!status.ok()) {
      EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << c.what;
      EXPECT_THAT(status.message(), Not(HasSubstr("s3cret"))) << c.what;
    }
  }
}

TEST(TokenAuthenticatorTest, ReadOnlyCallsMayBeOpenAndNoFileMeansNoAuth) {
  testing::TempDir dir;
  testing::WriteFile(dir.path() + "/token", "t");
  absl::StatusOr<TokenAuthenticator> auth =
      TokenAuthenticator::FromFile(dir.path() + "/token", /*allow_read_only=*/true);
  ASSERT_TRUE(auth.ok());
  EXPECT_TRUE(auth->Check(Metadata(), /*read_only=*/true).ok());
  EXPECT_FALSE(auth->Check(Metadata(), /*read_only=*/false).ok());

  const TokenAuthenticator off;
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.Check(Metadata(), /*read_only=*/false).ok());
}

}  // namespace
}  // namespace classifier
