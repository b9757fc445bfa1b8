// Page tokens and page slicing alone (server/pagination.h): what a token carries, every way a
// token is refused, and paging that neither repeats nor skips items while the list changes.
#include "server/pagination.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"

namespace classifier {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
constexpr char kFilter[] = "dataset=mnist";

void ExpectInvalid(const absl::Status& status, const std::string& mention) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find(mention), std::string::npos)
      << "\"" << status.message() << "\" should mention \"" << mention << "\"";
}

TEST(PageTokenTest, ATokenRoundTripsItsPosition) {
  const PageKey last{1'700'000'000'123'456'789, "model-0123456789ab"};
  const std::string token = EncodePageToken(ListKind::kModels, kFilter, last, kNow);
  // Opaque, and safe in a URL or a shell without quoting.
  EXPECT_EQ(
      token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos)
      << token;
  EXPECT_EQ(token.find("model-"), std::string::npos);
  absl::StatusOr<PageKey> decoded =
      DecodePageToken(token, ListKind::kModels, kFilter, kNow + absl::Hours(1));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, last);
}

TEST(PageTokenTest, NegativeAndExtremeRanksRoundTrip) {
  for (const PageKey& key :
       {PageKey{-1, "a"}, PageKey{0, ""}, PageKey{kRegisteredDatasetRank, "digits04"},
        PageKey{std::numeric_limits<int64_t>::min(), "x"}}) {
    absl::StatusOr<PageKey> decoded = DecodePageToken(
        EncodePageToken(ListKind::kDatasets, "", key, kNow), ListKind::kDatasets, "", kNow);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, key);
  }
}

TEST(PageTokenTest, EveryAlteredByteIsRefusedNamingTheField) {
  const std::string token =
      EncodePageToken(ListKind::kJobs, kFilter, PageKey{42, "job-00000000002a"}, kNow);
  std::string bytes;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(token, &bytes));
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (const char flip : {'\x01', '\x80'}) {
      std::string altered = bytes;
      altered[i] ^= flip;
      SCOPED_TRACE(i);
      ExpectInvalid(
          DecodePageToken(absl::WebSafeBase64Escape(altered), ListKind::kJobs, kFilter, kNow)
              .status(),
          "page_token");
    }
  }
  // Cut short, or with bytes added.
  ExpectInvalid(
      DecodePageToken(token.substr(0, token.size() - 2), ListKind::kJobs, kFilter, kNow).status(),
      "page_token");
  ExpectInvalid(DecodePageToken(token + "AAAA", ListKind::kJobs, kFilter, kNow).status(),
                "page_token");
}

TEST(PageTokenTest, GarbageIsRefusedNamingTheField) {
  for (const std::string& garbage : std::vector<std::string>{
           "x", "not a token!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
           "====", std::string(4096, 'A'), std::string("\0\xff", 2)}) {
    SCOPED_TRACE(garbage.substr(0, 20));
    ExpectInvalid(DecodePageToken(garbage, ListKind::kJobs, kFilter, kNow).status(),
                  "page_token is not a token this server issued");
  }
}

TEST(PageTokenTest, ATokenOfAnotherListIsRefused) {
  const std::string token = EncodePageToken(ListKind::kModels, kFilter, PageKey{1, "m"}, kNow);
  const absl::Status status = DecodePageToken(token, ListKind::kJobs, kFilter, kNow).status();
  ExpectInvalid(status, "page_token was issued by ListModels, not ListJobs");
}

TEST(PageTokenTest, ATokenOfAnotherFilterIsRefused) {
  const std::string token = EncodePageToken(ListKind::kJobs, kFilter, PageKey{1, "j"}, kNow);
  ExpectInvalid(DecodePageToken(token, ListKind::kJobs, "dataset=other", kNow).status(),
                "page_token was issued for a different filter");
  ExpectInvalid(DecodePageToken(token, ListKind::kJobs, "", kNow).status(),
                "page_token was issued for a different filter");
}

TEST(PageTokenTest, ATokenExpiresAfterItsLifetime) {
  const std::string token = EncodePageToken(ListKind::kJobs, kFilter, PageKey{1, "j"}, kNow);
  EXPECT_TRUE(DecodePageToken(token, ListKind::kJobs, kFilter, kNow + kPageTokenLifetime).ok());
  const absl::Status expired =
      DecodePageToken(token, ListKind::kJobs, kFilter, kNow + kPageTokenLifetime + absl::Seconds(1))
          .status();
  ExpectInvalid(expired, "page_token expired");
  ExpectInvalid(expired, "first page");
}

