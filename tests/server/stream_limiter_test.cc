// StreamLimiter alone: places per client, given back when a slot goes, counted per host or per
// token, and a refusal that names the client, the limit and the flag.
#include "server/stream_limiter.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace classifier {
namespace {

using ::testing::HasSubstr;

TEST(StreamLimiterTest, EachClientGetsItsOwnPlacesGivenBackWhenASlotGoes) {
  StreamLimiter limiter(2);
  std::vector<StreamLimiter::Slot> slots;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<StreamLimiter::Slot> slot = limiter.Acquire("10.0.0.1");
    ASSERT_TRUE(slot.ok()) << slot.status();
    slots.push_back(*std::move(slot));
  }
  EXPECT_EQ(limiter.open("10.0.0.1"), 2);
  absl::StatusOr<StreamLimiter::Slot> third = limiter.Acquire("10.0.0.1");
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("client 10.0.0.1"));
  EXPECT_THAT(third.status().message(), HasSubstr("--max_streams_per_client=2"));
  // Another client is not affected.
  EXPECT_TRUE(limiter.Acquire("10.0.0.2").ok());

  slots.pop_back();  // A stream ends.
  EXPECT_EQ(limiter.open("10.0.0.1"), 1);
  absl::StatusOr<StreamLimiter::Slot> again = limiter.Acquire("10.0.0.1");
  EXPECT_TRUE(again.ok()) << again.status();
  // A moved slot is given back once, by its new owner.
  StreamLimiter::Slot moved = *std::move(again);
  EXPECT_EQ(limiter.open("10.0.0.1"), 2);
  std::optional<StreamLimiter::Slot> new_owner(std::move(moved));
  new_owner.reset();
  EXPECT_EQ(limiter.open("10.0.0.1"), 1);
}

TEST(StreamLimiterTest, ZeroMeansNoLimit) {
  StreamLimiter limiter(0);
  std::vector<StreamLimiter::Slot> slots;
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<StreamLimiter::Slot> slot = limiter.Acquire("host");
    ASSERT_TRUE(slot.ok()) << i;
    slots.push_back(*std::move(slot));
  }
  EXPECT_EQ(limiter.open("host"), 100);
}

TEST(StreamLimiterTest, ACallerIsItsHostOrTheToken) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ipv4:127.0.0.1:5000", "127.0.0.1"},
      {"ipv4:10.1.2.3:1", "10.1.2.3"},
      {"ipv6:[::1]:5000", "[::1]"},
      {"unix:/run/classifier.sock", "unix:/run/classifier.sock"},
  };
  for (const auto& [peer, client] : cases) {
    EXPECT_EQ(StreamLimiter::ClientOf(peer, /*valid_token=*/false), client) << peer;
  }
  // Every holder of the one token counts as one client, whatever its address.
  EXPECT_EQ(StreamLimiter::ClientOf("ipv4:10.0.0.1:1", true),
            StreamLimiter::ClientOf("ipv4:10.0.0.2:2", true));
  StreamLimiter limiter(1);
  absl::StatusOr<StreamLimiter::Slot> held =
      limiter.Acquire(StreamLimiter::ClientOf("ipv4:10.0.0.1:1", true));
  ASSERT_TRUE(held.ok());
  absl::StatusOr<StreamLimiter::Slot> refused =
      limiter.Acquire(StreamLimiter::ClientOf("ipv4:10.0.0.2:2", true));
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("bearer token"));
}

}  // namespace
}  // namespace classifier
