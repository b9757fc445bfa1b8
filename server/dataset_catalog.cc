#include "server/dataset_catalog.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

namespace classifier {
namespace {

constexpr char kMnist[] = "mnist";
constexpr char kFashionMnist[] = "fashion-mnist";
// Classes in both MNIST and Fashion-MNIST.
constexpr int kNumClasses = 10;

}  // namespace

DatasetCatalog::DatasetCatalog(std::string data_dir, std::string fashion_fallback_dir)
    : data_dir_(std::move(data_dir)), fashion_fallback_dir_(std::move(fashion_fallback_dir)) {}

std::vector<std::string> DatasetCatalog::Names() const { return {kMnist, kFashionMnist}; }

absl::StatusOr<std::string> DatasetCatalog::Locate(const std::string& directory,
                                                   const std::string& base_name) const {
  // The official names, gzip'd as distributed or already unpacked.
  for (const std::string& candidate :
       {absl::StrCat(directory, "/", base_name, ".gz"), absl::StrCat(directory, "/", base_name)}) {
    if (std::filesystem::is_regular_file(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat("dataset file missing: ", directory, "/", base_name,
                                          "(.gz); run scripts/fetch-data.sh ", data_dir_));
}

absl::StatusOr<DatasetInfo> DatasetCatalog::Inspect(const std::string& name) const {
  DatasetInfo info;
  info.name = name;
  if (name == kMnist) {
    info.directory = absl::StrCat(data_dir_, "/mnist");
  } else if (name == kFashionMnist) {
    info.directory = absl::StrCat(data_dir_, "/fashion-mnist");
    if (!std::filesystem::is_directory(info.directory) && !fashion_fallback_dir_.empty()) {
      info.directory = fashion_fallback_dir_;
    }
  } else {
    return absl::NotFoundError(absl::StrCat("unknown dataset \"", name,
                                            "\"; known datasets: ", absl::StrJoin(Names(), ", ")));
  }
  struct FileSlot {
    const char* base_name;
    std::string* path;
  };
  for (const FileSlot& slot : {FileSlot{"train-images-idx3-ubyte", &info.train_images},
                               FileSlot{"train-labels-idx1-ubyte", &info.train_labels},
                               FileSlot{"t10k-images-idx3-ubyte", &info.test_images},
                               FileSlot{"t10k-labels-idx1-ubyte", &info.test_labels}}) {
    absl::StatusOr<std::string> path = Locate(info.directory, slot.base_name);
    if (!path.ok()) return path.status();
    *slot.path = *path;
  }
  absl::StatusOr<IdxHeader> train = ReadIdxHeader(info.train_images);
  if (!train.ok()) return train.status();
  absl::StatusOr<IdxHeader> test = ReadIdxHeader(info.test_images);
  if (!test.ok()) return test.status();
  if (train->dimensions.empty() || test->dimensions.empty()) {
    return absl::DataLossError(absl::StrCat("dataset ", name, ": image files have no dimensions"));
  }
  info.train_count = train->dimensions[0];
  info.test_count = test->dimensions[0];
  return info;
}

absl::StatusOr<std::shared_ptr<const Dataset>> DatasetCatalog::Load(const std::string& name,
                                                                    Split split) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = loaded_.find({name, split});
  if (it != loaded_.end()) return it->second;
  absl::StatusOr<DatasetInfo> info = Inspect(name);
  if (!info.ok()) return info.status();
  const bool train = split == Split::kTrain;
  absl::StatusOr<Dataset> dataset =
      LoadIdxDataset(train ? info->train_images : info->test_images,
                     train ? info->train_labels : info->test_labels, kNumClasses);
  if (!dataset.ok()) return dataset.status();
  auto shared = std::make_shared<const Dataset>(*std::move(dataset));
  spdlog::info("loaded dataset {} ({} split): {} images of {}x{}", name, train ? "train" : "test",
               shared->size(), shared->rows, shared->cols);
  loaded_[{name, split}] = shared;
  return shared;
}

}  // namespace classifier
