#include "client/paging.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/format.h"

namespace classifier::cli {

absl::StatusOr<Paging> ReadPaging(const Invocation& invocation) {
  Paging paging;
  paging.all = invocation.Bool("all");
  if (invocation.Has("limit")) {
    paging.limit = invocation.Int64("limit");
    if (paging.limit < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid value '", paging.limit, "' for --limit: expected at least 1"));
    }
    if (paging.all) {
      return absl::InvalidArgumentError("--limit and --all exclude each other: give one");
    }
  }
  return paging;
}

absl::StatusOr<v1::JobState> ParseJobState(const std::string& name) {
  const std::string wanted = absl::AsciiStrToLower(name);
  std::vector<std::string> names;
  for (int value = v1::JobState_MIN; value <= v1::JobState_MAX; ++value) {
    if (!v1::JobState_IsValid(value) || value == v1::JOB_STATE_UNSPECIFIED) continue;
    const auto state = static_cast<v1::JobState>(value);
    if (StateName(state) == wanted) return state;
    names.push_back(StateName(state));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid value '", name, "' for --state: expected ", absl::StrJoin(names, ", ")));
}

absl::StatusOr<google::protobuf::Timestamp> ParseCreatedAfter(const std::string& text) {
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &time, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid value '", text,
                     "' for --created_after: expected an RFC 3339 time such as "
                     "2026-01-31T12:00:00Z (",
                     error, ")"));
  }
  const absl::Duration since_epoch = time - absl::UnixEpoch();
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(absl::ToInt64Seconds(since_epoch));
  timestamp.set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(since_epoch - absl::Seconds(timestamp.seconds()))));
  if (timestamp.nanos() < 0) {  // Before 1970 with a fraction: borrow a second.
    timestamp.set_seconds(timestamp.seconds() - 1);
    timestamp.set_nanos(timestamp.nanos() + 1'000'000'000);
  }
  return timestamp;
}

void NoteMore(const std::string& next_page_token, const std::string& items,
              const CommandEnvironment& env) {
  if (next_page_token.empty()) return;
  *env.err << "more " << items
           << " exist than shown: --all lists every one, --limit N the first N\n";
}

}  // namespace classifier::cli
