// store_bench: the store's operations on SQLite and on PostgreSQL, side by side (issue 12):
// rounds alternate between the two (A B A B), each on a fresh database, and the figures are
// the medians over the rounds. PostgreSQL is a real server this program starts in a temporary
// folder (tests/testing/postgres_server.h, with fsync on, as SQLite runs with synchronous=FULL:
// both sync every commit), or the one --postgres names. A model insert is the record alone in
// SQLite (the registry writes the weights to a file beside it, not measured here) and the
// record with its 38 KB of weights in PostgreSQL.
//
//   build/bench/store_bench [--rounds=4] [--postgres=postgresql://...]
//
// Prints figures; never a test.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/store.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/synthetic_data.h"

ABSL_FLAG(int, rounds, 4, "rounds per backend, alternating");
ABSL_FLAG(std::string, postgres, "",
          "a PostgreSQL URI whose database may be filled (empty: start a server of our own)");

namespace classifier {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(q * (values.size() - 1))];
}

struct Figures {
  double events_per_s = 0;
  double append_p50_ms = 0;
  double insert_model_p50_ms = 0;
  double insert_model_p99_ms = 0;
  double get_model_p50_ms = 0;
  double list_page_p50_ms = 0;
  double list_page_p99_ms = 0;
  // Shared stores only (0 for SQLite): a lease renewed, an orphaned job claimed.
  double renew_p50_ms = 0;
  double claim_p50_ms = 0;
};

// One round on a fresh store: 10,000 event appends (200 jobs x 50), 300 models registered with
// their 38 KB of weights, 1,000 lookups by id, 200 pages of 100.
Figures Round(Store& store) {
  Figures figures;
  v1::TrainRequest request;
  request.set_dataset("mnist");
  request.set_epochs(50);
  std::vector<double> appends;
  const auto events_start = Clock::now();
  for (int j = 0; j < 200; ++j) {
    const std::string job_id = absl::StrFormat("job-%012x", j);
    if (!store.InsertJob(job_id, request, "bench", absl::Seconds(10)).ok()) std::abort();
    for (int e = 1; e <= 50; ++e) {
      v1::JobEvent event;
      event.set_job_id(job_id);
      event.set_sequence(e);
      event.mutable_epoch_end()->set_epoch(e);
      event.mutable_epoch_end()->set_train_loss(0.1);
      const auto start = Clock::now();
      if (!store.AppendEvent(event).ok()) std::abort();
      appends.push_back(Ms(Clock::now() - start));
    }
  }
  figures.events_per_s = appends.size() / (Ms(Clock::now() - events_start) / 1000);
  figures.append_p50_ms = Percentile(appends, 0.5);

  const std::string weights(38500, 'w');
  std::vector<double> inserts;
  std::vector<std::string> ids;
  for (int m = 0; m < 300; ++m) {
    ModelRecord model;
    model.model_id = absl::StrFormat("model-%012x", m);
    model.dataset = m % 2 == 0 ? "mnist" : "fashion-mnist";
    model.created = absl::Now();
    model.weights_path = "/nowhere/" + model.model_id + ".pth";
    model.size_bytes = static_cast<int64_t>(weights.size());
    model.sha256 = std::string(64, 'a');
    const auto start = Clock::now();
    if (!store.InsertModel(model, weights).ok()) std::abort();
    inserts.push_back(Ms(Clock::now() - start));
    ids.push_back(model.model_id);
  }
  figures.insert_model_p50_ms = Percentile(inserts, 0.5);
  figures.insert_model_p99_ms = Percentile(inserts, 0.99);

  std::mt19937 random(1);
  std::vector<double> gets;
  for (int i = 0; i < 1000; ++i) {
    const auto start = Clock::now();
    if (!store.GetModel(ids[random() % ids.size()]).ok()) std::abort();
    gets.push_back(Ms(Clock::now() - start));
  }
  figures.get_model_p50_ms = Percentile(gets, 0.5);

  std::vector<double> pages;
  for (int i = 0; i < 200; ++i) {
    ModelQuery query;
    query.dataset = i % 2 == 0 ? "" : "mnist";
    query.limit = 101;
    const auto start = Clock::now();
    if (!store.ListModels(query).ok()) std::abort();
    pages.push_back(Ms(Clock::now() - start));
  }
  figures.list_page_p50_ms = Percentile(pages, 0.5);
  figures.list_page_p99_ms = Percentile(pages, 0.99);

  if (store.shared()) {
    // A replica renewing its leases (on 5 unfinished jobs), and taking over a dead replica's
    // job: claimed with its 50 events.
    std::vector<double> renewals, claims;
    for (int j = 0; j < 5; ++j) {
      if (!store.InsertJob(absl::StrFormat("live-%d", j), request, "live", absl::Hours(1)).ok()) {
        std::abort();
      }
    }
    for (int i = 0; i < 200; ++i) {
      const auto start = Clock::now();
      if (!store.RenewJobLeases("live", absl::Seconds(10)).ok()) std::abort();
      renewals.push_back(Ms(Clock::now() - start));
    }
    for (int i = 0; i < 100; ++i) {
      const std::string job_id = absl::StrFormat("orphan-%d", i);
      if (!store.InsertJob(job_id, request, "gone", absl::ZeroDuration()).ok()) std::abort();
      for (int e = 1; e <= 50; ++e) {
        v1::JobEvent event;
        event.set_job_id(job_id);
        event.set_sequence(e);
        event.mutable_progress()->set_epoch(e);
        if (!store.AppendEvent(event).ok()) std::abort();
      }
      const auto start = Clock::now();
      absl::StatusOr<std::vector<StoredJob>> claimed =
          store.ClaimExpiredJobs("taker", absl::Seconds(10));
      if (!claimed.ok() || claimed->size() != 1) std::abort();
      claims.push_back(Ms(Clock::now() - start));
    }
    figures.renew_p50_ms = Percentile(renewals, 0.5);
    figures.claim_p50_ms = Percentile(claims, 0.5);
  }
  return figures;
}

