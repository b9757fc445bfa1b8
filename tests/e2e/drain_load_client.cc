// Load for tests/e2e/drain_e2e_test.sh: N threads call Predict in a loop against a real
// classifier-server; after a warm-up this program itself sends the server SIGTERM (so it knows
// the moment the drain began), keeps calling until every thread has been turned away, and then
// accounts for every call:
//   - in flight at SIGTERM (started before, ended after): must end OK;
//   - after: may only be refused with UNAVAILABLE (draining, or the port closed);
//   - anything else is a failure.
// Prints one summary line and each failure; exits 0 when nothing failed and at least one call
// was in flight at SIGTERM, 1 otherwise.
//
//   drain_load_client --server 127.0.0.1:PORT --server_pid PID [--threads 4] [--images 2000]
//
// --once_images N instead sends one Predict of N images and prints "CODE: message" (for the
// message-size check).
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "classifier/v1/classifier.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "the server's address");
ABSL_FLAG(int, server_pid, 0, "the server's process id, sent SIGTERM after the warm-up");
ABSL_FLAG(int, threads, 4, "concurrent callers");
ABSL_FLAG(int, images, 2000, "images per Predict (each call then takes a while)");
ABSL_FLAG(double, warmup_seconds, 1.5, "calls before SIGTERM");
ABSL_FLAG(double, max_seconds, 60, "give up after this long");
ABSL_FLAG(int, once_images, 0, "send one Predict of this many images, print its status, exit");

namespace {

using Clock = std::chrono::steady_clock;

struct Call {
  Clock::time_point start;
  Clock::time_point end;
  grpc::Status status;
};

classifier::v1::PredictRequest RandomImages(int images) {
  std::mt19937 generator(7);
  std::uniform_int_distribution<int> pixel(0, 255);
  classifier::v1::PredictRequest request;
  for (int i = 0; i < images; ++i) {
    std::string raw(784, '\0');
    for (char& value : raw) value = static_cast<char>(pixel(generator));
    request.add_images()->set_raw_pixels(std::move(raw));
  }
  return request;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                           grpc::InsecureChannelCredentials(), args);
  auto stub = classifier::v1::Classifier::NewStub(channel);

  if (const int once = absl::GetFlag(FLAGS_once_images); once > 0) {
    const classifier::v1::PredictRequest request = RandomImages(once);
    std::printf("request of %d images: %zu bytes\n", once, request.ByteSizeLong());
    grpc::ClientContext context;
    classifier::v1::PredictResponse response;
    const grpc::Status status = stub->Predict(&context, request, &response);
    std::printf("%d: %s\n", static_cast<int>(status.error_code()), status.error_message().c_str());
    return 0;
  }

  const classifier::v1::PredictRequest request = RandomImages(absl::GetFlag(FLAGS_images));
  std::mutex mu;
  std::vector<Call> calls;
  std::atomic<int> in_flight{0};
  std::atomic<int> turned_away{0};
  const Clock::time_point give_up =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(absl::GetFlag(FLAGS_max_seconds)));
  std::vector<std::thread> callers;
  for (int i = 0; i < absl::GetFlag(FLAGS_threads); ++i) {
    callers.emplace_back([&] {
      // Calls until the server turns this caller away (UNAVAILABLE): the drain refused it or
      // the port is gone.
      while (Clock::now() < give_up) {
        Call call;
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        classifier::v1::PredictResponse response;
        call.start = Clock::now();
        in_flight.fetch_add(1);
        call.status = stub->Predict(&context, request, &response);
        in_flight.fetch_sub(1);
        call.end = Clock::now();
        if (call.status.ok() && response.predictions_size() != request.images_size()) {
          call.status = grpc::Status(grpc::StatusCode::INTERNAL, "wrong number of predictions");
        }
        const bool refused = call.status.error_code() == grpc::StatusCode::UNAVAILABLE;
        {
          std::lock_guard<std::mutex> lock(mu);
          calls.push_back(call);
        }
        if (refused) break;
      }
      turned_away.fetch_add(1);
    });
  }

  std::this_thread::sleep_for(std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup_seconds)));
  const Clock::time_point drain_begin = Clock::now();
  const int in_flight_at_sigterm = in_flight.load();
  if (kill(static_cast<pid_t>(absl::GetFlag(FLAGS_server_pid)), SIGTERM) != 0) {
    std::perror("kill");
    return 1;
  }
  for (std::thread& caller : callers) caller.join();

  int before = 0, spanning = 0, spanning_ok = 0, after_ok = 0, refused = 0, failed = 0;
  for (const Call& call : calls) {
    const grpc::StatusCode code = call.status.error_code();
    const bool spans = call.start < drain_begin && call.end > drain_begin;
    if (call.end <= drain_begin) ++before;
    if (spans) ++spanning;
    if (code == grpc::StatusCode::OK) {
      if (spans) ++spanning_ok;
      if (call.start >= drain_begin) ++after_ok;
      continue;
    }
    // UNAVAILABLE is a refusal: the server never started the call (it says it is shutting
    // down, or the connection was refused or closed before the call was accepted). So is
    // CANCELLED for a call sent after SIGTERM: gRPC's own shutdown cancels a call that reached
    // the server but was never matched to a handler (seen on a loaded CI clone). A call the
    // server accepted and then failed would carry another code.
    if ((code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::CANCELLED) &&
        call.start >= drain_begin) {
      ++refused;
      continue;
    }
    if (code == grpc::StatusCode::UNAVAILABLE && spans &&
        call.status.error_message().find("shutting down") != std::string::npos) {
      // Sent just before SIGTERM but admitted after the drain began: refused at the door.
      ++refused;
      continue;
    }
    ++failed;
    std::printf("FAILED call (%s SIGTERM): code %d: %s\n",
                spans ? "in flight at" : (call.end <= drain_begin ? "before" : "after"),
                static_cast<int>(code), call.status.error_message().c_str());
  }
  std::printf(
      "drain: %zu Predict calls of %d images; %d finished before SIGTERM; %d in flight at SIGTERM "
      "(counter: %d), %d of them completed OK; %d accepted and OK after SIGTERM; %d refused "
      "UNAVAILABLE; %d failed\n",
      calls.size(), request.images_size(), before, spanning, in_flight_at_sigterm, spanning_ok,
      after_ok, refused, failed);
  return failed == 0 && spanning_ok >= 1 ? 0 : 1;
}
