#include "server/postgres_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

namespace classifier {
namespace {

// The settings row that holds the schema's version, and the version this code writes.
// 1: every table of SQLite's schema version 3, with ids and names in the "C" collation.
// 2: job leases (jobs.lease_until_unix_ns, jobs.cancel_reason) and checkpoint bytes: a server
// that knows only version 1 would insert jobs without a lease, which the others would take over.
constexpr char kSchemaVersionKey[] = "schema_version";
constexpr int64_t kSchemaVersion = 2;
// pg_advisory_xact_lock's key for creating or upgrading the schema: replicas that start
// together take turns.
constexpr int64_t kSchemaLockKey = 0x636c617373696679;  // "classify"
// How often an upgrade that PostgreSQL aborted (a deadlock with a running replica) is tried.
constexpr int kMigrationAttempts = 5;
constexpr char kDeployedModelKey[] = "deployed_model_id";

// Run only on a database below kSchemaVersion (or empty): every change here bumps it.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS settings (
  key TEXT COLLATE "C" PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
  position BIGSERIAL PRIMARY KEY,
  job_id TEXT COLLATE "C" NOT NULL UNIQUE,
  request BYTEA NOT NULL,
  summary BYTEA,
  owner TEXT NOT NULL DEFAULT ''
);
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS lease_until_unix_ns BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS cancel_reason TEXT;
CREATE INDEX IF NOT EXISTS unfinished_jobs_by_owner ON jobs (owner) WHERE summary IS NULL;
CREATE INDEX IF NOT EXISTS unfinished_jobs_by_lease ON jobs (lease_until_unix_ns)
  WHERE summary IS NULL;
CREATE TABLE IF NOT EXISTS job_events (
  job_id TEXT COLLATE "C" NOT NULL,
  sequence BIGINT NOT NULL,
  event BYTEA NOT NULL,
  PRIMARY KEY (job_id, sequence)
);
CREATE TABLE IF NOT EXISTS models (
  position BIGSERIAL PRIMARY KEY,
  model_id TEXT COLLATE "C" NOT NULL UNIQUE,
  model BYTEA NOT NULL,
  weights_path TEXT NOT NULL,
  created_unix_ns BIGINT NOT NULL,
  dataset TEXT COLLATE "C" NOT NULL,
  job_id TEXT COLLATE "C" NOT NULL,
  size_bytes BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS models_by_created ON models (created_unix_ns, model_id);
CREATE INDEX IF NOT EXISTS models_by_dataset ON models (dataset, created_unix_ns, model_id);
CREATE INDEX IF NOT EXISTS models_by_job ON models (job_id, created_unix_ns, model_id);
CREATE INDEX IF NOT EXISTS models_by_size ON models (size_bytes);
CREATE TABLE IF NOT EXISTS model_weights (
  model_id TEXT COLLATE "C" PRIMARY KEY REFERENCES models (model_id) ON DELETE CASCADE,
  weights BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS model_deletions (
  position BIGSERIAL PRIMARY KEY,
  model_id TEXT COLLATE "C" NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
  job_id TEXT COLLATE "C" PRIMARY KEY,
  epoch BIGINT NOT NULL,
  batch BIGINT NOT NULL,
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL
);
ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS bytes BYTEA NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS datasets (
  name TEXT COLLATE "C" PRIMARY KEY,
  path TEXT NOT NULL,
  registered_unix_ms BIGINT NOT NULL
);
)sql";

// The database's clock in Unix nanoseconds: leases are timed by the one clock every replica
// shares, not by the replicas' own.
constexpr char kNowNs[] = "(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint";

// PostgreSQL's type ids of the parameters we send (pg_type.h).
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;

// TEXT cannot hold a NUL byte: an id with one names nothing stored.
bool HasNul(absl::string_view text) { return text.find('\0') != absl::string_view::npos; }

}  // namespace

// Parameters in PostgreSQL's binary format: text as its bytes, integers big-endian.
class PostgresStore::Params {
 public:
  Params& Text(const std::string& value) { return Add(value, kTextOid); }
  Params& Bytes(const std::string& value) { return Add(value, kByteaOid); }
  Params& Int(int64_t value) {
    std::string bytes(8, '\0');
    for (int i = 7; i >= 0; --i) {
      bytes[i] = static_cast<char>(value & 0xff);
      value = static_cast<int64_t>(static_cast<uint64_t>(value) >> 8);
    }
    return Add(bytes, kInt8Oid);
  }

  int size() const { return static_cast<int>(values_.size()); }
  const Oid* types() const { return types_.data(); }
  // Pointers into values_: valid while this object is unchanged.
  std::vector<const char*> pointers() const {
    std::vector<const char*> pointers;
    for (const std::string& value : values_) pointers.push_back(value.data());
    return pointers;
  }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  Params& Add(std::string bytes, Oid type) {
    lengths_.push_back(static_cast<int>(bytes.size()));
    values_.push_back(std::move(bytes));
    types_.push_back(type);
    formats_.push_back(1);
    return *this;
  }

