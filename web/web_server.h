// The server's web face (--http_listen): the live dashboard page and the JSON API under
// /api/v1/ behind it, on an HTTP port of its own.
//
// The API is a gateway, not a second implementation: every route calls the server's own
// classifier.v1 RPC over an in-process channel (grpc::Server::InProcessChannel), so
// validation, the token check, limits, metrics, logs and drain are exactly gRPC's. The request
// comes from the path, the query string (request_fields.h) and a JSON body (protobuf's JSON
// mapping); the answer is the response message in protobuf's JSON mapping, or Google's JSON
// error shape with the HTTP status of the gRPC code (http_status.h). A job's events stream as
// server-sent events (job_event_feed.h). The `Authorization: Bearer <token>` header becomes
// the call's metadata. The routes are listed in the README's "Web dashboard" section.
//
// Browsers: the page and its script and style are compiled into the binary (no CDN, nothing
// read from disk). Every POST must be `Content-Type: application/json`, and an `Origin` header,
// when sent, must be this server's own: a form on another site can neither send such a POST
// without the browser asking first (and this server answers no such preflight) nor pass the
// Origin check, so it cannot cancel a job or deploy a model on a dashboard without a token.
#ifndef CLASSIFIER_WEB_WEB_SERVER_H_
#define CLASSIFIER_WEB_WEB_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "classifier/v1/classifier.grpc.pb.h"
#include "server/mutex.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace classifier {

class JobEventFeed;

struct WebServerOptions {
  // host:port; port 0 picks a free one (see WebServer::port()).
  std::string listen_address = "127.0.0.1:8080";
  // The gRPC port's TLS rules, applied to HTTP: PEM certificate chain and key (HTTPS), and a
  // client CA that every client certificate must be signed by. All empty = plain HTTP.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Connections served at once; more wait for a thread.
  int threads = 16;
  // Event streams open at once (each holds a thread while it lasts); more is 429. Below
  // `threads`, so the page's other calls always find one.
  int max_event_streams = 8;
  // An event stream sends a comment line after this long without an event.
  absl::Duration event_keepalive = absl::Seconds(15);
  // How long one API call may take (Evaluate reads a whole test split).
  absl::Duration call_timeout = absl::Minutes(2);
  // The largest request body taken (a Predict batch in JSON).
  size_t max_body_bytes = 64 << 20;
};

class WebServer {
 public:
  // Binds the port and starts serving on a thread of its own; the RPCs go to `channel`.
  // INVALID_ARGUMENT for a malformed address or half a TLS pair, FAILED_PRECONDITION when the
  // TLS files cannot be loaded, UNAVAILABLE when the port cannot be bound; each names the flag.
  static absl::StatusOr<std::unique_ptr<WebServer>> Start(const WebServerOptions& options,
                                                          std::shared_ptr<::grpc::Channel> channel);

  // Stops (see Stop).
  ~WebServer();
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  int port() const { return port_; }
  bool tls() const { return tls_; }

  // Ends every event stream (each gets an error event, CANCELLED), stops taking connections
  // and joins the serving threads. Idempotent; thread-safe.
  void Stop();

 private:
  WebServer(const WebServerOptions& options, std::unique_ptr<httplib::Server> http,
            std::shared_ptr<::grpc::Channel> channel, bool tls);

  void AddRoutes();
  void ServeEvents(const httplib::Request& request, httplib::Response& response);
  // Counts `stream` as open; false (and nothing counted) when stopping or at the limit.
  bool Register(JobEventFeed* stream, ::grpc::Status* refusal);
  void Unregister(JobEventFeed* stream);

  // Constant after construction.
  const WebServerOptions options_;
  const std::unique_ptr<httplib::Server> http_;
  const std::shared_ptr<::grpc::Channel> channel_;
  const std::unique_ptr<v1::Classifier::Stub> stub_;
  const bool tls_;
  int port_ = 0;
  std::thread listener_;

  Mutex mu_;
  std::set<JobEventFeed*> streams_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Signalled when the last open stream ends.
  CondVar streams_ended_;
  std::once_flag stop_once_;
};

}  // namespace classifier

#endif  // CLASSIFIER_WEB_WEB_SERVER_H_
