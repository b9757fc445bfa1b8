// A real PostgreSQL server for one test process: a fresh cluster (initdb) in a temporary
// folder, started with pg_ctl on a free loopback port, one empty database in it, stopped and
// removed by the destructor. As root it runs as the `postgres` user (PostgreSQL refuses root).
#ifndef CLASSIFIER_TESTS_TESTING_POSTGRES_SERVER_H_
#define CLASSIFIER_TESTS_TESTING_POSTGRES_SERVER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/testing/synthetic_data.h"

namespace classifier::testing {

class PostgresServer {
 public:
  // FAILED_PRECONDITION saying what is missing when PostgreSQL's server binaries are not
  // installed (tests skip with that message); other errors when it does not start.
  // `durable`: fsync on, as a production server runs (benchmarks); tests leave it off, since a
  // test's cluster need not survive a power cut and syncs are slow here.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start(bool durable = false);
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // postgresql://postgres@127.0.0.1:PORT/classifier
  const std::string& uri() const { return uri_; }
  int port() const { return port_; }
  // Stops the server (fast shutdown: clients are disconnected) and starts it again on the same
  // port and data: a database that goes away and comes back. False when pg_ctl fails.
  bool Stop();
  bool Restart();
  // Runs `sql` in the database with psql; false when it fails. Any thread may call it.
  bool Psql(const std::string& sql) const;

 private:
  PostgresServer(std::string bin_dir, int port, bool durable);

  TempDir dir_;
  const std::string bin_dir_;
  const int port_;
  const bool durable_;
  std::string uri_;
  bool started_ = false;
  mutable std::atomic<int> psql_scripts_{0};  // Names Psql's script files (any thread's).
};

}  // namespace classifier::testing

#endif  // CLASSIFIER_TESTS_TESTING_POSTGRES_SERVER_H_
