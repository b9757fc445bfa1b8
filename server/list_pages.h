// The answers of the list RPCs: a request's filters checked and applied to everything the
// server holds, then one page cut from the result (pagination.h). Functions of what they are
// given, so the service only gathers the items and translates the status.
#ifndef CLASSIFIER_SERVER_LIST_PAGES_H_
#define CLASSIFIER_SERVER_LIST_PAGES_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "classifier/v1/classifier.pb.h"
#include "server/dataset_catalog.h"
#include "server/job.h"
#include "server/model_record.h"
#include "server/pagination.h"
#include "server/store.h"

namespace classifier {

// ListJobs' page of `jobs` (in any order); only the page's jobs are snapshot. INVALID_ARGUMENT
// naming the field for a bad page_size or page_token (ReadPageRequest), a state that is not a
// JobState, or a created_after outside Timestamp's range.
absl::Status ListJobsPage(const v1::ListJobsRequest& request,
                          const std::vector<std::shared_ptr<Job>>& jobs, absl::Time now,
                          v1::ListJobsResponse* response);

// Reads the models a query asks for, newest first (ModelRegistry::List, from the store).
using ModelListReader =
    std::function<absl::StatusOr<std::vector<ModelRecord>>(const ModelQuery& query)>;

// ListModels' page, read with `read` as one keyset query (the filters, the token's position, one
// more row than the page to know whether another follows); `deployed_model_id` is marked
// deployed. INVALID_ARGUMENT as ListJobsPage; the reader's errors as they are.
absl::Status ListModelsPage(const v1::ListModelsRequest& request, const ModelListReader& read,
                            const std::string& deployed_model_id, absl::Time now,
                            v1::ListModelsResponse* response);

// ListDatasets in two steps, since listing reads files (off gRPC's threads): the request's
// paging checked first (ReadPageRequest's errors), then the page of `listings` (in the
// catalog's order: the built-ins first, then the registered ones) it asks for.
absl::StatusOr<PageRequest> ReadListDatasetsRequest(const v1::ListDatasetsRequest& request,
                                                    absl::Time now);
void ListDatasetsPage(const v1::ListDatasetsRequest& request, const PageRequest& page,
                      const std::vector<DatasetListing>& listings, absl::Time now,
                      v1::ListDatasetsResponse* response);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_LIST_PAGES_H_
