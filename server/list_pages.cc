#include "server/list_pages.h"

#include <google/protobuf/util/time_util.h>

#include <limits>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/result_proto.h"
#include "server/train_request.h"

namespace classifier {
namespace {

using google::protobuf::Timestamp;
using google::protobuf::util::TimeUtil;

// The range google.protobuf.Timestamp documents: 0001-01-01 to 9999-12-31, nanos in [0, 1e9).
absl::Status CheckCreatedAfter(const Timestamp& time) {
  if (time.seconds() < TimeUtil::kTimestampMinSeconds ||
      time.seconds() > TimeUtil::kTimestampMaxSeconds || time.nanos() < 0 ||
      time.nanos() > 999'999'999) {
    return absl::InvalidArgumentError(absl::StrCat(
        "created_after must be a valid timestamp (0001-01-01 to 9999-12-31, nanos in [0, "
        "999999999]), got seconds ",
        time.seconds(), ", nanos ", time.nanos()));
  }
  return absl::OkStatus();
}

// created_after as Unix nanoseconds, the rank jobs and models are ordered by; saturated, since a
// valid Timestamp (years 1 to 9999) may lie outside what 64 bits of nanoseconds hold (1678 to
// 2262), where it is before or after every job and model.
int64_t CreatedAfterRank(const Timestamp& created_after) {
  constexpr int64_t kLimitSeconds = std::numeric_limits<int64_t>::max() / 1'000'000'000 - 1;
  if (created_after.seconds() > kLimitSeconds) return std::numeric_limits<int64_t>::max();
  if (created_after.seconds() < -kLimitSeconds) return std::numeric_limits<int64_t>::min();
  return TimeUtil::TimestampToNanoseconds(created_after);
}

}  // namespace

absl::Status ListJobsPage(const v1::ListJobsRequest& request,
                          const std::vector<std::shared_ptr<Job>>& jobs, absl::Time now,
                          v1::ListJobsResponse* response) {
  const std::string filter = FilterOf(request);
  absl::StatusOr<PageRequest> page =
      ReadPageRequest(ListKind::kJobs, request.page_size(), request.page_token(), filter, now);
  if (!page.ok()) return page.status();
  if (!v1::JobState_IsValid(request.state())) {
    return absl::InvalidArgumentError(
        absl::StrCat("state must be a JobState (or unspecified, for any), got ", request.state()));
  }
  if (absl::Status valid = CheckCreatedAfter(request.created_after()); !valid.ok()) return valid;
  const int64_t created_after = CreatedAfterRank(request.created_after());

  struct Listed {
    const Job* job;
    int64_t created;
  };
  auto key_of = [](const Listed& listed) { return PageKeyView{listed.created, listed.job->id()}; };
  std::vector<Listed> matching;
  matching.reserve(jobs.size());
  // Newest first, as the manager holds them oldest first: TakePage's partial sort then finds the
  // page in one comparison per job.
  for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) {
    const std::shared_ptr<Job>& job = *it;
    const Job::Listing listing = job->listing();
    if (request.state() != v1::JOB_STATE_UNSPECIFIED && listing.state != request.state()) continue;
    if (!request.dataset().empty() &&
        DatasetOrDefault(job->request().dataset()) != request.dataset()) {
      continue;
    }
    if (request.has_created_after() && listing.created_unix_nanos <= created_after) continue;
    matching.push_back(Listed{job.get(), listing.created_unix_nanos});
  }
  // `jobs` holds every job for the whole call, so the pointers stay valid.
  Page<Listed> result = TakePage(ListKind::kJobs, std::move(matching), key_of, *page, filter, now);
  for (const Listed& listed : result.items) *response->add_jobs() = listed.job->Snapshot();
  response->set_next_page_token(std::move(result.next_page_token));
  return absl::OkStatus();
}

absl::Status ListModelsPage(const v1::ListModelsRequest& request, const ModelListReader& read,
                            const std::string& deployed_model_id, absl::Time now,
                            v1::ListModelsResponse* response) {
  const std::string filter = FilterOf(request);
  absl::StatusOr<PageRequest> page =
      ReadPageRequest(ListKind::kModels, request.page_size(), request.page_token(), filter, now);
  if (!page.ok()) return page.status();
  if (absl::Status valid = CheckCreatedAfter(request.created_after()); !valid.ok()) return valid;
  ModelQuery query;
  query.dataset = request.dataset();
  query.job_id = request.job_id();
  if (request.has_created_after()) {
    query.created_after_unix_ns = CreatedAfterRank(request.created_after());
  }
  // The store orders models as ComesBefore(kModels) does: created time, then id, descending.
  if (page->after.has_value()) query.after = ModelPosition{page->after->rank, page->after->id};
  query.limit = page->size + 1;
  absl::StatusOr<std::vector<ModelRecord>> models = read(query);
  if (!models.ok()) return models.status();
  const size_t size = static_cast<size_t>(page->size);
  if (models->size() > size) {
    const ModelRecord& last = (*models)[size - 1];
    response->set_next_page_token(EncodePageToken(
        ListKind::kModels, filter, PageKey{absl::ToUnixNanos(last.created), last.model_id}, now));
    models->resize(size);
  }
  for (const ModelRecord& model : *models) {
    v1::Model* out = response->add_models();
    *out = ToModelProto(model);
    out->set_deployed(model.model_id == deployed_model_id);
  }
  return absl::OkStatus();
}

absl::StatusOr<PageRequest> ReadListDatasetsRequest(const v1::ListDatasetsRequest& request,
                                                    absl::Time now) {
  return ReadPageRequest(ListKind::kDatasets, request.page_size(), request.page_token(),
                         FilterOf(request), now);
}

void ListDatasetsPage(const v1::ListDatasetsRequest& request, const PageRequest& page,
                      const std::vector<DatasetListing>& listings, absl::Time now,
                      v1::ListDatasetsResponse* response) {
  std::vector<std::pair<PageKey, const DatasetListing*>> keyed;
  int64_t builtin_rank = 0;
  for (const DatasetListing& listing : listings) {
    // The built-ins keep the catalog's order among themselves; the registered ones follow by
    // name, which is also the catalog's order.
    const int64_t rank = listing.builtin ? builtin_rank++ : kRegisteredDatasetRank;
    keyed.emplace_back(PageKey{rank, listing.name}, &listing);
  }
  Page<const DatasetListing*> result =
      TakePage(ListKind::kDatasets, std::move(keyed), page, FilterOf(request), now);
  for (const DatasetListing* listing : result.items) {
    ToDatasetProto(*listing, response->add_datasets());
  }
  response->set_next_page_token(std::move(result.next_page_token));
}

}  // namespace classifier