TEST(PageRequestTest, PageSizeZeroIsTheDefaultAndTheRangeIsEnforced) {
  absl::StatusOr<PageRequest> page = ReadPageRequest(ListKind::kJobs, 0, "", kFilter, kNow);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->size, kDefaultPageSize);
  EXPECT_FALSE(page->after.has_value());
  page = ReadPageRequest(ListKind::kJobs, 1, "", kFilter, kNow);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->size, 1);
  page = ReadPageRequest(ListKind::kJobs, kMaxPageSize, "", kFilter, kNow);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->size, kMaxPageSize);
  for (const int32_t bad : {-1, kMaxPageSize + 1, std::numeric_limits<int32_t>::min()}) {
    SCOPED_TRACE(bad);
    const absl::Status status = ReadPageRequest(ListKind::kJobs, bad, "", kFilter, kNow).status();
    ExpectInvalid(status, "page_size");
    ExpectInvalid(status, "between 0 and 1000");
  }
}

TEST(PageRequestTest, ATokenGivesThePositionAfterWhichToStart) {
  const PageKey last{7, "job-7"};
  absl::StatusOr<PageRequest> page = ReadPageRequest(
      ListKind::kJobs, 5, EncodePageToken(ListKind::kJobs, kFilter, last, kNow), kFilter, kNow);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->size, 5);
  ASSERT_TRUE(page->after.has_value());
  EXPECT_EQ(*page->after, last);
  ExpectInvalid(ReadPageRequest(ListKind::kJobs, 5, "garbage", kFilter, kNow).status(),
                "page_token");
}

// Items ranked by a created time; ids unique. The values are the ids.
std::vector<std::pair<PageKey, std::string>> Items(const std::vector<PageKey>& keys) {
  std::vector<std::pair<PageKey, std::string>> items;
  for (const PageKey& key : keys) items.emplace_back(key, key.id);
  return items;
}

// Every page of `keys` (re-read before each page, as a server would), `size` at a time;
// `between_pages` may change the list, knowing what was seen so far.
std::vector<std::string> PageThrough(
    ListKind list, std::vector<PageKey>* keys, int size,
    const std::function<void(int page, const std::vector<std::string>& seen)>& between_pages = {}) {
  std::vector<std::string> seen;
  std::string token;
  for (int page_number = 0;; ++page_number) {
    absl::StatusOr<PageRequest> request = ReadPageRequest(list, size, token, kFilter, kNow);
    EXPECT_TRUE(request.ok()) << request.status();
    if (!request.ok()) break;
    Page<std::string> page = TakePage(list, Items(*keys), *request, kFilter, kNow);
    EXPECT_LE(static_cast<int>(page.items.size()), size);
    seen.insert(seen.end(), page.items.begin(), page.items.end());
    if (page.next_page_token.empty()) break;
    EXPECT_FALSE(page.items.empty());
    token = page.next_page_token;
    if (between_pages) between_pages(page_number, seen);
  }
  return seen;
}

TEST(TakePageTest, JobsAndModelsComeNewestFirstWithTiesByIdAndNoTokenOnTheLastPage) {
  std::vector<PageKey> keys = {{10, "a"}, {30, "c"}, {20, "b"}, {30, "d"}, {5, "e"}};
  EXPECT_EQ(PageThrough(ListKind::kModels, &keys, 2),
            (std::vector<std::string>{"d", "c", "b", "a", "e"}));
  EXPECT_EQ(PageThrough(ListKind::kJobs, &keys, 5),
            (std::vector<std::string>{"d", "c", "b", "a", "e"}));
  // Exactly one full page: no token, since nothing follows.
  Page<std::string> page = TakePage(ListKind::kJobs, Items(keys), PageRequest{5, {}}, "", kNow);
  EXPECT_EQ(page.items.size(), 5u);
  EXPECT_TRUE(page.next_page_token.empty());
  page = TakePage(ListKind::kJobs, Items({}), PageRequest{5, {}}, "", kNow);
  EXPECT_TRUE(page.items.empty());
  EXPECT_TRUE(page.next_page_token.empty());
}

