#include "tests/testing/postgres_server.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/testing/child_process.h"

namespace classifier::testing {
namespace {

// The newest /usr/lib/postgresql/N/bin holding initdb (Debian 12 has 15, Debian 13 has 17).
std::string FindBinDir() {
  std::string found;
  int newest = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
    const int version = std::atoi(entry.path().filename().c_str());
    if (version > newest && std::filesystem::exists(entry.path() / "bin" / "initdb")) {
      newest = version;
      found = (entry.path() / "bin").string();
    }
  }
  return found;
}

// `command` as the user PostgreSQL runs as: `postgres` when we are root.
std::string AsPostgres(const std::string& command) {
  if (geteuid() != 0) return command;
  return absl::StrCat("runuser -u postgres -- ", command);
}

bool Run(const std::string& command) { return std::system(command.c_str()) == 0; }

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start(bool durable) {
  const std::string bin_dir = FindBinDir();
  if (bin_dir.empty()) {
    return absl::FailedPreconditionError(
        "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb; Debian's "
        "postgresql package, which scripts/install-deps.sh installs)");
  }
  const int port = FreeLoopbackPort();
  if (port == 0) return absl::UnavailableError("no free port on 127.0.0.1");
  std::unique_ptr<PostgresServer> server(new PostgresServer(bin_dir, port, durable));
  const std::string& dir = server->dir_.path();
  if (geteuid() == 0 && !Run(absl::StrCat("chown -R postgres '", dir, "'"))) {
    return absl::InternalError(absl::StrCat("cannot give ", dir, " to the postgres user"));
  }
  const std::string log = absl::StrCat(dir, "/postgres.log");
  if (!Run(AsPostgres(absl::StrCat(bin_dir, "/initdb -D '", dir, "/data' -A trust -U postgres ",
                                   "--no-sync >'", dir, "/initdb.log' 2>&1")))) {
    return absl::InternalError(absl::StrCat("initdb failed: see ", dir, "/initdb.log"));
  }
  if (!server->Restart())
    return absl::InternalError(absl::StrCat("pg_ctl start failed: see ", log));
  if (!Run(absl::StrCat(bin_dir, "/createdb -h 127.0.0.1 -p ", port, " -U postgres classifier"))) {
    return absl::InternalError("createdb classifier failed");
  }
  server->uri_ = absl::StrCat("postgresql://postgres@127.0.0.1:", port, "/classifier");
  return server;
}

PostgresServer::PostgresServer(std::string bin_dir, int port, bool durable)
    : bin_dir_(std::move(bin_dir)), port_(port), durable_(durable) {}

bool PostgresServer::Restart() {
  const std::string& dir = dir_.path();
  started_ = Run(AsPostgres(absl::StrCat(
      bin_dir_, "/pg_ctl -D '", dir, "/data' -l '", dir, "/postgres.log' -w -t 60 -o \"-p ", port_,
      " -k '", dir, "' -c listen_addresses=127.0.0.1 -c fsync=", durable_ ? "on" : "off",
      "\" start >/dev/null")));
  return started_;
}

bool PostgresServer::Stop() {
  const bool stopped = Run(AsPostgres(absl::StrCat(bin_dir_, "/pg_ctl -D '", dir_.path(),
                                                   "/data' -m fast -w stop >/dev/null 2>&1")));
  if (stopped) started_ = false;
  return stopped;
}

PostgresServer::~PostgresServer() {
  if (started_) {
    Run(AsPostgres(absl::StrCat(bin_dir_, "/pg_ctl -D '", dir_.path(),
                                "/data' -m immediate -w stop >/dev/null 2>&1")));
  }
}

bool PostgresServer::Psql(const std::string& sql) const {
  // From a file, so that no quote or $ in the SQL meets the shell.
  const std::string script = absl::StrCat(dir_.path(), "/psql-", ++psql_scripts_, ".sql");
  {
    std::ofstream out(script, std::ios::binary);
    out << sql;
    if (!out.flush()) return false;
  }
  return Run(absl::StrCat(bin_dir_, "/psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p ", port_,
                          " -U postgres -d classifier -f ", script, " >/dev/null"));
}

}  // namespace classifier::testing
