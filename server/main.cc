// classifier-server: trains and serves image classifiers over gRPC.
#include <csignal>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "server/server.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "host:port to serve gRPC on (port 0 picks a free port, printed at start)");
ABSL_FLAG(std::string, data_dir, "data",
          "directory holding mnist/ (and optionally fashion-mnist/) with the "
          "official IDX "
          "file names; see scripts/fetch-data.sh");
ABSL_FLAG(std::string, fashion_fallback_dir, "/usr/share/datasets/fashion-mnist",
          "where fashion-mnist is read when data_dir has no fashion-mnist/ "
          "(Debian's dataset-fashion-mnist package)");
ABSL_FLAG(std::string, state_dir, "state", "directory for models and other state");
ABSL_FLAG(std::string, device, "auto", "auto, cpu, cuda or cuda:N");
ABSL_FLAG(int, threads, 0, "LibTorch compute threads (0 = LibTorch's default)");
ABSL_FLAG(int, inference_threads, 2, "threads serving Predict and Evaluate");
ABSL_FLAG(int, max_queued_jobs, 64, "jobs that may wait in the queue");
ABSL_FLAG(int, max_predict_images, 10000, "images allowed in one Predict request");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "largest gRPC message accepted or sent");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "how long shutdown waits for calls in flight");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Trains and serves image-classification CNNs over gRPC.\n"
      "  classifier-server [--listen=127.0.0.1:50051] [--data_dir=data] "
      "[--state_dir=state]");
  absl::ParseCommandLine(argc, argv);

  // Block the shutdown signals in every thread (threads inherit the mask), then
  // wait for them here: no work happens in a signal handler.
  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGINT);
  sigaddset(&shutdown_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &shutdown_signals, nullptr);

  classifier::ServerConfig config;
  config.listen_address = absl::GetFlag(FLAGS_listen);
  config.data_dir = absl::GetFlag(FLAGS_data_dir);
  config.fashion_fallback_dir = absl::GetFlag(FLAGS_fashion_fallback_dir);
  config.state_dir = absl::GetFlag(FLAGS_state_dir);
  config.device = absl::GetFlag(FLAGS_device);
  config.compute_threads = absl::GetFlag(FLAGS_threads);
  config.inference_threads = absl::GetFlag(FLAGS_inference_threads);
  config.max_queued_jobs = absl::GetFlag(FLAGS_max_queued_jobs);
  config.max_predict_images = absl::GetFlag(FLAGS_max_predict_images);
  config.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  config.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);

  auto server = classifier::ClassifierServer::Start(config);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return EXIT_FAILURE;
  }
  int signal_number = 0;
  sigwait(&shutdown_signals, &signal_number);
  spdlog::info("received {}", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->Shutdown();
  return EXIT_SUCCESS;
}
