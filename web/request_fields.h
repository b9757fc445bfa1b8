// Fills a request message from the parts of a URL, for the JSON API's GET routes:
// /api/v1/jobs/{job_id} sets `job_id`, ?page_size=10 sets `page_size`. The rules are
// grpc-gateway's: a query parameter names a field of the request (its proto name or its JSON
// name), its text is parsed by the field's type (numbers, true/false, enum names or numbers,
// RFC 3339 for a Timestamp), and a repeated or message field other than a Timestamp cannot be
// set this way.
#ifndef CLASSIFIER_WEB_REQUEST_FIELDS_H_
#define CLASSIFIER_WEB_REQUEST_FIELDS_H_

#include <google/protobuf/message.h>

#include <string>

#include "absl/status/status.h"

namespace classifier {

// Sets the field `name` of `request` to `text`. INVALID_ARGUMENT naming `what` (e.g. "query
// parameter page_size"), the field and the type when the text does not parse, and listing the
// request's fields when there is no such field.
absl::Status SetFieldFromText(google::protobuf::Message* request, const std::string& name,
                              const std::string& text, const std::string& what);

}  // namespace classifier

#endif  // CLASSIFIER_WEB_REQUEST_FIELDS_H_
