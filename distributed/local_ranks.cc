#include "distributed/local_ranks.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace classifier {
namespace {

// Reaps every pid of `pids` that has exited; returns those still running.
std::vector<pid_t> ReapExited(const std::vector<pid_t>& pids) {
  std::vector<pid_t> running;
  for (pid_t pid : pids) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == 0) running.push_back(pid);
  }
  return running;
}

// Polls until every pid has exited or `deadline` passes; returns those still running.
std::vector<pid_t> WaitUntil(std::vector<pid_t> pids, absl::Time deadline) {
  pids = ReapExited(pids);
  while (!pids.empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    pids = ReapExited(pids);
  }
  return pids;
}

}  // namespace

LocalRanks::~LocalRanks() {
  std::vector<pid_t> running = WaitUntil(pids_, absl::Now() + kStopGrace);
  for (pid_t pid : running) kill(pid, SIGTERM);
  running = WaitUntil(running, absl::Now() + kStopGrace);
  for (pid_t pid : running) kill(pid, SIGKILL);
  for (pid_t pid : running) waitpid(pid, nullptr, 0);
}

void LocalRanks::Terminate() {
  for (pid_t pid : ReapExited(pids_)) kill(pid, SIGTERM);
}

absl::Status LocalRanks::Start(const std::string& binary, const std::vector<std::string>& args,
                               const std::vector<std::string>& environment,
                               const std::string& log_path) {
  // This process's environment with `environment`'s entries replacing same-named ones.
  std::map<std::string, std::string> variables;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    variables[text.substr(0, text.find('='))] = text;
  }
  for (const std::string& entry : environment) variables[entry.substr(0, entry.find('='))] = entry;
  std::vector<std::string> env_strings;
  for (auto& [name, entry] : variables) env_strings.push_back(entry);
  std::vector<char*> envp;
  for (std::string& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = {binary};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  // The server blocks signals in some threads; a rank starts with none blocked.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  const int error =
      posix_spawn(&pid, binary.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    return absl::InternalError(
        absl::StrCat("cannot start the rank binary ", binary, ": ", std::strerror(error)));
  }
  pids_.push_back(pid);
  return absl::OkStatus();
}

}  // namespace classifier