  std::vector<std::string> values_;
  std::vector<Oid> types_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// A statement's result, cleared when it goes out of scope; columns in binary format.
class PostgresStore::Result {
 public:
  explicit Result(PGresult* result) : result_(result, &PQclear) {}

  ExecStatusType status() const {
    return result_ == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result_.get());
  }
  std::string error() const {
    return result_ == nullptr ? "" : PQresultErrorMessage(result_.get());
  }
  std::string sqlstate() const {
    const char* state =
        result_ == nullptr ? nullptr : PQresultErrorField(result_.get(), PG_DIAG_SQLSTATE);
    return state == nullptr ? "" : state;
  }
  int rows() const { return PQntuples(result_.get()); }
  // Rows a DELETE or UPDATE touched.
  int64_t affected() const {
    const char* count = PQcmdTuples(result_.get());
    return count == nullptr || *count == '\0' ? 0 : std::stoll(count);
  }
  bool IsNull(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  std::string Bytes(int row, int column) const {
    return std::string(PQgetvalue(result_.get(), row, column),
                       PQgetlength(result_.get(), row, column));
  }
  // A BIGINT column.
  int64_t Int(int row, int column) const {
    const auto* bytes =
        reinterpret_cast<const unsigned char*>(PQgetvalue(result_.get(), row, column));
    uint64_t value = 0;
    for (int i = 0; i < PQgetlength(result_.get(), row, column); ++i) value = value << 8 | bytes[i];
    return static_cast<int64_t>(value);
  }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> result_;
};

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(const std::string& uri) {
  const std::string name = StoreLocationForLogs(uri);
  PGconn* connection = PQconnectdb(uri.c_str());
  if (connection == nullptr || PQstatus(connection) != CONNECTION_OK) {
    std::string message = connection == nullptr ? "out of memory" : PQerrorMessage(connection);
    PQfinish(connection);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return absl::UnavailableError(
        absl::StrCat("cannot connect to the database ", name, ": ", message));
  }
  // The server's notices ("... already exists, skipping" from the schema's IF NOT EXISTS) are
  // for debugging, not for stderr.
  PQsetNoticeProcessor(
      connection, [](void*, const char* notice) { spdlog::debug("postgres: {}", notice); },
      nullptr);
  std::unique_ptr<PostgresStore> store(new PostgresStore(connection, name));
  MutexLock lock(&store->mu_);
  if (absl::Status migrated = store->Migrate(); !migrated.ok()) {
    return absl::Status(migrated.code(),
                        absl::StrCat("cannot use the database ", name, ": ", migrated.message()));
  }
  return store;
}

PostgresStore::PostgresStore(pg_conn* connection, std::string name)
    : name_(std::move(name)), connection_(connection) {}

PostgresStore::~PostgresStore() {
  MutexLock lock(&mu_);
  PQfinish(connection_);
}

absl::StatusOr<PostgresStore::Result> PostgresStore::Run(const std::string& sql,
                                                         const Params& params) const {
  // A connection the server closed (a restart, an idle timeout) is opened again once; a
  // statement is never sent twice.
  if (PQstatus(connection_) != CONNECTION_OK) PQreset(connection_);
  const std::vector<const char*> values = params.pointers();
  return Check(Result(PQexecParams(connection_, sql.c_str(), params.size(), params.types(),
                                   values.data(), params.lengths(), params.formats(),
                                   /*resultFormat=*/1)));
}

absl::Status PostgresStore::Exec(const std::string& sql) const {
  if (PQstatus(connection_) != CONNECTION_OK) PQreset(connection_);
  return Check(Result(PQexec(connection_, sql.c_str()))).status();
}

absl::StatusOr<PostgresStore::Result> PostgresStore::Check(Result result) const {
  const ExecStatusType status = result.status();
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  std::string message = result.error();
  while (!message.empty() && message.back() == '\n') message.pop_back();
  if (message.empty()) message = PQerrorMessage(connection_);
  const std::string sqlstate = result.sqlstate();
  if (sqlstate == "23505") return absl::AlreadyExistsError(message);
  // A deadlock or serialization failure: PostgreSQL rolled the transaction back, and the same
  // transaction tried again may pass.
  if (sqlstate == "40P01" || sqlstate == "40001") {
    return absl::AbortedError(absl::StrCat("postgres ", name_, ": ", message));
  }
  // The server gone (stopped, restarting, unreachable): UNAVAILABLE, which clients retry; the
  // next statement reconnects (Run).
  if (PQstatus(connection_) != CONNECTION_OK || sqlstate.rfind("08", 0) == 0 ||
      sqlstate.rfind("57P", 0) == 0) {
    return absl::UnavailableError(
        absl::StrCat("the database ", name_, " is unavailable: ", message));
  }
  return absl::InternalError(absl::StrCat("postgres ", name_, ": ", message));
}

absl::Status PostgresStore::Migrate() {
  // A database at this code's version is left alone: no DDL. ALTER TABLE takes an ACCESS
  // EXCLUSIVE lock, so a replica starting beside running ones would queue behind their row
  // locks, table after table, and deadlock with a transaction of theirs that takes its locks in
  // another order (replica_test, seen under ASan). An upgrade does run DDL beside them: when
  // PostgreSQL ends such a deadlock by aborting the upgrade (ABORTED), it is tried again.
  absl::Status status;
  for (int attempt = 1; attempt <= kMigrationAttempts; ++attempt) {
    status = Transaction([&] {
      mu_.AssertHeld();  // Transaction runs the body under the lock.
      absl::StatusOr<Result> locked =
          Run("SELECT pg_advisory_xact_lock($1)", Params().Int(kSchemaLockKey));
      if (!locked.ok()) return locked.status();
      absl::StatusOr<int64_t> version = SchemaVersion();
      if (!version.ok()) return version.status();
      if (*version > kSchemaVersion) {
        return absl::FailedPreconditionError(
            absl::StrCat("it was written by a newer server (schema version ", *version,
                         "; this one knows up to ", kSchemaVersion, ")"));
      }
      if (*version == kSchemaVersion) return absl::OkStatus();
      if (absl::Status created = Exec(kSchema); !created.ok()) return created;
      return Run("INSERT INTO settings (key, value) VALUES ($1, $2) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 Params().Text(kSchemaVersionKey).Text(std::to_string(kSchemaVersion)))
          .status();
    });
    if (!absl::IsAborted(status)) break;
    spdlog::warn("upgrading the schema of {} was aborted (attempt {} of {}): {}", name_, attempt,
                 kMigrationAttempts, status.ToString());
  }
  return status;
}

absl::StatusOr<int64_t> PostgresStore::SchemaVersion() const {
  // An empty database has no settings table, and naming it would fail the transaction.
  absl::StatusOr<Result> exists =
      Run("SELECT 1 WHERE to_regclass('settings') IS NOT NULL", Params());
  if (!exists.ok()) return exists.status();
  if (exists->rows() == 0) return 0;
  absl::StatusOr<Result> version =
      Run("SELECT value FROM settings WHERE key = $1", Params().Text(kSchemaVersionKey));
  if (!version.ok()) return version.status();
  if (version->rows() == 0) return 0;
  const std::string text = version->Bytes(0, 0);
  int64_t number = 0;
  if (!absl::SimpleAtoi(text, &number)) {
    return absl::DataLossError(absl::StrCat("the schema version in ", name_,
                                            "'s settings is not a number: \"", text, "\""));
  }
  return number;
}

absl::Status PostgresStore::Transaction(const std::function<absl::Status()>& body) {
  if (absl::Status begun = Exec("BEGIN"); !begun.ok()) return begun;
  absl::Status status = body();
  if (status.ok()) status = Exec("COMMIT");
  if (!status.ok()) Exec("ROLLBACK").IgnoreError();
  return status;
}

absl::Status PostgresStore::InsertJob(const std::string& job_id, const v1::TrainRequest& request,
                                      const std::string& owner, absl::Duration lease) {
  MutexLock lock(&mu_);
  return InsertJobLocked(job_id, request, owner, lease);
}

absl::Status PostgresStore::InsertJobLocked(const std::string& job_id,
                                            const v1::TrainRequest& request,
                                            const std::string& owner, absl::Duration lease) {
  return Run(absl::StrCat("INSERT INTO jobs (job_id, request, owner, lease_until_unix_ns) "
                          "VALUES ($1, $2, $3, ",
                          kNowNs, " + $4)"),
             Params()
                 .Text(job_id)
                 .Bytes(request.SerializeAsString())
                 .Text(owner)
                 .Int(absl::ToInt64Nanoseconds(lease)))
      .status();
}

absl::Status PostgresStore::AppendEvent(const v1::JobEvent& event) {
  MutexLock lock(&mu_);
  return AppendEventLocked(event);
}

absl::Status PostgresStore::AppendEventLocked(const v1::JobEvent& event) {
  Params params;
  params.Text(event.job_id()).Int(event.sequence()).Bytes(event.SerializeAsString());
  if (fence_.empty()) {
    return Run("INSERT INTO job_events (job_id, sequence, event) VALUES ($1, $2, $3)", params)
        .status();
  }
  // FOR SHARE: a claim of the job (an UPDATE of its row) waits until this commits, and reads
  // the event; one that committed first leaves no row owned by this replica to insert from.
  absl::StatusOr<Result> inserted =
      Run("INSERT INTO job_events (job_id, sequence, event) SELECT $1, $2, $3 FROM jobs "
          "WHERE job_id = $1 AND owner = $4 FOR SHARE",
          params.Text(fence_));
  if (!inserted.ok()) return inserted.status();
  if (inserted->affected() == 0) return JobTakenOverError(event.job_id());
  return absl::OkStatus();
}

void PostgresStore::FenceJobWrites(const std::string& replica_id) {
  MutexLock lock(&mu_);
  fence_ = replica_id;
}

absl::Status PostgresStore::AppendFinalEvent(const v1::JobEvent& event, const v1::Job& summary) {
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    if (absl::Status stored = AppendEventLocked(event); !stored.ok()) return stored;
    return PutJobSummaryLocked(event.job_id(), summary);
  });
}

absl::Status PostgresStore::PutJobSummary(const std::string& job_id, const v1::Job& summary) {
  MutexLock lock(&mu_);
  return PutJobSummaryLocked(job_id, summary);
}

absl::Status PostgresStore::PutJobSummaryLocked(const std::string& job_id, const v1::Job& summary) {
  return Run("UPDATE jobs SET summary = $1 WHERE job_id = $2",
             Params().Bytes(summary.SerializeAsString()).Text(job_id))
      .status();
}

absl::StatusOr<std::vector<v1::JobEvent>> PostgresStore::LoadEvents(const std::string& job_id,
                                                                    int64_t from_sequence) {
  MutexLock lock(&mu_);
  return LoadEventsLocked(job_id, from_sequence);
}

absl::StatusOr<std::vector<v1::JobEvent>> PostgresStore::LoadEventsLocked(const std::string& job_id,
                                                                          int64_t from_sequence) {
  std::vector<v1::JobEvent> events;
  if (HasNul(job_id)) return events;
  int64_t expected = std::max<int64_t>(from_sequence, 1);
  absl::StatusOr<Result> rows =
      Run("SELECT sequence, event FROM job_events WHERE job_id = $1 AND sequence >= $2 "
          "ORDER BY sequence",
          Params().Text(job_id).Int(expected));
  if (!rows.ok()) return rows.status();
  for (int row = 0; row < rows->rows(); ++row) {
    v1::JobEvent event;
    // Stop at a gap or a corrupt row: the log is only ever replayed as a prefix.
    if (rows->Int(row, 0) != expected || !event.ParseFromString(rows->Bytes(row, 1))) break;
    events.push_back(std::move(event));
    ++expected;
  }
  return events;
}

absl::StatusOr<std::vector<StoredJob>> PostgresStore::LoadJobs() {
  MutexLock lock(&mu_);
  return LoadJobsLocked(std::nullopt);
}

absl::StatusOr<std::optional<StoredJob>> PostgresStore::LoadJob(const std::string& job_id) {
  if (HasNul(job_id)) return std::optional<StoredJob>();
  MutexLock lock(&mu_);
  absl::StatusOr<std::vector<StoredJob>> jobs = LoadJobsLocked(job_id);
  if (!jobs.ok()) return jobs.status();
  if (jobs->empty()) return std::optional<StoredJob>();
  return std::optional<StoredJob>(std::move(jobs->front()));
}

absl::StatusOr<std::vector<StoredJob>> PostgresStore::LoadJobsLocked(
    const std::optional<std::string>& job_id) {
  constexpr char kColumns[] =
      "SELECT job_id, request, summary, owner, cancel_reason, position FROM jobs ";
  absl::StatusOr<Result> rows =
      job_id.has_value() ? Run(absl::StrCat(kColumns, "WHERE job_id = $1"), Params().Text(*job_id))
                         : Run(absl::StrCat(kColumns, "ORDER BY position"), Params());
  if (!rows.ok()) return rows.status();
  std::vector<StoredJob> jobs;
  for (int row = 0; row < rows->rows(); ++row) {
    StoredJob job;
    job.job_id = rows->Bytes(row, 0);
    job.owner = rows->Bytes(row, 3);
    if (!rows->IsNull(row, 4)) job.cancel_reason = rows->Bytes(row, 4);
    job.position = rows->Int(row, 5);
    if (!job.request.ParseFromString(rows->Bytes(row, 1))) {
      MarkRequestCorrupt(name_, &job);
      jobs.push_back(std::move(job));
      continue;
    }
    if (!rows->IsNull(row, 2)) {
      v1::Job summary;
      // A corrupt summary is read as no summary: the events below rebuild the job.
      if (summary.ParseFromString(rows->Bytes(row, 2))) job.summary = std::move(summary);
    }
    jobs.push_back(std::move(job));
  }
  for (StoredJob& job : jobs) {
    if (job.summary.has_value()) continue;
    absl::StatusOr<std::vector<v1::JobEvent>> events = LoadEventsLocked(job.job_id, 1);
    if (!events.ok()) return events.status();
    job.events = *std::move(events);
  }
  return jobs;
}

absl::Status PostgresStore::DeleteJobs(const std::vector<std::string>& job_ids) {
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    for (const std::string& job_id : job_ids) {
      for (const char* sql :
           {"DELETE FROM job_events WHERE job_id = $1", "DELETE FROM checkpoints WHERE job_id = $1",
            "DELETE FROM jobs WHERE job_id = $1"}) {
        if (absl::Status deleted = Run(sql, Params().Text(job_id)).status(); !deleted.ok()) {
          return deleted;
        }
      }
    }
    return absl::OkStatus();
  });
}

