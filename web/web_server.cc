#include "web/web_server.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "web/assets.h"
#include "web/http_status.h"
#include "web/job_event_feed.h"
#include "web/request_fields.h"

namespace classifier {
namespace {

using v1::Classifier;

constexpr char kJson[] = "application/json";
// How long Stop waits for the open event streams to write their last event.
constexpr std::chrono::seconds kStreamsEndTimeout(5);

// A path part the route's pattern captured, and the request field it fills.
struct PathField {
  int match;
  const char* field;
};

void Reply(httplib::Response& response, const ::grpc::Status& status) {
  response.status = HttpStatusFor(status.error_code());
  response.set_content(ErrorJson(status), kJson);
}

void Reply(httplib::Response& response, const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) {
    Reply(response, ::grpc::Status(::grpc::StatusCode::INTERNAL, "cannot encode the answer"));
    return;
  }
  response.status = 200;
  response.set_content(json + "\n", kJson);
}

::grpc::Status InvalidArgument(const absl::Status& status) {
  return ::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT, std::string(status.message()));
}

// The Authorization header as gRPC metadata. Metadata values must be printable ASCII.
::grpc::Status Authorization(const httplib::Request& request, std::string* value) {
  *value = request.get_header_value("Authorization");
  for (const char c : *value) {
    if (c < 0x20 || c > 0x7e) {
      value->clear();
      return ::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT,
                            "the Authorization header must be printable ASCII");
    }
  }
  return ::grpc::Status::OK;
}

// The call's metadata (the token) and deadline.
void PrepareCall(::grpc::ClientContext* context, const std::string& authorization,
                 absl::Duration timeout) {
  if (!authorization.empty()) context->AddMetadata("authorization", authorization);
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

// The browser rules of the header comment: JSON POSTs only, and only from this origin.
::grpc::Status CheckBrowserRules(const httplib::Request& request, bool tls) {
  if (request.method == "POST") {
    const std::string type = absl::AsciiStrToLower(request.get_header_value("Content-Type"));
    if (!absl::StartsWith(type, kJson)) {
      return ::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("Content-Type must be application/json (got \"",
                                         type.substr(0, 64), "\"); a body may be empty: {}"));
    }
  }
  if (request.has_header("Origin")) {
    const std::string origin = request.get_header_value("Origin");
    const std::string own =
        absl::StrCat(tls ? "https://" : "http://", request.get_header_value("Host"));
    if (origin != own) {
      return ::grpc::Status(::grpc::StatusCode::PERMISSION_DENIED,
                            absl::StrCat("requests from another origin (", origin.substr(0, 128),
                                         ") are refused; this server is ", own));
    }
  }
  return ::grpc::Status::OK;
}

// Builds `message` from the body (JSON), the captured path parts and the query parameters, in
// that order, so the URL's parts win over the body's.
::grpc::Status BuildRequest(const httplib::Request& request,
                            const std::vector<PathField>& path_fields,
                            google::protobuf::Message* message) {
  if (!request.body.empty()) {
    google::protobuf::util::Status parsed =
        google::protobuf::util::JsonStringToMessage(request.body, message);
    if (!parsed.ok()) {
      return ::grpc::Status(
          ::grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("request body: not a JSON ", message->GetDescriptor()->name(), ": ",
                       std::string(parsed.message()).substr(0, 256)));
    }
  }
  for (const PathField& part : path_fields) {
    if (absl::Status set = SetFieldFromText(message, part.field, request.matches[part.match],
                                            absl::StrCat("path field ", part.field));
        !set.ok()) {
      return InvalidArgument(set);
    }
  }
  for (const auto& [name, value] : request.params) {
    if (absl::Status set =
            SetFieldFromText(message, name, value, absl::StrCat("query parameter ", name));
        !set.ok()) {
      return InvalidArgument(set);
    }
  }
  return ::grpc::Status::OK;
}

