// Pages of the list RPCs (ListJobs, ListModels, ListDatasets), after Google's AIP-158: how many
// items a page holds, the opaque token that says where the next page starts, and cutting a
// sorted list into that page. Pure functions of their arguments (the time is passed in): no
// server state, no secret, so a token survives a restart and works on any replica that shares
// the same store.
//
// A token records the position of the last item returned (its PageKey), not an offset: the next
// page holds the items strictly after that position in the list's order, so items added or
// removed between two calls shift nothing, and none is repeated or skipped.
#ifndef CLASSIFIER_SERVER_PAGINATION_H_
#define CLASSIFIER_SERVER_PAGINATION_H_

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace classifier {

// page_size 0 (or absent) means kDefaultPageSize; 1 to kMaxPageSize are honoured as given.
inline constexpr int kDefaultPageSize = 100;
inline constexpr int kMaxPageSize = 1000;
// A token older than this is refused: long enough to page through any list by hand, short
// enough that a forgotten token is not resumed against a list that has long moved on.
inline constexpr absl::Duration kPageTokenLifetime = absl::Hours(24);

// Which list a token belongs to (recorded in it: a token of one list is refused by another).
enum class ListKind : uint8_t { kJobs = 1, kModels = 2, kDatasets = 3 };

// The RPC's name, for messages: "ListJobs".
absl::string_view ListName(ListKind list);

// Where an item stands in its list; unique within the list (`id` is).
struct PageKey {
  // Jobs and models: the created time, Unix nanoseconds. Datasets: the built-ins' place among
  // themselves, then kRegisteredDatasetRank for every registered one.
  int64_t rank = 0;
  std::string id;  // job_id, model_id, or the dataset's name.

  friend bool operator==(const PageKey& a, const PageKey& b) {
    return a.rank == b.rank && a.id == b.id;
  }
};

// The rank of every registered dataset: after all the built-ins, then by name.
inline constexpr int64_t kRegisteredDatasetRank = std::numeric_limits<int64_t>::max();

// A PageKey that borrows its id: what TakePage compares, so that listing n items copies no id.
struct PageKeyView {
  int64_t rank = 0;
  absl::string_view id;
};
inline PageKeyView ViewOf(const PageKey& key) { return PageKeyView{key.rank, key.id}; }

// Whether `a` comes before `b` in `list`'s order. Jobs and models: newest first (rank, then id,
// both descending). Datasets: rank then name, ascending (the built-ins first, in their own
// order, then the registered ones by name).
bool ComesBefore(ListKind list, PageKeyView a, PageKeyView b);
inline bool ComesBefore(ListKind list, const PageKey& a, const PageKey& b) {
  return ComesBefore(list, ViewOf(a), ViewOf(b));
}

// One request's paging, checked.
struct PageRequest {
  int size = kDefaultPageSize;
  std::optional<PageKey> after;  // Unset: the first page.
};

// Checks page_size and page_token of a request to `list` whose filter fields serialize to
// `filter` (see FilterOf). INVALID_ARGUMENT naming the field: a page size below 0 or above
// kMaxPageSize; a token that is not one this server wrote (garbled, truncated, altered), that was
// issued for another list or another filter, or that expired.
absl::StatusOr<PageRequest> ReadPageRequest(ListKind list, int32_t page_size,
                                            absl::string_view page_token, absl::string_view filter,
                                            absl::Time now);

// The token of the page after the one that ended with `last`: base64url (no padding) of a
// version, the list, a fingerprint of `filter`, the time issued, `last`, and a checksum over all
// of them. The checksum is not a signature (there is no secret): it catches a mangled token, and
// a forged one can only name a position in a list its holder may read anyway.
std::string EncodePageToken(ListKind list, absl::string_view filter, const PageKey& last,
                            absl::Time issued);
// The position a token records, checked as ReadPageRequest says.
absl::StatusOr<PageKey> DecodePageToken(absl::string_view token, ListKind list,
                                        absl::string_view filter, absl::Time now);

// A request's filter fields as bytes, which a token is bound to: the request without its
// page_size (which may change from page to page) and page_token.
template <typename ListRequest>
std::string FilterOf(ListRequest request) {
  request.clear_page_size();
  request.clear_page_token();
  return request.SerializeAsString();
}

template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_page_token;  // Empty on the last page.
};

// The page `request` asks for from `items` (in any order; `key_of(item)` is an item's key as a
// PageKeyView): at most request.size items in `list`'s order, the first one after
// request.after; with the token of the next page when more items follow. Costs O(n log size),
// not a sort of the whole list: the items before the page are dropped first and only the page is
// ordered.
template <typename T, typename KeyOf>
Page<T> TakePage(ListKind list, std::vector<T> items, KeyOf key_of, const PageRequest& request,
                 absl::string_view filter, absl::Time now) {
  if (request.after.has_value()) {
    const PageKeyView after = ViewOf(*request.after);
    items.erase(
        std::remove_if(items.begin(), items.end(),
                       [&](const T& item) { return !ComesBefore(list, after, key_of(item)); }),
        items.end());
  }
  const auto size =
      std::min<std::ptrdiff_t>(request.size, static_cast<std::ptrdiff_t>(items.size()));
  std::partial_sort(items.begin(), items.begin() + size, items.end(), [&](const T& a, const T& b) {
    return ComesBefore(list, key_of(a), key_of(b));
  });
  Page<T> page;
  if (size > 0 && static_cast<size_t>(size) < items.size()) {
    const PageKeyView last = key_of(items[size - 1]);
    page.next_page_token =
        EncodePageToken(list, filter, PageKey{last.rank, std::string(last.id)}, now);
  }
  items.resize(size);
  page.items = std::move(items);
  return page;
}

// TakePage of items that carry their own key.
template <typename T>
Page<T> TakePage(ListKind list, std::vector<std::pair<PageKey, T>> items,
                 const PageRequest& request, absl::string_view filter, absl::Time now) {
  Page<std::pair<PageKey, T>> keyed = TakePage(
      list, std::move(items), [](const std::pair<PageKey, T>& item) { return ViewOf(item.first); },
      request, filter, now);
  Page<T> page;
  page.next_page_token = std::move(keyed.next_page_token);
  for (std::pair<PageKey, T>& item : keyed.items) page.items.push_back(std::move(item.second));
  return page;
}

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_PAGINATION_H_