absl::Status PostgresStore::InsertModel(const ModelRecord& model, const std::string& weights) {
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    if (absl::Status stored = PutModelLocked(model); !stored.ok()) return stored;
    return Run("INSERT INTO model_weights (model_id, weights) VALUES ($1, $2)",
               Params().Text(model.model_id).Bytes(weights))
        .status();
  });
}

absl::StatusOr<std::optional<std::string>> PostgresStore::GetModelWeights(
    const std::string& model_id) {
  if (HasNul(model_id)) return std::optional<std::string>();
  MutexLock lock(&mu_);
  absl::StatusOr<Result> rows =
      Run("SELECT weights FROM model_weights WHERE model_id = $1", Params().Text(model_id));
  if (!rows.ok()) return rows.status();
  if (rows->rows() == 0) return std::optional<std::string>();
  return std::optional<std::string>(rows->Bytes(0, 0));
}

absl::Status PostgresStore::PutModel(const ModelRecord& model) {
  MutexLock lock(&mu_);
  return PutModelLocked(model);
}

absl::Status PostgresStore::PutModelLocked(const ModelRecord& model) {
  v1::Model stored = ToModelProto(model);
  stored.set_deployed(false);
  return Run("INSERT INTO models (model_id, model, weights_path, created_unix_ns, dataset, "
             "job_id, size_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7) "
             "ON CONFLICT (model_id) DO UPDATE SET model = excluded.model, "
             "weights_path = excluded.weights_path, created_unix_ns = excluded.created_unix_ns, "
             "dataset = excluded.dataset, job_id = excluded.job_id, "
             "size_bytes = excluded.size_bytes",
             Params()
                 .Text(model.model_id)
                 .Bytes(stored.SerializeAsString())
                 .Text(model.weights_path)
                 .Int(absl::ToUnixNanos(model.created))
                 .Text(model.dataset)
                 .Text(model.job_id)
                 .Int(model.size_bytes))
      .status();
}