// What every API route checks before its call, in this order: the browser rules, `request` built
// from the URL and body (over what it already holds), and the Authorization header into
// `authorization`. The first refusal is returned, for the caller to reply with.
::grpc::Status ReadApiRequest(const httplib::Request& http_request, bool tls,
                              const std::vector<PathField>& path_fields,
                              google::protobuf::Message* request, std::string* authorization) {
  if (::grpc::Status rules = CheckBrowserRules(http_request, tls); !rules.ok()) return rules;
  if (::grpc::Status built = BuildRequest(http_request, path_fields, request); !built.ok()) {
    return built;
  }
  return Authorization(http_request, authorization);
}

template <typename Request, typename Response>
using UnaryCall = ::grpc::Status (Classifier::Stub::*)(::grpc::ClientContext*, const Request&,
                                                       Response*);

// One API route: the request from the URL and body, the RPC, the answer as JSON.
template <typename Request, typename Response>
httplib::Server::Handler Unary(Classifier::Stub* stub, const WebServerOptions& options, bool tls,
                               UnaryCall<Request, Response> call,
                               std::vector<PathField> path_fields = {}) {
  return [stub, timeout = options.call_timeout, tls, call, path_fields = std::move(path_fields)](
             const httplib::Request& http_request, httplib::Response& http_response) {
    Request request;
    std::string authorization;
    if (::grpc::Status read =
            ReadApiRequest(http_request, tls, path_fields, &request, &authorization);
        !read.ok()) {
      Reply(http_response, read);
      return;
    }
    ::grpc::ClientContext context;
    PrepareCall(&context, authorization, timeout);
    Response response;
    const ::grpc::Status status = (stub->*call)(&context, request, &response);
    if (status.ok()) {
      Reply(http_response, response);
    } else {
      Reply(http_response, status);
    }
  };
}

// host:port (or [v6]:port) into its parts.
bool SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::SimpleAtoi(address.substr(colon + 1), port) && *port >= 0 && *port <= 65535 &&
         !host->empty();
}

}  // namespace

absl::StatusOr<std::unique_ptr<WebServer>> WebServer::Start(
    const WebServerOptions& options, std::shared_ptr<::grpc::Channel> channel) {
  std::string host;
  int port = 0;
  if (!SplitAddress(options.listen_address, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_listen must be HOST:PORT (or empty for no web server), got \"",
                     options.listen_address, "\""));
  }
  if (options.threads < 2 || options.max_event_streams < 1 ||
      options.max_event_streams >= options.threads) {
    return absl::InvalidArgumentError(
        "the web server needs at least 2 threads and fewer event streams than threads");
  }
  std::unique_ptr<httplib::Server> http;
  const bool tls = !options.tls_cert.empty() || !options.tls_key.empty();
  if (tls) {
    if (options.tls_cert.empty() || options.tls_key.empty()) {
      return absl::InvalidArgumentError("--tls_cert and --tls_key go together: give both");
    }
    http = std::make_unique<httplib::SSLServer>(
        options.tls_cert.c_str(), options.tls_key.c_str(),
        options.tls_client_ca.empty() ? nullptr : options.tls_client_ca.c_str());
    if (!http->is_valid()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--http_listen: cannot load the TLS certificate ", options.tls_cert, " and key ",
          options.tls_key,
          options.tls_client_ca.empty() ? ""
                                        : absl::StrCat(" and client CA ", options.tls_client_ca),
          " (PEM files that belong together)"));
    }
  } else {
    if (!options.tls_client_ca.empty()) {
      return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
    }
    http = std::make_unique<httplib::Server>();
  }
  // cpp-httplib's default also sets SO_REUSEPORT, which lets a second server bind a port in use
  // and silently share its connections: an address in use must be an error instead.
  http->set_socket_options([](socket_t socket) {
    const int on = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  });
  const int threads = options.threads;
  http->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http->set_payload_max_length(options.max_body_bytes);
  http->set_keep_alive_timeout(5);
  const int bound =
      port == 0 ? http->bind_to_any_port(host) : (http->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on --http_listen ",
                                               options.listen_address,
                                               ": the address is malformed or the port is in use"));
  }
  std::unique_ptr<WebServer> server(
      new WebServer(options, std::move(http), std::move(channel), tls));
  server->port_ = bound;
  server->AddRoutes();
  server->listener_ = std::thread([http = server->http_.get()] { http->listen_after_bind(); });
  return server;
}

