#include "server/dataset_catalog.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

namespace classifier {
namespace {

namespace fs = std::filesystem;

constexpr char kMnist[] = "mnist";
constexpr char kFashionMnist[] = "fashion-mnist";
// An IDX label file: magic 0x00000801 (unsigned bytes, one dimension), then the count.
constexpr size_t kLabelHeaderBytes = 8;
constexpr uint32_t kLabelMagic = 0x00000801;
// Labels are bytes: at most 256 classes.
constexpr int kMaxLabels = 256;
constexpr size_t kMaxNameLength = 64;

constexpr char kTrainImages[] = "train-images-idx3-ubyte";
constexpr char kTrainLabels[] = "train-labels-idx1-ubyte";
constexpr char kTestImages[] = "t10k-images-idx3-ubyte";
constexpr char kTestLabels[] = "t10k-labels-idx1-ubyte";

uint32_t BigEndian32(const std::string& bytes, size_t offset) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i)
    value = (value << 8) | static_cast<unsigned char>(bytes[offset + i]);
  return value;
}

// Images per label in an IDX label file (256 entries). Errors name the file and what is wrong.
absl::StatusOr<std::vector<int64_t>> CountLabels(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileMaybeGzip(path);
  if (!bytes.ok()) return bytes.status();
  if (bytes->size() < kLabelHeaderBytes || BigEndian32(*bytes, 0) != kLabelMagic) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an IDX label file (expected the magic number 0x00000801)"));
  }
  const uint32_t count = BigEndian32(*bytes, 4);
  if (bytes->size() - kLabelHeaderBytes != count) {
    return absl::DataLossError(absl::StrCat(path, ": the header promises ", count,
                                            " labels but the file holds ",
                                            bytes->size() - kLabelHeaderBytes));
  }
  std::vector<int64_t> counts(kMaxLabels, 0);
  for (size_t i = kLabelHeaderBytes; i < bytes->size(); ++i) {
    ++counts[static_cast<unsigned char>((*bytes)[i])];
  }
  return counts;
}

// [a-z0-9][a-z0-9_-]{0,63}
bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return lower_or_digit(c) || c == '_' || c == '-'; });
}

// Whether `path` is `root` or below it; both canonical.
bool Within(const fs::path& root, const fs::path& path) {
  const fs::path relative = path.lexically_relative(root);
  return !relative.empty() && *relative.begin() != "..";
}

// Registration refuses what the request names: every problem with the files is the caller's.
absl::Status AsInvalidArgument(const absl::Status& status, const std::string& name) {
  return absl::InvalidArgumentError(
      absl::StrCat("dataset \"", name, "\" refused: ", status.message()));
}

int64_t NowUnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

DatasetCatalog::DatasetCatalog(std::string data_dir, std::string fashion_fallback_dir, Store* store)
    : data_dir_(std::move(data_dir)),
      fashion_fallback_dir_(std::move(fashion_fallback_dir)),
      store_(store) {}

absl::Status DatasetCatalog::LoadRegistered() {
  if (store_ == nullptr) return absl::OkStatus();
  absl::StatusOr<std::vector<StoredDataset>> stored = store_->LoadDatasets();
  if (!stored.ok()) return stored.status();
  MutexLock lock(&registered_mu_);
  for (const StoredDataset& dataset : *stored) {
    registered_[dataset.name] = Registered{dataset.path, dataset.registered_unix_ms};
  }
  if (!stored->empty()) spdlog::info("{} registered dataset(s)", stored->size());
  return absl::OkStatus();
}

std::vector<std::string> DatasetCatalog::Names() const {
  std::vector<std::string> names = {kMnist, kFashionMnist};
  MutexLock lock(&registered_mu_);
  for (const auto& [name, registered] : registered_) names.push_back(name);
  return names;
}

