// Named datasets on disk and the loaded copies that jobs share: the built-in `mnist` and
// `fashion-mnist`, and folders of IDX files registered by name under the data directory.
#ifndef CLASSIFIER_SERVER_DATASET_CATALOG_H_
#define CLASSIFIER_SERVER_DATASET_CATALOG_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/dataset.h"
#include "server/mutex.h"
#include "server/store.h"

namespace classifier {

enum class Split { kTrain, kTest };

// Where a dataset's four IDX files are, and what they hold.
struct DatasetInfo {
  std::string name;
  // The folder the files are read from.
  std::string directory;
  // Registered datasets: the folder as registered (relative to the data directory); built-in
  // ones: `directory`.
  std::string path;
  bool builtin = false;
  int64_t registered_unix_ms = 0;  // Registered datasets only.
  std::string train_images, train_labels, test_images, test_labels;
  int64_t train_count = 0;
  int64_t test_count = 0;
  // From the image headers; train and test agree.
  int64_t image_height = 0;
  int64_t image_width = 0;
  // The largest label over both splits, plus one: how many outputs a classifier of this data
  // needs (10 for MNIST and Fashion-MNIST). Read from the label files once and cached.
  int num_classes = 0;
  // Images per label in each split; num_classes entries each.
  std::vector<int64_t> train_class_counts;
  std::vector<int64_t> test_class_counts;
};

// One entry of List(): a known dataset, usable or not.
struct DatasetListing {
  std::string name;
  std::string path;
  bool builtin = false;
  int64_t registered_unix_ms = 0;
  // Why the dataset cannot be used now (e.g. its files are missing), or what it holds.
  absl::StatusOr<DatasetInfo> info;
};

// Images drawn from a split, in the order drawn.
struct DatasetSamples {
  int64_t rows = 0;
  int64_t cols = 0;
  // indices.size() * rows * cols bytes, image after image.
  std::vector<uint8_t> pixels;
  std::vector<int> labels;
  std::vector<int64_t> indices;  // Positions in the split.
};

// Where Debian's dataset-fashion-mnist package installs Fashion-MNIST: the catalog's fallback
// for `fashion-mnist` when the data directory has none.
inline constexpr char kDefaultFashionFallbackDir[] = "/usr/share/datasets/fashion-mnist";

class DatasetCatalog {
 public:
  // Most images one Sample call returns (a 16 x 16 grid); the default is kDefaultSamples.
  static constexpr int kMaxSamples = 256;
  static constexpr int kDefaultSamples = 16;

  // `mnist` lives in data_dir/mnist; `fashion-mnist` in data_dir/fashion-mnist, else in
  // `fashion_fallback_dir` (Debian's dataset-fashion-mnist package). Registered datasets live
  // in folders under `data_dir` and are remembered in `store` (null: in memory only; the store
  // must outlive the catalog).
  DatasetCatalog(std::string data_dir, std::string fashion_fallback_dir, Store* store = nullptr);
  DatasetCatalog(const DatasetCatalog&) = delete;
  DatasetCatalog& operator=(const DatasetCatalog&) = delete;

  // Reads the registered datasets from the store (at start). Their files are checked when
  // they are used: a folder that has gone away only makes that dataset unusable.
  absl::Status LoadRegistered();

  // Registers the IDX folder `path` (relative to the data directory) as `name` after reading
  // all four files in full: INVALID_ARGUMENT naming the field for a malformed or reserved name,
  // an absolute path, `..`, or a symbolic link leading out of the data directory; NOT_FOUND for
  // a folder that does not exist; INVALID_ARGUMENT naming the file for a missing, corrupt or
  // mismatched one (counts of images and labels, image size of train vs test);
  // ALREADY_EXISTS for a name in use. Thread-safe; slow (reads the files): not for a gRPC
  // callback thread.
  absl::StatusOr<DatasetInfo> Register(const std::string& name, const std::string& path);

  // The built-in datasets, then the registered ones by name.
  std::vector<DatasetListing> List() const;

  // Finds the files and reads their headers (and, once, the label files): cheap enough to
  // validate a request with. NOT_FOUND for an unknown name (listing the known ones) or a
  // missing file (naming it).
  absl::StatusOr<DatasetInfo> Inspect(const std::string& name) const;

  // Loads a split once and shares it; later calls return the same copy. Errors
  // name the file.
  absl::StatusOr<std::shared_ptr<const Dataset>> Load(const std::string& name, Split split);

  // `count` distinct images of a split chosen by `seed` (the same seed, the same images):
  // 0 = kDefaultSamples; more than kMaxSamples is INVALID_ARGUMENT; at most the split's size.
  absl::StatusOr<DatasetSamples> Sample(const std::string& name, Split split, int count,
                                        uint64_t seed);

  std::vector<std::string> Names() const;

 private:
  struct Registered {
    std::string path;
    int64_t registered_unix_ms = 0;
  };
  // Per label file pair: the class count and the images per class of each split.
  struct LabelStats {
    int num_classes = 0;
    std::vector<int64_t> train_counts;
    std::vector<int64_t> test_counts;
  };

  // The folder `path` names inside the data directory; errors name the field `path`.
  absl::StatusOr<std::string> ResolveInDataDir(const std::string& path) const;
  // Finds the four files in `directory` and reads their headers. With `confined`, a file that
  // resolves outside the data directory is refused.
  absl::StatusOr<DatasetInfo> InspectFolder(DatasetInfo info, bool confined) const;
  absl::StatusOr<std::string> Locate(const std::string& directory,
                                     const std::string& base_name) const;
  // The class counts of `info`'s label files, read once per version of the pair of files.
  absl::StatusOr<LabelStats> ReadLabelStats(const DatasetInfo& info) const;

  // Constant after construction.
  const std::string data_dir_;
  const std::string fashion_fallback_dir_;
  Store* const store_;

  Mutex mu_;
  std::map<std::pair<std::string, Split>, std::shared_ptr<const Dataset>> loaded_
      ABSL_GUARDED_BY(mu_);

  mutable Mutex registered_mu_;
  // Registered datasets by name; never removed, so a name always means the same files.
  std::map<std::string, Registered> registered_ ABSL_GUARDED_BY(registered_mu_);

  // Keyed by the (train, test) label files' paths, sizes and modification times.
  mutable Mutex classes_mu_;
  mutable std::map<std::string, LabelStats> label_stats_ ABSL_GUARDED_BY(classes_mu_);
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_DATASET_CATALOG_H_
