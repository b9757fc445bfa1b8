#include "server/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"

namespace classifier {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  position INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL UNIQUE,
  request BLOB NOT NULL,
  summary BLOB
);
CREATE TABLE IF NOT EXISTS job_events (
  job_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  event BLOB NOT NULL,
  PRIMARY KEY (job_id, sequence)
);
CREATE TABLE IF NOT EXISTS models (
  position INTEGER PRIMARY KEY AUTOINCREMENT,
  model_id TEXT NOT NULL UNIQUE,
  model BLOB NOT NULL,
  weights_path TEXT NOT NULL,
  created_unix_ns INTEGER NOT NULL DEFAULT 0,
  dataset TEXT NOT NULL DEFAULT '',
  job_id TEXT NOT NULL DEFAULT '',
  size_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
  job_id TEXT PRIMARY KEY,
  epoch INTEGER NOT NULL,
  batch INTEGER NOT NULL,
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS datasets (
  name TEXT PRIMARY KEY,
  path TEXT NOT NULL,
  registered_unix_ms INTEGER NOT NULL
);
)sql";

// The models' indexes, made once their columns exist (a version 2 database gains them in
// Migrate): one per order ListModels reads in (every model, those of one dataset, those of one
// job: each newest first), and the sizes, for ModelTotals' largest model.
constexpr char kModelIndexes[] = R"sql(
CREATE INDEX IF NOT EXISTS models_by_created ON models (created_unix_ns, model_id);
CREATE INDEX IF NOT EXISTS models_by_dataset ON models (dataset, created_unix_ns, model_id);
CREATE INDEX IF NOT EXISTS models_by_job ON models (job_id, created_unix_ns, model_id);
CREATE INDEX IF NOT EXISTS models_by_size ON models (size_bytes);
)sql";

constexpr char kDeployedModelKey[] = "deployed_model_id";

// PRAGMA user_version of a database this code wrote. 0: before versions were kept (no
// auto-vacuum); 1: incremental auto-vacuum, so space freed by retention goes back to the file
// system (ReclaimSpace); 2: jobs.summary, a finished job's final snapshot, so start-up reads one
// row per finished job instead of its whole event log; 3: the models' created time, dataset,
// job and size as indexed columns, so the registry reads a page or one model from the store on
// demand instead of every record at start.
constexpr int64_t kSchemaVersion = 3;

// A prepared statement, finalized when it goes out of scope.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  Statement& Bind(int index, const std::string& text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindBlob(int index, const std::string& bytes) {
    sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(int index, int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  std::string Text(int column) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return text == nullptr ? std::string() : std::string(text, sqlite3_column_bytes(stmt_, column));
  }
  std::string Blob(int column) const {
    const auto* blob = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
    return blob == nullptr ? std::string() : std::string(blob, sqlite3_column_bytes(stmt_, column));
  }
  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), error);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string message = db == nullptr ? "out of memory" : sqlite3_errmsg(db);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open the database ", path, ": ", message));
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, path));
  MutexLock lock(&store->mu_);
  if (absl::Status migrated = store->Migrate(); !migrated.ok()) {
    return absl::Status(migrated.code(),
                        absl::StrCat("cannot use the database ", path, ": ", migrated.message()));
  }
  return store;
}

absl::Status SqliteStore::DamagedError(const std::string& message) const {
  return absl::DataLossError(absl::StrCat(
      message, "; the database file ", path_,
      " is damaged: stop the server, keep a copy, and restore it from a backup or rebuild it "
      "with `sqlite3 ",
      path_, " .recover | sqlite3 NEW.db`"));
}

absl::Status SqliteStore::CheckIntegrity() {
  MutexLock lock(&mu_);
  // Pages, cells and free lists; not the rows' contents, which their readers check (records
  // parse, weights and checkpoints match their SHA-256).
  Statement check(db_, "PRAGMA quick_check(1);");
  if (!check.ok()) return Error("cannot check the database");
  const int rc = check.Step();
  if (rc != SQLITE_ROW) return Error("cannot check the database");
  if (check.Text(0) == "ok") return absl::OkStatus();
  return DamagedError(absl::StrCat("quick_check: ", check.Text(0)));
}

