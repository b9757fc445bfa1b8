#include "tests/testing/child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace classifier::testing {

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<std::string> args = argv;
  std::vector<char*> pointers;
  for (std::string& arg : args) pointers.push_back(arg.data());
  pointers.push_back(nullptr);
  const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", log_path, ": ", std::strerror(errno)));
  }
  // Reports a failed exec through a pipe that a successful exec closes.
  int exec_error[2];
  if (pipe2(exec_error, O_CLOEXEC) != 0) {
    close(log);
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls until exec. The child dies with the test: a test that
    // crashes leaves no server behind.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    const int null = open("/dev/null", O_RDONLY);
    dup2(null, STDIN_FILENO);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    execv(pointers[0], pointers.data());
    const int error = errno;
    (void)!write(exec_error[1], &error, sizeof(error));
    _exit(127);
  }
  close(log);
  close(exec_error[1]);
  int error = 0;
  const ssize_t got = pid < 0 ? 0 : read(exec_error[0], &error, sizeof(error));
  close(exec_error[0]);
  if (pid < 0 || got == sizeof(error)) {
    if (pid > 0) waitpid(pid, nullptr, 0);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start ", args[0], ": ", std::strerror(pid < 0 ? errno : error)));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, log_path));
}

ChildProcess::~ChildProcess() { Stop(SIGKILL); }

std::string ChildProcess::Log() const {
  std::ifstream log(log_path_);
  std::stringstream text;
  text << log.rdbuf();
  return text.str();
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = 0;
    exit_status_ = status;
    return false;
  }
  return true;
}

std::optional<std::string> ChildProcess::WaitForLog(const std::string& pattern,
                                                    absl::Duration timeout) {
  const std::regex wanted(pattern);
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const std::string log = Log();
    std::smatch match;
    if (std::regex_search(log, match, wanted)) return match.size() > 1 ? match[1] : match[0];
    if (!running() || absl::Now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int ChildProcess::Stop(int signal) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = 0;
  exit_status_ = status;
  return status;
}

absl::StatusOr<ServerProcess> ServerProcess::Start(const std::string& binary,
                                                   const std::vector<std::string>& flags,
                                                   const std::string& log_path, int port) {
  std::vector<std::string> argv = {
      binary,          "--listen", absl::StrCat("127.0.0.1:", port), "--metrics_listen", "",
      "--http_listen", ""};
  argv.insert(argv.end(), flags.begin(), flags.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> process = ChildProcess::Start(argv, log_path);
  if (!process.ok()) return process.status();
  std::optional<std::string> listening =
      (*process)->WaitForLog("listening on .* \\(port ([0-9]+)\\)", absl::Minutes(1));
  if (!listening.has_value()) {
    return absl::UnavailableError(
        absl::StrCat("the server did not listen within a minute:\n", (*process)->Log()));
  }
  ServerProcess server;
  server.process = *std::move(process);
  server.port = std::stoi(*listening);
  return server;
}

}  // namespace classifier::testing