absl::Status PostgresStore::UpdateModel(const ModelRecord& model) {
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    // Locks the row, so a concurrent delete waits for this update or this update sees it gone.
    absl::StatusOr<Result> row =
        Run("SELECT 1 FROM models WHERE model_id = $1 FOR UPDATE", Params().Text(model.model_id));
    if (!row.ok()) return row.status();
    if (row->rows() == 0) return ModelNotFoundError(model.model_id);
    return PutModelLocked(model);
  });
}

absl::Status PostgresStore::PutModels(const std::vector<ModelRecord>& models) {
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    for (const ModelRecord& model : models) {
      if (absl::Status stored = PutModelLocked(model); !stored.ok()) return stored;
    }
    return absl::OkStatus();
  });
}

absl::Status PostgresStore::PutJobs(const std::vector<StoredJob>& jobs) {
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    for (const StoredJob& job : jobs) {
      if (absl::Status stored =
              InsertJobLocked(job.job_id, job.request, job.owner, absl::ZeroDuration());
          !stored.ok()) {
        return stored;
      }
      for (const v1::JobEvent& event : job.events) {
        if (absl::Status stored = AppendEventLocked(event); !stored.ok()) return stored;
      }
      if (job.summary.has_value()) {
        if (absl::Status stored = PutJobSummaryLocked(job.job_id, *job.summary); !stored.ok()) {
          return stored;
        }
      }
    }
    return absl::OkStatus();
  });
}