absl::StatusOr<std::string> DatasetCatalog::ResolveInDataDir(const std::string& path) const {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "path is empty: give a folder relative to the server's data directory");
  }
  if (std::any_of(path.begin(), path.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
    return absl::InvalidArgumentError("path contains control characters");
  }
  const fs::path relative(path);
  if (relative.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "path \"", path, "\" is absolute: give a folder relative to the server's data directory"));
  }
  for (const fs::path& part : relative) {
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat(
          "path \"", path, "\" contains \"..\": datasets must stay inside the data directory"));
    }
  }
  std::error_code error;
  const fs::path root = fs::canonical(data_dir_, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("the server's data directory ", data_dir_, " is unusable: ", error.message()));
  }
  const fs::path target = fs::canonical(root / relative, error);
  if (error) {
    return absl::NotFoundError(absl::StrCat("path \"", path,
                                            "\": no such folder in the server's data directory (",
                                            error.message(), ")"));
  }
  if (!Within(root, target)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "path \"", path, "\" leads out of the server's data directory through a symbolic link"));
  }
  if (!fs::is_directory(target)) {
    return absl::InvalidArgumentError(absl::StrCat("path \"", path, "\" is not a folder"));
  }
  return target.string();
}

absl::StatusOr<std::string> DatasetCatalog::Locate(const std::string& directory,
                                                   const std::string& base_name) const {
  // The official names, gzip'd as distributed or already unpacked.
  for (const std::string& candidate :
       {absl::StrCat(directory, "/", base_name, ".gz"), absl::StrCat(directory, "/", base_name)}) {
    if (fs::is_regular_file(candidate)) return candidate;
  }
  return absl::NotFoundError(
      absl::StrCat("dataset file missing: ", directory, "/", base_name, "(.gz)"));
}

absl::StatusOr<DatasetInfo> DatasetCatalog::Inspect(const std::string& name) const {
  DatasetInfo info;
  info.name = name;
  if (name == kMnist || name == kFashionMnist) {
    info.builtin = true;
    info.directory = absl::StrCat(data_dir_, "/", name);
    if (name == kFashionMnist && !fs::is_directory(info.directory) &&
        !fashion_fallback_dir_.empty()) {
      info.directory = fashion_fallback_dir_;
    }
    info.path = info.directory;
    absl::StatusOr<DatasetInfo> inspected = InspectFolder(std::move(info), /*confined=*/false);
    // A dataset the server knows whose files are not there yet: FAILED_PRECONDITION (the
    // operator must fetch them), not NOT_FOUND, which means an unknown name.
    if (absl::IsNotFound(inspected.status())) {
      return absl::FailedPreconditionError(
          absl::StrCat(inspected.status().message(), "; run scripts/fetch-data.sh ", data_dir_,
                       " (in containers: the fetch-data service of docker/compose.yaml)"));
    }
    return inspected;
  }
  {
    MutexLock lock(&registered_mu_);
    auto it = registered_.find(name);
    if (it != registered_.end()) {
      info.path = it->second.path;
      info.registered_unix_ms = it->second.registered_unix_ms;
    }
  }
  if (info.path.empty()) {
    return absl::NotFoundError(absl::StrCat("unknown dataset \"", name,
                                            "\"; known datasets: ", absl::StrJoin(Names(), ", ")));
  }
  // Checked on every use: a link inside the folder may have been changed since registration.
  absl::StatusOr<std::string> directory = ResolveInDataDir(info.path);
  if (!directory.ok()) {
    return absl::Status(directory.status().code(),
                        absl::StrCat("dataset ", name, ": ", directory.status().message()));
  }
  info.directory = *directory;
  return InspectFolder(std::move(info), /*confined=*/true);
}

absl::StatusOr<DatasetInfo> DatasetCatalog::InspectFolder(DatasetInfo info, bool confined) const {
  struct FileSlot {
    const char* base_name;
    std::string* path;
  };
  for (const FileSlot& slot :
       {FileSlot{kTrainImages, &info.train_images}, FileSlot{kTrainLabels, &info.train_labels},
        FileSlot{kTestImages, &info.test_images}, FileSlot{kTestLabels, &info.test_labels}}) {
    absl::StatusOr<std::string> path = Locate(info.directory, slot.base_name);
    if (!path.ok()) return path.status();
    if (confined) {
      std::error_code error;
      const fs::path root = fs::canonical(data_dir_, error);
      const fs::path file = fs::canonical(*path, error);
      if (error || !Within(root, file)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "path: ", *path, " leads out of the server's data directory through a symbolic link"));
      }
    }
    *slot.path = *path;
  }
  absl::StatusOr<IdxHeader> train = ReadIdxHeader(info.train_images);
  if (!train.ok()) return train.status();
  absl::StatusOr<IdxHeader> test = ReadIdxHeader(info.test_images);
  if (!test.ok()) return test.status();
  const std::pair<const IdxHeader*, const std::string*> image_files[] = {
      {&*train, &info.train_images}, {&*test, &info.test_images}};
  for (const auto& [header, path] : image_files) {
    if (header->dimensions.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(*path,
                       ": not an IDX image file (expected 3 dimensions: count, rows, "
                       "columns; the header has ",
                       header->dimensions.size(), ")"));
    }
  }
  if (train->dimensions[1] != test->dimensions[1] || train->dimensions[2] != test->dimensions[2]) {
    return absl::InvalidArgumentError(
        absl::StrCat(info.test_images, " holds ", test->dimensions[1], "x", test->dimensions[2],
                     " images but ", info.train_images, " holds ", train->dimensions[1], "x",
                     train->dimensions[2], ": train and test images must have the same size"));
  }
  info.train_count = train->dimensions[0];
  info.test_count = test->dimensions[0];
  info.image_height = train->dimensions[1];
  info.image_width = train->dimensions[2];
  absl::StatusOr<LabelStats> stats = ReadLabelStats(info);
  if (!stats.ok()) return stats.status();
  info.num_classes = stats->num_classes;
  info.train_class_counts = stats->train_counts;
  info.test_class_counts = stats->test_counts;
  return info;
}