double Median(const std::vector<Figures>& rounds, double Figures::*field) {
  std::vector<double> values;
  for (const Figures& figures : rounds) values.push_back(figures.*field);
  return Percentile(values, 0.5);
}

int Main() {
  testing::TempDir dir;
  std::unique_ptr<testing::PostgresServer> server;
  std::string postgres = absl::GetFlag(FLAGS_postgres);
  if (postgres.empty()) {
    absl::StatusOr<std::unique_ptr<testing::PostgresServer>> started =
        testing::PostgresServer::Start(/*durable=*/true);
    if (!started.ok()) {
      std::fprintf(stderr, "store_bench: %s\n", started.status().ToString().c_str());
      return 1;
    }
    server = *std::move(started);
  }
  std::vector<Figures> sqlite, pg;
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    // A fresh database per round and backend, SQLite first, then PostgreSQL.
    auto sqlite_store = Store::Open(absl::StrCat(dir.path(), "/round-", round, ".db"));
    if (!sqlite_store.ok()) return 1;
    sqlite.push_back(Round(**sqlite_store));
    std::string uri = postgres;
    if (server != nullptr) {
      const std::string database = absl::StrCat("round", round);
      if (!server->Psql(absl::StrCat("CREATE DATABASE ", database))) return 1;
      uri = absl::StrCat("postgresql://postgres@127.0.0.1:", server->port(), "/", database);
    }
    auto pg_store = Store::Open(uri);
    if (!pg_store.ok()) {
      std::fprintf(stderr, "store_bench: %s\n", pg_store.status().ToString().c_str());
      return 1;
    }
    pg.push_back(Round(**pg_store));
    std::fprintf(stderr, "round %d done\n", round + 1);
  }
  std::printf("%-40s %12s %12s %8s\n", "figure (median of rounds)", "sqlite", "postgres",
              "pg/sqlite");
  const std::pair<const char*, double Figures::*> rows[] = {
      {"event appends / s (one writer)", &Figures::events_per_s},
      {"event append p50 (ms)", &Figures::append_p50_ms},
      {"model insert p50 (ms; pg: + 38 KB weights)", &Figures::insert_model_p50_ms},
      {"model insert p99 (ms)", &Figures::insert_model_p99_ms},
      {"model by id p50 (ms)", &Figures::get_model_p50_ms},
      {"page of 100 models p50 (ms)", &Figures::list_page_p50_ms},
      {"page of 100 models p99 (ms)", &Figures::list_page_p99_ms},
      {"lease renewal p50 (ms; shared only)", &Figures::renew_p50_ms},
      {"claim of a dead replica's job p50 (ms)", &Figures::claim_p50_ms},
  };
  for (const auto& [name, field] : rows) {
    const double a = Median(sqlite, field);
    const double b = Median(pg, field);
    std::printf("%-40s %12.3f %12.3f %8.2f\n", name, a, b, a > 0 ? b / a : 0);
  }
  return 0;
}

}  // namespace
}  // namespace classifier

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("SQLite vs PostgreSQL store operations, side by side");
  absl::ParseCommandLine(argc, argv);
  return classifier::Main();
}
