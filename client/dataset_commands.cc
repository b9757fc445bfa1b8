// The commands of datasets: datasets, register-dataset, samples.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/command_util.h"
#include "client/format.h"
#include "client/paging.h"
#include "client/pictures.h"

namespace classifier::cli {
namespace {

using grpc::ClientContext;

std::string ImageSize(int64_t height, int64_t width) { return absl::StrCat(height, "x", width); }

}  // namespace

int Datasets(const Invocation& invocation, const CommandEnvironment& env) {
  absl::StatusOr<Paging> paging = ReadPaging(invocation);
  if (!paging.ok()) return UsageFailed(env, paging.status());
  v1::ListDatasetsResponse response;
  const grpc::Status status = ListPages(
      env, invocation, &v1::Classifier::StubInterface::ListDatasets, v1::ListDatasetsRequest(),
      *paging, [](v1::ListDatasetsResponse* r) { return r->mutable_datasets(); }, &response);
  if (!status.ok()) return RpcFailed(env, status);
  NoteMore(response.next_page_token(), "datasets", env);
  if (invocation.Bool("json")) {
    *env.out << ToJsonLine(response) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::DatasetInfo& d : response.datasets()) {
    const bool usable = d.error().empty();
    rows.push_back({d.name(), usable ? absl::StrCat(d.train_images()) : "-",
                    usable ? absl::StrCat(d.test_images()) : "-",
                    usable ? absl::StrCat(d.num_classes()) : "-",
                    usable ? ImageSize(d.image_height(), d.image_width()) : "-",
                    d.builtin() ? "built-in" : "registered", d.path()});
    // Only an unusable dataset has a note: the others' lines end without trailing spaces.
    if (!usable) rows.back().push_back("unavailable: " + d.error());
  }
  *env.out << FormatTable({"NAME", "TRAIN", "TEST", "CLASSES", "SIZE", "SOURCE", "PATH", "NOTE"},
                          rows);
  return kExitOk;
}

int RegisterDataset(const Invocation& invocation, const CommandEnvironment& env) {
  v1::RegisterDatasetRequest request;
  request.set_name(invocation.args[0]);
  request.set_path(invocation.args[1]);
  v1::DatasetInfo info;
  ClientContext context;
  // The server reads every file in full: allow for a big set on a slow disk.
  SetDeadline(&context, invocation, kEvaluateTimeoutSeconds);
  const grpc::Status status = env.classifier->RegisterDataset(&context, request, &info);
  if (!status.ok()) return RpcFailed(env, status);
  if (invocation.Bool("json")) {
    *env.out << ToJsonLine(info) << "\n";
  } else {
    *env.out << absl::StrFormat("registered %s (%s): %d train + %d test images of %s, %d classes\n",
                                info.name(), info.path(), info.train_images(), info.test_images(),
                                ImageSize(info.image_height(), info.image_width()),
                                info.num_classes());
  }
  return kExitOk;
}

int Samples(const Invocation& invocation, const CommandEnvironment& env) {
  if (!invocation.Has("out")) {
    return UsageFailed(env, absl::InvalidArgumentError("samples needs --out FILE (a .png)"));
  }
  v1::GetDatasetSamplesRequest request;
  request.set_dataset(invocation.String("dataset", "mnist"));
  request.set_count(invocation.Int32("count"));
  request.set_seed(invocation.Uint64("seed"));
  const std::string split = absl::AsciiStrToLower(invocation.String("split", "train"));
  if (split == "train") {
    request.set_split(v1::DATASET_SPLIT_TRAIN);
  } else if (split == "test") {
    request.set_split(v1::DATASET_SPLIT_TEST);
  } else {
    return UsageFailed(
        env, absl::InvalidArgumentError(absl::StrCat("invalid value '", invocation.String("split"),
                                                     "' for --split: expected train or test")));
  }
  const int scale = invocation.Int32("scale", 1);
  const int columns = invocation.Int32("columns");
  if (scale < 1 || scale > 16 || columns < 0) {
    return UsageFailed(
        env, absl::InvalidArgumentError("--scale must be in [1, 16] and --columns at least 1"));
  }
  v1::GetDatasetSamplesResponse response;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status = env.classifier->GetDatasetSamples(&context, request, &response);
  if (!status.ok()) return RpcFailed(env, status);
  absl::StatusOr<SampleGrid> grid = LayOutSamples(response, columns, scale);
  if (!grid.ok()) {
    *env.err << "error: " << grid.status().message() << "\n";
    return kExitServerError;
  }
  absl::StatusOr<std::string> png = EncodeGridPng(*grid);
  if (!png.ok()) return LocalFailed(env, png.status());
  const std::string out = invocation.String("out");
  if (absl::Status written = WriteOutputFile(out, *png); !written.ok()) {
    return LocalFailed(env, written);
  }
  *env.out << absl::StrFormat(
      "saved %s: %d images of %s (%s split, seed %d), %d rows of %d, %dx%d pixels\n", out,
      response.labels_size(), response.dataset(), SplitName(response.split()), request.seed(),
      grid->rows, grid->columns, grid->width, grid->height);
  *env.out << "labels in grid order:\n";
  for (int row = 0; row < grid->rows; ++row) {
    std::string line;
    for (int column = 0; column < grid->columns; ++column) {
      const int i = row * grid->columns + column;
      if (i >= response.labels_size()) break;
      absl::StrAppend(&line, column == 0 ? "" : " ", response.labels(i));
    }
    *env.out << line << "\n";
  }
  return kExitOk;
}

// Not a dataset, but the same kind of list: the hosts that lend the server their cores.
int Workers(const Invocation& invocation, const CommandEnvironment& env) {
  v1::ListWorkersResponse response;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status =
      env.classifier->ListWorkers(&context, v1::ListWorkersRequest(), &response);
  if (!status.ok()) return RpcFailed(env, status);
  if (invocation.Bool("json")) {
    *env.out << ToJsonLine(response) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Worker& w : response.workers()) {
    rows.push_back({w.worker_name(), absl::StrCat(w.busy_ranks(), "/", w.max_ranks()), w.peer(),
                    w.server_address(), w.build_version()});
  }
  *env.out << FormatTable({"NAME", "BUSY RANKS", "PEER", "SERVER ADDRESS", "BUILD"}, rows);
  return kExitOk;
}

}  // namespace classifier::cli
