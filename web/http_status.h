// How the JSON API under /api/ reports a failed call: the HTTP status that Google's HTTP APIs
// (and grpc-gateway) use for each gRPC code, and their error body, so a curl user or a browser
// gets a status it knows and the gRPC code and message it would have got from gRPC.
#ifndef CLASSIFIER_WEB_HTTP_STATUS_H_
#define CLASSIFIER_WEB_HTTP_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

namespace classifier {

// 400 for INVALID_ARGUMENT, FAILED_PRECONDITION and OUT_OF_RANGE; 401, 403, 404, 409, 429,
// 499 (the client went away), 500, 501, 503 and 504 as in google/rpc/code.proto.
int HttpStatusFor(::grpc::StatusCode code);

// "NOT_FOUND" for NOT_FOUND: the name a gRPC client shows.
std::string StatusCodeName(::grpc::StatusCode code);

// {"error":{"code":404,"status":"NOT_FOUND","message":"..."}}: Google's JSON error shape, the
// message escaped as a JSON string.
std::string ErrorJson(const ::grpc::Status& status);

}  // namespace classifier

#endif  // CLASSIFIER_WEB_HTTP_STATUS_H_