absl::StatusOr<int64_t> SqliteStore::QueryInt(const std::string& sql) {
  Statement select(db_, sql.c_str());
  if (!select.ok() || select.Step() != SQLITE_ROW) return Error(absl::StrCat("cannot run ", sql));
  return select.Int(0);
}

absl::Status SqliteStore::Migrate() {
  absl::StatusOr<int64_t> version = QueryInt("PRAGMA user_version;");
  if (!version.ok()) return version.status();
  if (*version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("it was written by a newer server (schema version ", *version,
                     "; this one knows up to ", kSchemaVersion, ")"));
  }
  absl::StatusOr<int64_t> tables = QueryInt("SELECT count(*) FROM sqlite_master;");
  if (!tables.ok()) return tables.status();
  // auto_vacuum is fixed when the first table is created; an older database (version 0) is
  // rewritten once with VACUUM to take it.
  if (absl::Status status = Exec("PRAGMA auto_vacuum=INCREMENTAL;"); !status.ok()) return status;
  if (*tables > 0 && *version < 1) {
    if (absl::Status status = Exec("VACUUM;"); !status.ok()) return status;
  }
  // WAL: readers never block the writer; FULL: a committed write survives a power cut.
  for (const char* sql : {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;", kSchema}) {
    if (absl::Status status = Exec(sql); !status.ok()) return status;
  }
  // Jobs finished before version 2 have no summary: JobManager writes theirs at start.
  absl::StatusOr<int64_t> has_summary =
      QueryInt("SELECT count(*) FROM pragma_table_info('jobs') WHERE name = 'summary';");
  if (!has_summary.ok()) return has_summary.status();
  if (*has_summary == 0) {
    if (absl::Status status = Exec("ALTER TABLE jobs ADD COLUMN summary BLOB;"); !status.ok()) {
      return status;
    }
  }
  if (absl::Status status = AddModelColumns(); !status.ok()) return status;
  if (absl::Status status = Exec(kModelIndexes); !status.ok()) return status;
  return Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion, ";"));
}