absl::Status PostgresStore::DeleteModel(const std::string& model_id) {
  if (HasNul(model_id)) return ModelNotFoundError(model_id);
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    absl::StatusOr<Result> deleted =
        Run("DELETE FROM models WHERE model_id = $1", Params().Text(model_id));
    if (!deleted.ok()) return deleted.status();
    if (deleted->affected() == 0) return ModelNotFoundError(model_id);
    // So that the other replicas drop it from memory too (DeletedModelsAfter).
    return Run("INSERT INTO model_deletions (model_id) VALUES ($1)", Params().Text(model_id))
        .status();
  });
}

absl::StatusOr<ModelDeletions> PostgresStore::DeletedModelsAfter(int64_t position) {
  MutexLock lock(&mu_);
  // Position -1: where the log ends now, without reading it.
  if (position < 0) {
    absl::StatusOr<Result> last =
        Run("SELECT coalesce(max(position), 0)::BIGINT FROM model_deletions", Params());
    if (!last.ok()) return last.status();
    return ModelDeletions{{}, last->Int(0, 0)};
  }
  absl::StatusOr<Result> rows =
      Run("SELECT position, model_id FROM model_deletions WHERE position > $1 ORDER BY position",
          Params().Int(position));
  if (!rows.ok()) return rows.status();
  ModelDeletions deletions{{}, position};
  for (int row = 0; row < rows->rows(); ++row) {
    deletions.position = rows->Int(row, 0);
    deletions.model_ids.push_back(rows->Bytes(row, 1));
  }
  return deletions;
}