WebServer::WebServer(const WebServerOptions& options, std::unique_ptr<httplib::Server> http,
                     std::shared_ptr<::grpc::Channel> channel, bool tls)
    : options_(options),
      http_(std::move(http)),
      channel_(std::move(channel)),
      stub_(Classifier::NewStub(channel_)),
      tls_(tls) {}

WebServer::~WebServer() { Stop(); }

void WebServer::Stop() {
  std::call_once(stop_once_, [this] {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      for (JobEventFeed* stream : streams_) stream->Cancel();
      // Each stream writes its last event (UNAVAILABLE: reconnect) and lets go of its slot:
      // stopping the HTTP server first would drop the connections without it. A reader that
      // takes no more bytes is not waited for past the deadline.
      const auto deadline = std::chrono::steady_clock::now() + kStreamsEndTimeout;
      while (!streams_.empty() && streams_ended_.WaitUntil(&mu_, deadline)) {
      }
    }
    http_->stop();
    if (listener_.joinable()) listener_.join();
  });
}

bool WebServer::Register(JobEventFeed* stream, ::grpc::Status* refusal) {
  MutexLock lock(&mu_);
  if (stopping_) {
    *refusal = ::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
    return false;
  }
  if (static_cast<int>(streams_.size()) >= options_.max_event_streams) {
    *refusal = ::grpc::Status(
        ::grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat(options_.max_event_streams,
                     " event streams are open, the most this web server serves at once; close "
                     "a job page or poll /api/v1/jobs/{job_id}"));
    return false;
  }
  streams_.insert(stream);
  return true;
}

void WebServer::Unregister(JobEventFeed* stream) {
  MutexLock lock(&mu_);
  streams_.erase(stream);
  if (streams_.empty()) streams_ended_.SignalAll();
}

void WebServer::ServeEvents(const httplib::Request& request, httplib::Response& response) {
  v1::WatchJobRequest watch;
  // A reconnecting EventSource sends the id of the last event it got; the query wins.
  if (request.has_header("Last-Event-ID")) {
    int64_t last = 0;
    if (!absl::SimpleAtoi(request.get_header_value("Last-Event-ID"), &last) || last < 0) {
      Reply(response, ::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT,
                                     "Last-Event-ID must be an event's sequence number"));
      return;
    }
    watch.set_from_sequence(last + 1);
  }
  std::string authorization;
  if (::grpc::Status read = ReadApiRequest(request, tls_, {{1, "job_id"}}, &watch, &authorization);
      !read.ok()) {
    Reply(response, read);
    return;
  }
  // An unknown job, a missing token or a bad sequence is an HTTP error, not a stream that
  // opens and fails: ask once before the headers go out.
  {
    ::grpc::ClientContext context;
    PrepareCall(&context, authorization, options_.call_timeout);
    v1::GetJobRequest get;
    get.set_job_id(watch.job_id());
    v1::Job job;
    if (::grpc::Status status = stub_->GetJob(&context, get, &job); !status.ok()) {
      Reply(response, status);
      return;
    }
  }
  auto stream =
      std::make_shared<JobEventFeed>(stub_.get(), watch, authorization, options_.event_keepalive);
  ::grpc::Status refusal;
  if (!Register(stream.get(), &refusal)) {
    Reply(response, refusal);
    return;
  }
  response.set_header("Cache-Control", "no-cache");
  response.set_header("X-Accel-Buffering", "no");
  response.set_chunked_content_provider(
      "text/event-stream",
      [stream](size_t /*offset*/, httplib::DataSink& sink) {
        std::string chunk;
        const bool more = stream->Next(&chunk);
        if (!sink.write(chunk.data(), chunk.size())) return false;
        if (!more) sink.done();
        return true;
      },
      // Before the provider (and with it the stream) is destroyed.
      [this, stream](bool /*success*/) { Unregister(stream.get()); });
}

