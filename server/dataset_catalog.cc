#include "server/dataset_catalog.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

namespace classifier {
namespace {

constexpr char kMnist[] = "mnist";
constexpr char kFashionMnist[] = "fashion-mnist";
// An IDX label file: magic 0x00000801 (unsigned bytes, one dimension), then the count.
constexpr size_t kLabelHeaderBytes = 8;

uint32_t BigEndian32(const std::string& bytes, size_t offset) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i)
    value = (value << 8) | static_cast<unsigned char>(bytes[offset + i]);
  return value;
}

// One past the largest label in an IDX label file. Errors name the file and what is wrong.
absl::StatusOr<int> ClassesInLabelFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileMaybeGzip(path);
  if (!bytes.ok()) return bytes.status();
  if (bytes->size() < kLabelHeaderBytes || BigEndian32(*bytes, 0) != 0x00000801) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an IDX label file (expected the magic number 0x00000801)"));
  }
  const uint32_t count = BigEndian32(*bytes, 4);
  if (bytes->size() - kLabelHeaderBytes != count) {
    return absl::DataLossError(absl::StrCat(path, ": the header promises ", count,
                                            " labels but the file holds ",
                                            bytes->size() - kLabelHeaderBytes));
  }
  int max_label = -1;
  for (size_t i = kLabelHeaderBytes; i < bytes->size(); ++i) {
    max_label = std::max(max_label, static_cast<int>(static_cast<unsigned char>((*bytes)[i])));
  }
  return max_label + 1;
}

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
  if (train->dimensions.size() != 3 || test->dimensions.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", name, ": ",
                     train->dimensions.size() != 3 ? info.train_images : info.test_images,
                     ": not an IDX image file (expected count, rows, columns)"));
  }
  if (train->dimensions[1] != test->dimensions[1] || train->dimensions[2] != test->dimensions[2]) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", name, ": ", info.test_images, " holds ", test->dimensions[1], "x",
                     test->dimensions[2], " images but ", info.train_images, " holds ",
                     train->dimensions[1], "x", train->dimensions[2]));
  }
  info.train_count = train->dimensions[0];
  info.test_count = test->dimensions[0];
  info.image_height = train->dimensions[1];
  info.image_width = train->dimensions[2];
  absl::StatusOr<int> classes = NumClasses(info);
  if (!classes.ok()) return classes.status();
  info.num_classes = *classes;
  return info;
}

absl::StatusOr<int> DatasetCatalog::NumClasses(const DatasetInfo& info) const {
  const std::pair<std::string, std::string> key(info.train_labels, info.test_labels);
  {
    std::lock_guard<std::mutex> lock(classes_mu_);
    auto it = num_classes_.find(key);
    if (it != num_classes_.end()) return it->second;
  }
  // Read outside the lock: a few hundred kilobytes, and two callers racing compute the same.
  absl::StatusOr<int> train = ClassesInLabelFile(info.train_labels);
  if (!train.ok()) return train.status();
  absl::StatusOr<int> test = ClassesInLabelFile(info.test_labels);
  if (!test.ok()) return test.status();
  const int classes = std::max(*train, *test);
  if (classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", info.name, ": the label files hold no labels"));
  }
  std::lock_guard<std::mutex> lock(classes_mu_);
  num_classes_[key] = classes;
  return classes;
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
                     train ? info->train_labels : info->test_labels, info->num_classes);
  if (!dataset.ok()) return dataset.status();
  auto shared = std::make_shared<const Dataset>(*std::move(dataset));
  spdlog::info("loaded dataset {} ({} split): {} images of {}x{}", name, train ? "train" : "test",
               shared->size(), shared->rows, shared->cols);
  loaded_[{name, split}] = shared;
  return shared;
}

}  // namespace classifier