absl::StatusOr<std::optional<ModelRecord>> PostgresStore::GetModel(const std::string& model_id) {
  MutexLock lock(&mu_);
  return GetModelLocked(model_id);
}

absl::StatusOr<std::optional<ModelRecord>> PostgresStore::GetModelLocked(
    const std::string& model_id) {
  if (HasNul(model_id)) return std::optional<ModelRecord>();
  absl::StatusOr<Result> rows =
      Run("SELECT model, weights_path FROM models WHERE model_id = $1", Params().Text(model_id));
  if (!rows.ok()) return rows.status();
  if (rows->rows() == 0) return std::optional<ModelRecord>();
  v1::Model model;
  if (!model.ParseFromString(rows->Bytes(0, 0))) {
    return absl::DataLossError(absl::StrCat("model ", model_id, " in ", name_, " is corrupt"));
  }
  return std::optional<ModelRecord>(FromModelProto(model, rows->Bytes(0, 1)));
}

absl::StatusOr<std::vector<ModelRecord>> PostgresStore::ListModels(const ModelQuery& query) {
  std::vector<ModelRecord> models;
  if (HasNul(query.dataset) || HasNul(query.job_id)) return models;
  // Only the conditions the query uses, numbered in order, so that the planner walks the one
  // index that has both the filter and the order and stops after `limit` rows.
  Params params;
  params.Int(query.created_after_unix_ns);
  std::string sql = "SELECT model_id, model, weights_path FROM models WHERE created_unix_ns > $1";
  if (!query.dataset.empty()) {
    params.Text(query.dataset);
    absl::StrAppend(&sql, " AND dataset = $", params.size());
  }
  if (!query.job_id.empty()) {
    params.Text(query.job_id);
    absl::StrAppend(&sql, " AND job_id = $", params.size());
  }
  if (query.after.has_value()) {
    params.Int(query.after->created_unix_ns).Text(query.after->model_id);
    absl::StrAppend(&sql, " AND (created_unix_ns, model_id) < ($", params.size() - 1, ", $",
                    params.size(), ")");
  }
  params.Int(query.limit);
  absl::StrAppend(&sql, " ORDER BY created_unix_ns DESC, model_id DESC LIMIT $", params.size());
  MutexLock lock(&mu_);
  absl::StatusOr<Result> rows = Run(sql, params);
  if (!rows.ok()) return rows.status();
  for (int row = 0; row < rows->rows(); ++row) {
    v1::Model model;
    if (!model.ParseFromString(rows->Bytes(row, 1))) {
      return absl::DataLossError(
          absl::StrCat("model ", rows->Bytes(row, 0), " in ", name_, " is corrupt"));
    }
    models.push_back(FromModelProto(model, rows->Bytes(row, 2)));
  }
  return models;
}

absl::StatusOr<ModelTotals> PostgresStore::GetModelTotals() {
  MutexLock lock(&mu_);
  absl::StatusOr<Result> sums =
      Run("SELECT count(*)::BIGINT, coalesce(sum(size_bytes), 0)::BIGINT FROM models", Params());
  if (!sums.ok()) return sums.status();
  ModelTotals totals;
  totals.count = sums->Int(0, 0);
  totals.bytes = sums->Int(0, 1);
  absl::StatusOr<Result> largest =
      Run("SELECT model_id, size_bytes FROM models ORDER BY size_bytes DESC LIMIT 1", Params());
  if (!largest.ok()) return largest.status();
  if (largest->rows() > 0) {
    totals.largest_model_id = largest->Bytes(0, 0);
    totals.largest_bytes = largest->Int(0, 1);
  }
  return totals;
}

absl::Status PostgresStore::SetDeployedModelId(const std::string& model_id) {
  MutexLock lock(&mu_);
  return Run("INSERT INTO settings (key, value) VALUES ($1, $2) "
             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
             Params().Text(kDeployedModelKey).Text(model_id))
      .status();
}