absl::Status SqliteStore::AddModelColumns() {
  absl::StatusOr<int64_t> has_columns =
      QueryInt("SELECT count(*) FROM pragma_table_info('models') WHERE name = 'created_unix_ns';");
  if (!has_columns.ok()) return has_columns.status();
  if (*has_columns > 0) return absl::OkStatus();
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    for (const char* sql :
         {"ALTER TABLE models ADD COLUMN created_unix_ns INTEGER NOT NULL "
          "DEFAULT 0;",
          "ALTER TABLE models ADD COLUMN dataset TEXT NOT NULL DEFAULT '';",
          "ALTER TABLE models ADD COLUMN job_id TEXT NOT NULL DEFAULT '';",
          "ALTER TABLE models ADD COLUMN size_bytes INTEGER NOT NULL DEFAULT 0;"}) {
      if (absl::Status status = Exec(sql); !status.ok()) return status;
    }
    // The columns' values come from each row's record, written again in full.
    std::vector<ModelRecord> models;
    Statement select(db_, "SELECT model_id, model, weights_path FROM models");
    if (!select.ok()) return Error("cannot read models");
    int rc;
    while ((rc = select.Step()) == SQLITE_ROW) {
      absl::StatusOr<ModelRecord> model =
          ReadModelRow(select.Text(0), select.Blob(1), select.Text(2));
      if (!model.ok()) return model.status();
      models.push_back(*std::move(model));
    }
    if (rc != SQLITE_DONE) return Error("cannot read models");
    for (const ModelRecord& model : models) {
      if (absl::Status stored = PutModelLocked(model); !stored.ok()) return stored;
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<ModelRecord> SqliteStore::ReadModelRow(const std::string& model_id,
                                                      const std::string& bytes,
                                                      std::string weights_path) const {
  v1::Model model;
  if (!model.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("model ", model_id, " in ", path_, " is corrupt"));
  }
  return FromModelProto(model, std::move(weights_path));
}

SqliteStore::SqliteStore(sqlite3* db, std::string path) : path_(std::move(path)), db_(db) {}

SqliteStore::~SqliteStore() {
  MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status SqliteStore::Exec(const std::string& sql) {
  char* message = nullptr;
  if (const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message); rc != SQLITE_OK) {
    std::string text = message == nullptr ? "unknown error" : message;
    sqlite3_free(message);
    if ((rc & 0xff) == SQLITE_FULL) {
      return FileSystemFullError(absl::StrCat("sqlite: ", text, " in ", path_));
    }
    if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB) {
      return DamagedError(absl::StrCat("sqlite: ", text));
    }
    return absl::InternalError(absl::StrCat("sqlite: ", text));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::Error(const std::string& what) {
  std::string message = absl::StrCat(what, " in ", path_, ": ", sqlite3_errmsg(db_));
  // The transaction rolled back: nothing is half-written.
  const int code = sqlite3_extended_errcode(db_) & 0xff;
  if (code == SQLITE_FULL) return FileSystemFullError(message);
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return DamagedError(message);
  return absl::InternalError(std::move(message));
}

absl::Status SqliteStore::NotShared() const {
  return absl::FailedPreconditionError(
      absl::StrCat("the SQLite store ", path_, " belongs to one server: it has no replicas"));
}

absl::Status SqliteStore::InsertJob(const std::string& job_id, const v1::TrainRequest& request,
                                    const std::string& /*owner*/, absl::Duration /*lease*/) {
  MutexLock lock(&mu_);
  return InsertJobLocked(job_id, request);
}

absl::Status SqliteStore::InsertJobLocked(const std::string& job_id,
                                          const v1::TrainRequest& request) {
  Statement insert(db_, "INSERT INTO jobs (job_id, request) VALUES (?, ?)");
  if (!insert.ok() ||
      insert.Bind(1, job_id).BindBlob(2, request.SerializeAsString()).Step() != SQLITE_DONE) {
    return Error(absl::StrCat("cannot store job ", job_id));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::AppendEvent(const v1::JobEvent& event) {
  MutexLock lock(&mu_);
  return AppendEventLocked(event);
}

absl::Status SqliteStore::AppendEventLocked(const v1::JobEvent& event) {
  Statement insert(db_, "INSERT INTO job_events (job_id, sequence, event) VALUES (?, ?, ?)");
  if (!insert.ok() || insert.Bind(1, event.job_id())
                              .Bind(2, event.sequence())
                              .BindBlob(3, event.SerializeAsString())
                              .Step() != SQLITE_DONE) {
    return Error(absl::StrCat("cannot store event ", event.sequence(), " of job ", event.job_id()));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::AppendFinalEvent(const v1::JobEvent& event, const v1::Job& summary) {
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    if (absl::Status stored = AppendEventLocked(event); !stored.ok()) return stored;
    return PutJobSummaryLocked(event.job_id(), summary);
  });
}

absl::Status SqliteStore::PutJobSummary(const std::string& job_id, const v1::Job& summary) {
  MutexLock lock(&mu_);
  return PutJobSummaryLocked(job_id, summary);
}

absl::Status SqliteStore::PutJobSummaryLocked(const std::string& job_id, const v1::Job& summary) {
  Statement update(db_, "UPDATE jobs SET summary = ? WHERE job_id = ?");
  if (!update.ok() ||
      update.BindBlob(1, summary.SerializeAsString()).Bind(2, job_id).Step() != SQLITE_DONE) {
    return Error(absl::StrCat("cannot store the summary of job ", job_id));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::JobEvent>> SqliteStore::LoadEvents(const std::string& job_id,
                                                                  int64_t from_sequence) {
  MutexLock lock(&mu_);
  return LoadEventsLocked(job_id, from_sequence);
}

absl::StatusOr<std::vector<v1::JobEvent>> SqliteStore::LoadEventsLocked(const std::string& job_id,
                                                                        int64_t from_sequence) {
  std::vector<v1::JobEvent> events;
  Statement select(db_,
                   "SELECT sequence, event FROM job_events WHERE job_id = ? AND sequence >= ? "
                   "ORDER BY sequence");
  if (!select.ok()) return Error("cannot read events");
  select.Bind(1, job_id).Bind(2, std::max<int64_t>(from_sequence, 1));
  int64_t expected = std::max<int64_t>(from_sequence, 1);
  while (select.Step() == SQLITE_ROW) {
    v1::JobEvent event;
    // Stop at a gap or a corrupt row: the log is only ever replayed as a prefix.
    if (select.Int(0) != expected || !event.ParseFromString(select.Blob(1))) break;
    events.push_back(std::move(event));
    ++expected;
  }
  return events;
}

absl::StatusOr<std::vector<StoredJob>> SqliteStore::LoadJobs() {
  MutexLock lock(&mu_);
  return LoadJobsLocked(std::nullopt);
}

absl::StatusOr<std::optional<StoredJob>> SqliteStore::LoadJob(const std::string& job_id) {
  MutexLock lock(&mu_);
  absl::StatusOr<std::vector<StoredJob>> jobs = LoadJobsLocked(job_id);
  if (!jobs.ok()) return jobs.status();
  if (jobs->empty()) return std::optional<StoredJob>();
  return std::optional<StoredJob>(std::move(jobs->front()));
}

absl::StatusOr<std::vector<StoredJob>> SqliteStore::LoadJobsLocked(
    const std::optional<std::string>& job_id) {
  std::vector<StoredJob> jobs;
  Statement select(db_, job_id.has_value() ? "SELECT job_id, request, summary, position FROM jobs "
                                             "WHERE job_id = ?"
                                           : "SELECT job_id, request, summary, position FROM jobs "
                                             "ORDER BY position");
  if (!select.ok()) return Error("cannot read jobs");
  if (job_id.has_value()) select.Bind(1, *job_id);
  int rc;
  while ((rc = select.Step()) == SQLITE_ROW) {
    StoredJob job;
    job.job_id = select.Text(0);
    job.position = select.Int(3);
    if (!job.request.ParseFromString(select.Blob(1))) {
      MarkRequestCorrupt(path_, &job);
      jobs.push_back(std::move(job));
      continue;
    }
    if (sqlite3_column_type(select.get(), 2) != SQLITE_NULL) {
      v1::Job summary;
      // A corrupt summary is read as no summary: the events below rebuild the job.
      if (summary.ParseFromString(select.Blob(2))) job.summary = std::move(summary);
    }
    jobs.push_back(std::move(job));
  }
  if (rc != SQLITE_DONE) return Error("cannot read jobs");
  for (StoredJob& job : jobs) {
    if (job.summary.has_value()) continue;
    absl::StatusOr<std::vector<v1::JobEvent>> events = LoadEventsLocked(job.job_id, 1);
    if (!events.ok()) return events.status();
    job.events = *std::move(events);
  }
  return jobs;
}

absl::Status SqliteStore::DeleteJobs(const std::vector<std::string>& job_ids) {
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    for (const std::string& job_id : job_ids) {
      for (const char* sql :
           {"DELETE FROM job_events WHERE job_id = ?", "DELETE FROM checkpoints WHERE job_id = ?",
            "DELETE FROM jobs WHERE job_id = ?"}) {
        Statement remove(db_, sql);
        if (!remove.ok() || remove.Bind(1, job_id).Step() != SQLITE_DONE) {
          return Error(absl::StrCat("cannot delete job ", job_id));
        }
      }
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteStore::ReclaimSpace() {
  MutexLock lock(&mu_);
  // Returns the free pages to the file system and folds the write-ahead log back, so the files
  // shrink after deletions.
  if (absl::Status status = Exec("PRAGMA incremental_vacuum;"); !status.ok()) return status;
  return Exec("PRAGMA wal_checkpoint(TRUNCATE);");
}

int64_t SqliteStore::FileBytes() const {
  int64_t total = 0;
  for (const std::string& file : {path_, path_ + "-wal"}) {
    std::error_code error;
    const uintmax_t size = std::filesystem::file_size(file, error);
    if (!error) total += static_cast<int64_t>(size);
  }
  return total;
}

absl::Status SqliteStore::Transaction(const std::function<absl::Status()>& body) {
  if (absl::Status begun = Exec("BEGIN IMMEDIATE;"); !begun.ok()) return begun;
  absl::Status status = body();
  if (status.ok()) status = Exec("COMMIT;");
  if (!status.ok()) Exec("ROLLBACK;").IgnoreError();
  return status;
}

absl::Status SqliteStore::PutModels(const std::vector<ModelRecord>& models) {
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    for (const ModelRecord& model : models) {
      if (absl::Status stored = PutModelLocked(model); !stored.ok()) return stored;
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteStore::PutJobs(const std::vector<StoredJob>& jobs) {
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    for (const StoredJob& job : jobs) {
      if (absl::Status stored = InsertJobLocked(job.job_id, job.request); !stored.ok()) {
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

absl::Status SqliteStore::InsertModel(const ModelRecord& model, const std::string& /*weights*/) {
  MutexLock lock(&mu_);
  return PutModelLocked(model);
}

absl::StatusOr<std::optional<std::string>> SqliteStore::GetModelWeights(
    const std::string& /*model_id*/) {
  return std::optional<std::string>();
}

absl::Status SqliteStore::PutModel(const ModelRecord& model) {
  MutexLock lock(&mu_);
  return PutModelLocked(model);
}

absl::Status SqliteStore::PutModelLocked(const ModelRecord& model) {
  v1::Model stored = ToModelProto(model);
  stored.set_deployed(false);
  Statement insert(db_,
                   "INSERT INTO models (model_id, model, weights_path, created_unix_ns, dataset, "
                   "job_id, size_bytes) VALUES (?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT(model_id) DO UPDATE SET model = excluded.model, "
                   "weights_path = excluded.weights_path, "
                   "created_unix_ns = excluded.created_unix_ns, dataset = excluded.dataset, "
                   "job_id = excluded.job_id, size_bytes = excluded.size_bytes");
  if (!insert.ok() || insert.Bind(1, stored.model_id())
                              .BindBlob(2, stored.SerializeAsString())
                              .Bind(3, model.weights_path)
                              .Bind(4, absl::ToUnixNanos(model.created))
                              .Bind(5, model.dataset)
                              .Bind(6, model.job_id)
                              .Bind(7, model.size_bytes)
                              .Step() != SQLITE_DONE) {
    return Error(absl::StrCat("cannot store model ", stored.model_id()));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::UpdateModel(const ModelRecord& model) {
  MutexLock lock(&mu_);
  return Transaction([&] {
    mu_.AssertHeld();  // Transaction runs the body under the lock.
    Statement select(db_, "SELECT 1 FROM models WHERE model_id = ?");
    if (!select.ok()) return Error("cannot read models");
    const int rc = select.Bind(1, model.model_id).Step();
    if (rc == SQLITE_DONE) return ModelNotFoundError(model.model_id);
    if (rc != SQLITE_ROW) return Error("cannot read models");
    return PutModelLocked(model);
  });
}

absl::Status SqliteStore::DeleteModel(const std::string& model_id) {
  MutexLock lock(&mu_);
  Statement remove(db_, "DELETE FROM models WHERE model_id = ?");
  if (!remove.ok() || remove.Bind(1, model_id).Step() != SQLITE_DONE) {
    return Error(absl::StrCat("cannot delete model ", model_id));
  }
  if (sqlite3_changes(db_) == 0) return ModelNotFoundError(model_id);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ModelRecord>> SqliteStore::GetModel(const std::string& model_id) {
  MutexLock lock(&mu_);
  Statement select(db_, "SELECT model, weights_path FROM models WHERE model_id = ?");
  if (!select.ok()) return Error("cannot read models");
  const int rc = select.Bind(1, model_id).Step();
  if (rc == SQLITE_DONE) return std::optional<ModelRecord>();
  if (rc != SQLITE_ROW) return Error("cannot read models");
  absl::StatusOr<ModelRecord> model = ReadModelRow(model_id, select.Blob(0), select.Text(1));
  if (!model.ok()) return model.status();
  return std::optional<ModelRecord>(*std::move(model));
}

absl::StatusOr<std::vector<ModelRecord>> SqliteStore::ListModels(const ModelQuery& query) {
  // Only the conditions the query uses, so that SQLite walks the one index that has both the
  // filter and the order (models_by_dataset, models_by_job or models_by_created) and stops after
  // `limit` rows, however many models there are.
  std::string sql = "SELECT model_id, model, weights_path FROM models WHERE created_unix_ns > ?1";
  if (!query.dataset.empty()) absl::StrAppend(&sql, " AND dataset = ?2");
  if (!query.job_id.empty()) absl::StrAppend(&sql, " AND job_id = ?3");
  if (query.after.has_value()) absl::StrAppend(&sql, " AND (created_unix_ns, model_id) < (?4, ?5)");
  absl::StrAppend(&sql, " ORDER BY created_unix_ns DESC, model_id DESC LIMIT ?6");
  MutexLock lock(&mu_);
  Statement select(db_, sql.c_str());
  if (!select.ok()) return Error("cannot read models");
  select.Bind(1, query.created_after_unix_ns).Bind(6, static_cast<int64_t>(query.limit));
  if (!query.dataset.empty()) select.Bind(2, query.dataset);
  if (!query.job_id.empty()) select.Bind(3, query.job_id);
  if (query.after.has_value()) {
    select.Bind(4, query.after->created_unix_ns).Bind(5, query.after->model_id);
  }
  std::vector<ModelRecord> models;
  int rc;
  while ((rc = select.Step()) == SQLITE_ROW) {
    absl::StatusOr<ModelRecord> model =
        ReadModelRow(select.Text(0), select.Blob(1), select.Text(2));
    if (!model.ok()) return model.status();
    models.push_back(*std::move(model));
  }
  if (rc != SQLITE_DONE) return Error("cannot read models");
  return models;
}

absl::StatusOr<ModelTotals> SqliteStore::GetModelTotals() {
  MutexLock lock(&mu_);
  ModelTotals totals;
  Statement sums(db_, "SELECT count(*), coalesce(sum(size_bytes), 0) FROM models");
  if (!sums.ok() || sums.Step() != SQLITE_ROW) return Error("cannot read models");
  totals.count = sums.Int(0);
  totals.bytes = sums.Int(1);
  Statement largest(db_,
                    "SELECT model_id, size_bytes FROM models ORDER BY size_bytes DESC LIMIT 1");
  if (!largest.ok()) return Error("cannot read models");
  const int rc = largest.Step();
  if (rc == SQLITE_ROW) {
    totals.largest_model_id = largest.Text(0);
    totals.largest_bytes = largest.Int(1);
  } else if (rc != SQLITE_DONE) {
    return Error("cannot read models");
  }
  return totals;
}

absl::Status SqliteStore::SetDeployedModelId(const std::string& model_id) {
  MutexLock lock(&mu_);
  Statement upsert(db_,
                   "INSERT INTO settings (key, value) VALUES (?, ?) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  if (!upsert.ok() ||
      upsert.Bind(1, std::string(kDeployedModelKey)).Bind(2, model_id).Step() != SQLITE_DONE) {
    return Error("cannot store the deployed model");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SqliteStore::DeployedModelId() {
  MutexLock lock(&mu_);
  Statement select(db_, "SELECT value FROM settings WHERE key = ?");
  if (!select.ok()) return Error("cannot read settings");
  select.Bind(1, std::string(kDeployedModelKey));
  const int rc = select.Step();
  if (rc == SQLITE_ROW) return select.Text(0);
  if (rc == SQLITE_DONE) return std::string();
  return Error("cannot read settings");
}

absl::Status SqliteStore::PutCheckpoint(const StoredCheckpoint& checkpoint) {
  MutexLock lock(&mu_);
  Statement upsert(
      db_,
      "INSERT INTO checkpoints (job_id, epoch, batch, path, sha256) VALUES (?, ?, ?, ?, ?) "
      "ON CONFLICT(job_id) DO UPDATE SET epoch = excluded.epoch, batch = excluded.batch, "
      "path = excluded.path, sha256 = excluded.sha256");
  if (!upsert.ok() || upsert.Bind(1, checkpoint.job_id)
                              .Bind(2, static_cast<int64_t>(checkpoint.epoch))
                              .Bind(3, checkpoint.batch)
                              .Bind(4, checkpoint.path)
                              .Bind(5, checkpoint.sha256)
                              .Step() != SQLITE_DONE) {
    return Error(absl::StrCat("cannot store the checkpoint of job ", checkpoint.job_id));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<StoredCheckpoint>> SqliteStore::GetCheckpoint(
    const std::string& job_id) {
  MutexLock lock(&mu_);
  Statement select(db_, "SELECT epoch, batch, path, sha256 FROM checkpoints WHERE job_id = ?");
  if (!select.ok()) return Error("cannot read checkpoints");
  select.Bind(1, job_id);
  const int rc = select.Step();
  if (rc == SQLITE_DONE) return std::optional<StoredCheckpoint>();
  if (rc != SQLITE_ROW) return Error("cannot read checkpoints");
  StoredCheckpoint checkpoint;
  checkpoint.job_id = job_id;
  checkpoint.epoch = static_cast<int>(select.Int(0));
  checkpoint.batch = select.Int(1);
  checkpoint.path = select.Text(2);
  checkpoint.sha256 = select.Text(3);
  return std::optional<StoredCheckpoint>(std::move(checkpoint));
}

absl::Status SqliteStore::DeleteCheckpoint(const std::string& job_id) {
  MutexLock lock(&mu_);
  Statement remove(db_, "DELETE FROM checkpoints WHERE job_id = ?");
  if (!remove.ok() || remove.Bind(1, job_id).Step() != SQLITE_DONE) {
    return Error(absl::StrCat("cannot delete the checkpoint of job ", job_id));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::InsertDataset(const StoredDataset& dataset) {
  MutexLock lock(&mu_);
  Statement insert(db_, "INSERT INTO datasets (name, path, registered_unix_ms) VALUES (?, ?, ?)");
  if (!insert.ok()) return Error(absl::StrCat("cannot store dataset ", dataset.name));
  const int rc =
      insert.Bind(1, dataset.name).Bind(2, dataset.path).Bind(3, dataset.registered_unix_ms).Step();
  if (rc == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError(absl::StrCat("dataset \"", dataset.name, "\" already exists"));
  }
  if (rc != SQLITE_DONE) return Error(absl::StrCat("cannot store dataset ", dataset.name));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredDataset>> SqliteStore::LoadDatasets() {
  MutexLock lock(&mu_);
  std::vector<StoredDataset> datasets;
  Statement select(db_, "SELECT name, path, registered_unix_ms FROM datasets ORDER BY name");
  if (!select.ok()) return Error("cannot read datasets");
  int rc;
  while ((rc = select.Step()) == SQLITE_ROW) {
    datasets.push_back(StoredDataset{select.Text(0), select.Text(1), select.Int(2)});
  }
  if (rc != SQLITE_DONE) return Error("cannot read datasets");
  return datasets;
}

}  // namespace classifier
