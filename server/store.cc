#include "server/store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/postgres_store.h"
#include "server/sqlite_store.h"
#include "spdlog/spdlog.h"

namespace classifier {

void MarkRequestCorrupt(const std::string& store, StoredJob* job) {
  const std::string error = absl::StrCat("the record of job ", job->job_id, " in ", store,
                                         " is damaged: its request cannot be read");
  spdlog::error("{}; the job is read back as failed, the others are not affected", error);
  v1::Job summary;
  summary.set_job_id(job->job_id);
  summary.set_state(v1::JOB_STATE_FAILED);
  summary.set_error(error);
  job->request.Clear();
  job->summary = std::move(summary);
}

absl::Status JobTakenOverError(const std::string& job_id) {
  return absl::AbortedError(absl::StrCat("job ", job_id,
                                         " is run by another replica now (this one's lease on "
                                         "it ran out): nothing of it was written"));
}

std::string StoreLocationForLogs(const std::string& location) {
  std::string shown = location;
  // postgresql://USER:PASSWORD@HOST/...
  const size_t scheme = shown.find("://");
  const size_t at = shown.find('@', scheme == std::string::npos ? 0 : scheme + 3);
  if (scheme != std::string::npos && at != std::string::npos) {
    const size_t colon = shown.find(':', scheme + 3);
    if (colon != std::string::npos && colon < at) shown.replace(colon + 1, at - colon - 1, "****");
  }
  // ...?password=PASSWORD&...
  for (size_t key = shown.find("password="); key != std::string::npos;
       key = shown.find("password=", key + 1)) {
    const size_t value = key + 9;
    const size_t end = std::min(shown.find('&', value), shown.size());
    shown.replace(value, end - value, "****");
  }
  return shown;
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& location) {
  if (absl::StartsWith(location, "postgresql://") || absl::StartsWith(location, "postgres://")) {
    absl::StatusOr<std::unique_ptr<PostgresStore>> store = PostgresStore::Open(location);
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(*std::move(store));
  }
  absl::string_view path = location;
  absl::ConsumePrefix(&path, "sqlite:");
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(std::string(path));
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(*std::move(store));
}

}  // namespace classifier
