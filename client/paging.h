// How the list commands (jobs, models, datasets) page through the server's lists: --limit N
// (the first N items), --all (every item), or neither (one page of the server's default size),
// and the filter flags that turn into the requests' typed filters. Private to client/.
#ifndef CLASSIFIER_CLIENT_PAGING_H_
#define CLASSIFIER_CLIENT_PAGING_H_

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "classifier/v1/classifier.pb.h"
#include "client/args.h"
#include "client/command_util.h"
#include "client/commands.h"

namespace classifier::cli {

// The most items one request may ask for: the maximum of the requests' page_size, as
// classifier.proto documents it (a server refuses more with INVALID_ARGUMENT).
inline constexpr int kLargestPage = 1000;

// What a list command asked for: --limit and --all.
struct Paging {
  int64_t limit = 0;  // 0 = one page of the server's default size.
  bool all = false;
};

// --limit N (N >= 1) or --all, not both: INVALID_ARGUMENT naming the flag otherwise.
absl::StatusOr<Paging> ReadPaging(const Invocation& invocation);

// --state NAME as `jobs` shows it (queued, running, succeeded, failed, cancelled, interrupted);
// INVALID_ARGUMENT listing the names otherwise.
absl::StatusOr<v1::JobState> ParseJobState(const std::string& name);
// --created_after as RFC 3339 (2026-01-31T12:00:00Z, or with an offset and fractions of a
// second); INVALID_ARGUMENT naming the flag otherwise.
absl::StatusOr<google::protobuf::Timestamp> ParseCreatedAfter(const std::string& text);

// The page size to ask for when `shown` items are already in hand.
inline int32_t NextPageSize(const Paging& paging, int64_t shown) {
  if (paging.all) return kLargestPage;
  if (paging.limit == 0) return 0;
  return static_cast<int32_t>(std::min<int64_t>(paging.limit - shown, kLargestPage));
}

// Calls `list` page after page as `paging` asks, each call with the command's deadline, and
// gathers the items into `all` (its next_page_token is that of the last page read: empty when
// nothing more exists). Stops at the first failed call and returns its status. `items_of` gives
// a response's repeated field (e.g. mutable_jobs()).
template <typename Request, typename Response, typename ItemsOf>
grpc::Status ListPages(const CommandEnvironment& env, const Invocation& invocation,
                       grpc::Status (v1::Classifier::StubInterface::*list)(grpc::ClientContext*,
                                                                           const Request&,
                                                                           Response*),
                       Request request, const Paging& paging, ItemsOf items_of, Response* all) {
  while (true) {
    request.set_page_size(NextPageSize(paging, items_of(all)->size()));
    Response page;
    grpc::ClientContext context;
    SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
    const grpc::Status status = (env.classifier->*list)(&context, request, &page);
    if (!status.ok()) return status;
    for (auto& item : *items_of(&page)) *items_of(all)->Add() = std::move(item);
    all->set_next_page_token(page.next_page_token());
    const bool enough = !paging.all && (paging.limit == 0 || items_of(all)->size() >= paging.limit);
    if (page.next_page_token().empty() || enough) return grpc::Status::OK;
    request.set_page_token(page.next_page_token());
  }
}

// When `next_page_token` says more `items` (e.g. "jobs") exist than were shown, tells the user
// on env.err how to see them.
void NoteMore(const std::string& next_page_token, const std::string& items,
              const CommandEnvironment& env);

}  // namespace classifier::cli

#endif  // CLASSIFIER_CLIENT_PAGING_H_
