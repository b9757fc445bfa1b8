// A program the test starts in a process of its own (the real server binary, HAProxy), its
// output in a log file: for what an in-process object cannot show, such as a process killed
// with SIGKILL. Killed and reaped by the destructor, and killed with the test's process (a test
// that crashes leaves none running).
#ifndef CLASSIFIER_TESTS_TESTING_CHILD_PROCESS_H_
#define CLASSIFIER_TESTS_TESTING_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace classifier::testing {

// A loopback port nobody listens on now (the kernel's choice for port 0).
int FreeLoopbackPort();

class ChildProcess {
 public:
  // Runs argv[0] (a path) with `argv`, stdout and stderr into `log_path`. Start it from a thread
  // that outlives it: the child is killed when the thread that started it ends.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                             const std::string& log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Waits (polling the log) until a line matches `pattern` (ECMAScript), and answers the first
  // group (or the whole match); nullopt when the process exits or `timeout` passes first.
  std::optional<std::string> WaitForLog(const std::string& pattern, absl::Duration timeout);
  std::string Log() const;
  bool running();
  // How it exited (as waitpid says), once running() or Stop() saw it go; -1 before.
  int exit_status() const { return exit_status_; }
  // Sends `signal` and reaps the process (SIGKILL: at once; SIGTERM: once it exits); its exit
  // status as waitpid gives it, -1 when it had already been reaped.
  int Stop(int signal);

 private:
  ChildProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}

  pid_t pid_;
  const std::string log_path_;
  int exit_status_ = -1;
};

// The real classifier-server binary on a loopback port, the metrics endpoint off.
struct ServerProcess {
  // Starts `binary` with `flags` on 127.0.0.1:`port` (0: a free one) and waits (a minute) until
  // it listens.
  static absl::StatusOr<ServerProcess> Start(const std::string& binary,
                                             const std::vector<std::string>& flags,
                                             const std::string& log_path, int port = 0);
  std::unique_ptr<ChildProcess> process;
  int port = 0;
};

}  // namespace classifier::testing

#endif  // CLASSIFIER_TESTS_TESTING_CHILD_PROCESS_H_