absl::StatusOr<DatasetCatalog::LabelStats> DatasetCatalog::ReadLabelStats(
    const DatasetInfo& info) const {
  // The files' sizes and modification times are part of the key: a label file replaced after a
  // refused registration must not answer with the old file's counts.
  std::string key;
  for (const std::string* path : {&info.train_labels, &info.test_labels}) {
    std::error_code error;
    const uintmax_t size = fs::file_size(*path, error);
    const auto modified = fs::last_write_time(*path, error).time_since_epoch().count();
    absl::StrAppend(&key, *path, "|", size, "|", modified, "\n");
  }
  {
    MutexLock lock(&classes_mu_);
    auto it = label_stats_.find(key);
    if (it != label_stats_.end()) return it->second;
  }
  // Read outside the lock: a few hundred kilobytes, and two callers racing compute the same.
  absl::StatusOr<std::vector<int64_t>> train = CountLabels(info.train_labels);
  if (!train.ok()) return train.status();
  absl::StatusOr<std::vector<int64_t>> test = CountLabels(info.test_labels);
  if (!test.ok()) return test.status();
  LabelStats stats;
  for (int label = 0; label < kMaxLabels; ++label) {
    if ((*train)[label] > 0 || (*test)[label] > 0) stats.num_classes = label + 1;
  }
  if (stats.num_classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(info.train_labels, " and ", info.test_labels, " hold no labels"));
  }
  stats.train_counts.assign(train->begin(), train->begin() + stats.num_classes);
  stats.test_counts.assign(test->begin(), test->begin() + stats.num_classes);
  MutexLock lock(&classes_mu_);
  label_stats_[key] = stats;
  return stats;
}

absl::StatusOr<DatasetInfo> DatasetCatalog::Register(const std::string& name,
                                                     const std::string& path) {
  if (!ValidName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "name \"", name,
        "\" is not a dataset name: 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or "
        "a digit"));
  }
  if (name == kMnist || name == kFashionMnist) {
    return absl::InvalidArgumentError(
        absl::StrCat("name \"", name, "\" is reserved for the built-in dataset"));
  }
  {
    MutexLock lock(&registered_mu_);
    if (registered_.count(name) > 0) {
      return absl::AlreadyExistsError(absl::StrCat("dataset \"", name, "\" already exists"));
    }
  }
  absl::StatusOr<std::string> directory = ResolveInDataDir(path);
  if (!directory.ok()) return directory.status();
  std::string normal = fs::path(path).lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();

  DatasetInfo info;
  info.name = name;
  info.path = normal;
  info.directory = *directory;
  absl::StatusOr<DatasetInfo> inspected = InspectFolder(info, /*confined=*/true);
  if (!inspected.ok()) return AsInvalidArgument(inspected.status(), name);
  // The headers can lie: read every file in full once, so that a job never meets a truncated
  // body or a label file of another length.
  for (const Split split : {Split::kTrain, Split::kTest}) {
    const bool train = split == Split::kTrain;
    absl::StatusOr<Dataset> loaded =
        LoadIdxDataset(train ? inspected->train_images : inspected->test_images,
                       train ? inspected->train_labels : inspected->test_labels, kMaxLabels);
    if (!loaded.ok()) return AsInvalidArgument(loaded.status(), name);
    if (loaded->size() == 0) {
      return AsInvalidArgument(
          absl::InvalidArgumentError(absl::StrCat(
              train ? inspected->train_images : inspected->test_images, " holds no images")),
          name);
    }
  }

  inspected->registered_unix_ms = NowUnixMillis();
  MutexLock lock(&registered_mu_);
  if (registered_.count(name) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("dataset \"", name, "\" already exists"));
  }
  if (store_ != nullptr) {
    absl::Status stored =
        store_->InsertDataset(StoredDataset{name, normal, inspected->registered_unix_ms});
    if (!stored.ok()) return stored;
  }
  registered_[name] = Registered{normal, inspected->registered_unix_ms};
  spdlog::info("registered dataset {} ({}): {} + {} images of {}x{}, {} classes", name, normal,
               inspected->train_count, inspected->test_count, inspected->image_height,
               inspected->image_width, inspected->num_classes);
  return inspected;
}