absl::StatusOr<std::string> PostgresStore::DeployedModelId() {
  MutexLock lock(&mu_);
  absl::StatusOr<Result> rows =
      Run("SELECT value FROM settings WHERE key = $1", Params().Text(kDeployedModelKey));
  if (!rows.ok()) return rows.status();
  return rows->rows() == 0 ? std::string() : rows->Bytes(0, 0);
}

absl::Status PostgresStore::PutCheckpoint(const StoredCheckpoint& checkpoint) {
  MutexLock lock(&mu_);
  Params params;
  params.Text(checkpoint.job_id)
      .Int(checkpoint.epoch)
      .Int(checkpoint.batch)
      .Text(checkpoint.path)
      .Text(checkpoint.sha256)
      .Bytes(checkpoint.bytes);
  constexpr char kReplace[] =
      " ON CONFLICT (job_id) DO UPDATE SET epoch = excluded.epoch, batch = excluded.batch, "
      "path = excluded.path, sha256 = excluded.sha256, bytes = excluded.bytes";
  if (fence_.empty()) {
    return Run(absl::StrCat("INSERT INTO checkpoints (job_id, epoch, batch, path, sha256, bytes) "
                            "VALUES ($1, $2, $3, $4, $5, $6)",
                            kReplace),
               params)
        .status();
  }
  // As AppendEventLocked: only while this replica owns the job.
  absl::StatusOr<Result> stored =
      Run(absl::StrCat("INSERT INTO checkpoints (job_id, epoch, batch, path, sha256, bytes) "
                       "SELECT $1, $2, $3, $4, $5, $6 FROM jobs WHERE job_id = $1 AND owner = $7 "
                       "FOR SHARE",
                       kReplace),
          params.Text(fence_));
  if (!stored.ok()) return stored.status();
  if (stored->affected() == 0) return JobTakenOverError(checkpoint.job_id);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<StoredCheckpoint>> PostgresStore::GetCheckpoint(
    const std::string& job_id) {
  if (HasNul(job_id)) return std::optional<StoredCheckpoint>();
  MutexLock lock(&mu_);
  absl::StatusOr<Result> rows =
      Run("SELECT epoch, batch, path, sha256, bytes FROM checkpoints WHERE job_id = $1",
          Params().Text(job_id));
  if (!rows.ok()) return rows.status();
  if (rows->rows() == 0) return std::optional<StoredCheckpoint>();
  StoredCheckpoint checkpoint;
  checkpoint.job_id = job_id;
  checkpoint.epoch = static_cast<int>(rows->Int(0, 0));
  checkpoint.batch = rows->Int(0, 1);
  checkpoint.path = rows->Bytes(0, 2);
  checkpoint.sha256 = rows->Bytes(0, 3);
  checkpoint.bytes = rows->Bytes(0, 4);
  return std::optional<StoredCheckpoint>(std::move(checkpoint));
}

absl::Status PostgresStore::DeleteCheckpoint(const std::string& job_id) {
  if (HasNul(job_id)) return absl::OkStatus();
  MutexLock lock(&mu_);
  return Run("DELETE FROM checkpoints WHERE job_id = $1", Params().Text(job_id)).status();
}

absl::Status PostgresStore::InsertDataset(const StoredDataset& dataset) {
  MutexLock lock(&mu_);
  absl::Status inserted =
      Run("INSERT INTO datasets (name, path, registered_unix_ms) VALUES ($1, $2, $3)",
          Params().Text(dataset.name).Text(dataset.path).Int(dataset.registered_unix_ms))
          .status();
  if (absl::IsAlreadyExists(inserted)) {
    return absl::AlreadyExistsError(absl::StrCat("dataset \"", dataset.name, "\" already exists"));
  }
  return inserted;
}

absl::StatusOr<std::vector<StoredDataset>> PostgresStore::LoadDatasets() {
  MutexLock lock(&mu_);
  absl::StatusOr<Result> rows =
      Run("SELECT name, path, registered_unix_ms FROM datasets ORDER BY name", Params());
  if (!rows.ok()) return rows.status();
  std::vector<StoredDataset> datasets;
  for (int row = 0; row < rows->rows(); ++row) {
    datasets.push_back(StoredDataset{rows->Bytes(row, 0), rows->Bytes(row, 1), rows->Int(row, 2)});
  }
  return datasets;
}

absl::StatusOr<JobLeaseRenewal> PostgresStore::RenewJobLeases(const std::string& owner,
                                                              absl::Duration lease) {
  MutexLock lock(&mu_);
  absl::StatusOr<Result> rows = Run(
      absl::StrCat("UPDATE jobs SET lease_until_unix_ns = ", kNowNs,
                   " + $2 WHERE owner = $1 AND summary IS NULL RETURNING job_id, cancel_reason"),
      Params().Text(owner).Int(absl::ToInt64Nanoseconds(lease)));
  if (!rows.ok()) return rows.status();
  JobLeaseRenewal renewal;
  for (int row = 0; row < rows->rows(); ++row) {
    renewal.held.insert(rows->Bytes(row, 0));
    if (!rows->IsNull(row, 1)) renewal.cancel_requests[rows->Bytes(row, 0)] = rows->Bytes(row, 1);
  }
  return renewal;
}

absl::Status PostgresStore::ReleaseJobLeases(const std::string& owner) {
  MutexLock lock(&mu_);
  return Run("UPDATE jobs SET lease_until_unix_ns = 0 WHERE owner = $1 AND summary IS NULL",
             Params().Text(owner))
      .status();
}

absl::StatusOr<std::vector<StoredJob>> PostgresStore::ClaimExpiredJobs(const std::string& owner,
                                                                       absl::Duration lease) {
  MutexLock lock(&mu_);
  std::vector<StoredJob> claimed;
  absl::Status status = Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    // A row another replica is claiming right now is skipped, not waited for; one it claimed
    // and committed meanwhile is checked again after the lock and no longer matches.
    absl::StatusOr<Result> rows =
        Run(absl::StrCat("UPDATE jobs SET owner = $1, lease_until_unix_ns = ", kNowNs,
                         " + $2 WHERE position IN (SELECT position FROM jobs WHERE summary IS NULL "
                         "AND lease_until_unix_ns < ",
                         kNowNs, " ORDER BY position FOR UPDATE SKIP LOCKED) RETURNING job_id"),
            Params().Text(owner).Int(absl::ToInt64Nanoseconds(lease)));
    if (!rows.ok()) return rows.status();
    for (int row = 0; row < rows->rows(); ++row) {
      absl::StatusOr<std::vector<StoredJob>> job = LoadJobsLocked(rows->Bytes(row, 0));
      if (!job.ok()) return job.status();
      for (StoredJob& one : *job) claimed.push_back(std::move(one));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  std::sort(claimed.begin(), claimed.end(),
            [](const StoredJob& a, const StoredJob& b) { return a.position < b.position; });
  return claimed;
}

absl::Status PostgresStore::RequestJobCancel(const std::string& job_id, const std::string& reason) {
  if (HasNul(job_id)) return absl::NotFoundError(absl::StrCat("no unfinished job ", job_id));
  MutexLock lock(&mu_);
  absl::StatusOr<Result> updated =
      Run("UPDATE jobs SET cancel_reason = COALESCE(cancel_reason, $2) "
          "WHERE job_id = $1 AND summary IS NULL",
          Params().Text(job_id).Text(reason));
  if (!updated.ok()) return updated.status();
  if (updated->affected() == 0) {
    return absl::NotFoundError(absl::StrCat("no unfinished job ", job_id, " in ", name_));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> PostgresStore::CancelRequests(
    const std::string& owner) {
  MutexLock lock(&mu_);
  absl::StatusOr<Result> rows =
      Run("SELECT job_id, cancel_reason FROM jobs WHERE owner = $1 AND summary IS NULL "
          "AND cancel_reason IS NOT NULL",
          Params().Text(owner));
  if (!rows.ok()) return rows.status();
  std::map<std::string, std::string> requests;
  for (int row = 0; row < rows->rows(); ++row) requests[rows->Bytes(row, 0)] = rows->Bytes(row, 1);
  return requests;
}

absl::StatusOr<std::vector<JobPosition>> PostgresStore::JobsAfter(int64_t position) {
  MutexLock lock(&mu_);
  absl::StatusOr<Result> rows =
      Run("SELECT position, job_id FROM jobs WHERE position > $1 ORDER BY position",
          Params().Int(position));
  if (!rows.ok()) return rows.status();
  std::vector<JobPosition> jobs;
  for (int row = 0; row < rows->rows(); ++row) {
    jobs.push_back(JobPosition{rows->Int(row, 0), rows->Bytes(row, 1)});
  }
  return jobs;
}

absl::Status PostgresStore::CheckIntegrity() { return absl::OkStatus(); }

absl::Status PostgresStore::ReclaimSpace() {
  MutexLock lock(&mu_);
  // VACUUM cannot run inside a transaction block; PQexec sends it on its own.
  return Exec("VACUUM");
}

int64_t PostgresStore::FileBytes() const {
  MutexLock lock(&mu_);
  absl::StatusOr<Result> rows = Run("SELECT pg_database_size(current_database())", Params());
  return rows.ok() && rows->rows() > 0 ? rows->Int(0, 0) : 0;
}

}  // namespace classifier