void WebServer::AddRoutes() {
  Classifier::Stub* stub = stub_.get();
  const WebServerOptions& o = options_;
  const bool tls = tls_;
  httplib::Server& http = *http_;

  // One path segment that is an id, captured. Never written "[^/:]+": cpp-httplib 0.14 and later
  // read a pattern holding "/:" as a path with named parameters (/users/:id), not a regular
  // expression, and such a route matches nothing here (Debian 13's 0.18 answered them all 404).
  const std::string id = "([^:/]+)";
  http.Get("/api/v1/jobs", Unary(stub, o, tls, &Classifier::Stub::ListJobs));
  http.Get("/api/v1/jobs/" + id, Unary(stub, o, tls, &Classifier::Stub::GetJob, {{1, "job_id"}}));
  http.Post("/api/v1/jobs/" + id + ":cancel",
            Unary(stub, o, tls, &Classifier::Stub::CancelJob, {{1, "job_id"}}));
  http.Get("/api/v1/jobs/" + id + "/events",
           [this](const httplib::Request& request, httplib::Response& response) {
             ServeEvents(request, response);
           });
  http.Get("/api/v1/models", Unary(stub, o, tls, &Classifier::Stub::ListModels));
  http.Post("/api/v1/models/" + id + ":deploy",
            Unary(stub, o, tls, &Classifier::Stub::DeployModel, {{1, "model_id"}}));
  http.Get("/api/v1/models/" + id + "/evaluation",
           Unary(stub, o, tls, &Classifier::Stub::Evaluate, {{1, "model_id"}}));
  http.Post("/api/v1/predict", Unary(stub, o, tls, &Classifier::Stub::Predict));
  http.Get("/api/v1/datasets", Unary(stub, o, tls, &Classifier::Stub::ListDatasets));
  http.Get("/api/v1/datasets/" + id + "/samples",
           Unary(stub, o, tls, &Classifier::Stub::GetDatasetSamples, {{1, "dataset"}}));

  // The page, its script and its style, from the binary.
  http.Get(R"(/(|[a-z_]+\.(html|js|css)))", [](const httplib::Request& request,
                                               httplib::Response& response) {
    const WebAsset* asset = FindWebAsset(request.path == "/" ? "/index.html" : request.path);
    if (asset == nullptr) {
      response.status = 404;
      response.set_content("not found\n", "text/plain");
      return;
    }
    response.set_header("Cache-Control", "no-cache");
    if (asset->content_type.substr(0, 9) == "text/html") {
      // Only this server's own script, style, and fetches back to it.
      response.set_header("Content-Security-Policy",
                          "default-src 'self'; img-src 'self' data:; "
                          "frame-ancestors 'none'");
    }
    response.set_content(asset->body.data(), asset->body.size(), std::string(asset->content_type));
  });

  // Everything else: a JSON 404 under /api/, plain text elsewhere.
  http.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
    if (response.status == 404 && absl::StartsWith(request.path, "/api/") &&
        response.body.empty()) {
      Reply(response, ::grpc::Status(::grpc::StatusCode::NOT_FOUND,
                                     absl::StrCat("no API route ", request.method, " ",
                                                  request.path.substr(0, 256),
                                                  "; the routes are in the README's \"Web "
                                                  "dashboard\" section")));
    }
  });
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"}});
}

}  // namespace classifier