std::vector<DatasetListing> DatasetCatalog::List() const {
  std::vector<DatasetListing> listings;
  for (const std::string& name : Names()) {
    DatasetListing listing;
    listing.name = name;
    listing.info = Inspect(name);
    if (listing.info.ok()) {
      listing.path = listing.info->path;
      listing.builtin = listing.info->builtin;
      listing.registered_unix_ms = listing.info->registered_unix_ms;
    } else {
      listing.builtin = name == kMnist || name == kFashionMnist;
      MutexLock lock(&registered_mu_);
      auto it = registered_.find(name);
      if (it != registered_.end()) {
        listing.path = it->second.path;
        listing.registered_unix_ms = it->second.registered_unix_ms;
      }
    }
    listings.push_back(std::move(listing));
  }
  return listings;
}

absl::StatusOr<std::shared_ptr<const Dataset>> DatasetCatalog::Load(const std::string& name,
                                                                    Split split) {
  MutexLock lock(&mu_);
  auto it = loaded_.find({name, split});
  if (it != loaded_.end()) return it->second;
  absl::StatusOr<DatasetInfo> info = Inspect(name);
  if (!info.ok()) return info.status();
  const bool train = split == Split::kTrain;
  absl::StatusOr<Dataset> dataset =
      LoadIdxDataset(train ? info->train_images : info->test_images,
                     train ? info->train_labels : info->test_labels, info->num_classes);
  if (!dataset.ok()) return dataset.status();
  auto shared = std::make_shared<const Dataset>(*std::move(dataset));
  spdlog::info("loaded dataset {} ({} split): {} images of {}x{}, {} classes", name,
               train ? "train" : "test", shared->size(), shared->rows, shared->cols,
               shared->num_classes);
  loaded_[{name, split}] = shared;
  return shared;
}

absl::StatusOr<DatasetSamples> DatasetCatalog::Sample(const std::string& name, Split split,
                                                      int count, uint64_t seed) {
  if (count < 0 || count > kMaxSamples) {
    return absl::InvalidArgumentError(absl::StrCat("count must be in [1, ", kMaxSamples,
                                                   "] (0 = ", kDefaultSamples, "), got ", count));
  }
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Load(name, split);
  if (!dataset.ok()) return dataset.status();
  const Dataset& data = **dataset;
  const int64_t wanted = std::min<int64_t>(count == 0 ? kDefaultSamples : count, data.size());
  // A partial Fisher-Yates shuffle drawn from mt19937_64 by plain modulo: the same images for
  // the same seed with any standard library (uniform_int_distribution is not portable).
  std::vector<int64_t> order(data.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::mt19937_64 generator(seed);
  DatasetSamples samples;
  samples.rows = data.rows;
  samples.cols = data.cols;
  const int64_t pixels = data.image_size();
  samples.pixels.reserve(wanted * pixels);
  for (int64_t i = 0; i < wanted; ++i) {
    const int64_t j =
        i + static_cast<int64_t>(generator() % static_cast<uint64_t>(data.size() - i));
    std::swap(order[i], order[j]);
    const int64_t index = order[i];
    samples.indices.push_back(index);
    samples.labels.push_back(data.labels[index]);
    samples.pixels.insert(samples.pixels.end(), data.pixels.begin() + index * pixels,
                          data.pixels.begin() + (index + 1) * pixels);
  }
  return samples;
}

}  // namespace classifier