TEST(TakePageTest, DatasetsKeepTheBuiltInsFirstThenNames) {
  std::vector<PageKey> keys = {{kRegisteredDatasetRank, "zeta"},
                               {0, "mnist"},
                               {kRegisteredDatasetRank, "alpha"},
                               {1, "fashion-mnist"}};
  EXPECT_EQ(PageThrough(ListKind::kDatasets, &keys, 1),
            (std::vector<std::string>{"mnist", "fashion-mnist", "alpha", "zeta"}));
}

TEST(TakePageTest, ItemsAddedOrRemovedBetweenPagesAreNeitherRepeatedNorSkipped) {
  // 30 items at times 100, 200, ... 3000; every id ever listed, with its rank.
  std::vector<PageKey> keys;
  std::map<std::string, int64_t> rank_of;
  for (int i = 1; i <= 30; ++i) keys.push_back({i * 100, "item-" + std::to_string(i)});
  std::set<std::string> removed_unseen, removed_seen;
  auto add = [&](PageKey key) {
    rank_of[key.id] = key.rank;
    keys.push_back(std::move(key));
  };
  auto remove = [&](const std::string& id) {
    keys.erase(
        std::find_if(keys.begin(), keys.end(), [&](const PageKey& k) { return k.id == id; }));
  };
  for (const PageKey& key : keys) rank_of[key.id] = key.rank;
  const std::vector<std::string> seen = PageThrough(
      ListKind::kModels, &keys, 4, [&](int page, const std::vector<std::string>& so_far) {
        // At every page boundary: a newer item (before the position: only a new listing shows
        // it), one older than all (still to come), the item the token points at removed, and the
        // next item to come removed too.
        add({10'000 + page, "new-" + std::to_string(page)});
        add({50 - page, "old-" + std::to_string(page)});
        removed_seen.insert(so_far.back());
        remove(so_far.back());
        int64_t next_rank = -1;
        std::string next;
        for (const PageKey& key : keys) {
          if (key.rank < rank_of[so_far.back()] && key.rank > next_rank) {
            next_rank = key.rank;
            next = key.id;
          }
        }
        if (!next.empty()) {
          removed_unseen.insert(next);
          remove(next);
        }
      });
  ASSERT_GT(removed_unseen.size(), 3u);
  // Each item once, newest first; no newer item, none removed before it was reached.
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(rank_of[seen[i - 1]], rank_of[seen[i]]);
  for (const std::string& id : seen) {
    EXPECT_EQ(id.rfind("new-", 0), std::string::npos) << id;
    EXPECT_EQ(removed_unseen.count(id), 0u) << id;
  }
  // And every other item: those still listed, and those removed after they were seen.
  std::set<std::string> expected(removed_seen.begin(), removed_seen.end());
  for (const PageKey& key : keys) {
    if (key.id.rfind("new-", 0) != 0) expected.insert(key.id);
  }
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), expected);
  EXPECT_EQ(seen.size(), expected.size());
}

TEST(TakePageTest, TheLastItemOfAPageMayBeDeletedBeforeTheNextPage) {
  std::vector<PageKey> keys = {{4, "d"}, {3, "c"}, {2, "b"}, {1, "a"}};
  absl::StatusOr<PageRequest> first = ReadPageRequest(ListKind::kJobs, 2, "", kFilter, kNow);
  ASSERT_TRUE(first.ok());
  Page<std::string> page = TakePage(ListKind::kJobs, Items(keys), *first, kFilter, kNow);
  ASSERT_EQ(page.items, (std::vector<std::string>{"d", "c"}));
  keys.erase(keys.begin() + 1);  // "c", where the token points.
  absl::StatusOr<PageRequest> next =
      ReadPageRequest(ListKind::kJobs, 2, page.next_page_token, kFilter, kNow);
  ASSERT_TRUE(next.ok()) << next.status();
  page = TakePage(ListKind::kJobs, Items(keys), *next, kFilter, kNow);
  EXPECT_EQ(page.items, (std::vector<std::string>{"b", "a"}));
  EXPECT_TRUE(page.next_page_token.empty());
}

}  // namespace
}  // namespace classifier
