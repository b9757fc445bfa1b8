// Named datasets on disk and the loaded copies that jobs share.
#ifndef CLASSIFIER_SERVER_DATASET_CATALOG_H_
#define CLASSIFIER_SERVER_DATASET_CATALOG_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "model/dataset.h"

namespace classifier {

enum class Split { kTrain, kTest };

// Where a dataset's four IDX files are, and what they hold.
struct DatasetInfo {
  std::string name;
  std::string directory;
  std::string train_images, train_labels, test_images, test_labels;
  int64_t train_count = 0;
  int64_t test_count = 0;
  // From the image headers; train and test agree.
  int64_t image_height = 0;
  int64_t image_width = 0;
  // The largest label over both splits, plus one: how many outputs a classifier of this data
  // needs (10 for MNIST and Fashion-MNIST). Read from the label files once and cached.
  int num_classes = 0;
};

class DatasetCatalog {
 public:
  // `mnist` lives in data_dir/mnist; `fashion-mnist` in data_dir/fashion-mnist,
  // else in `fashion_fallback_dir` (Debian's dataset-fashion-mnist package).
  DatasetCatalog(std::string data_dir, std::string fashion_fallback_dir);
  DatasetCatalog(const DatasetCatalog&) = delete;
  DatasetCatalog& operator=(const DatasetCatalog&) = delete;

  // Finds the files and reads their headers only: cheap enough to validate a
  // request with. NOT_FOUND for an unknown name (listing the known ones) or a
  // missing file (naming it).
  absl::StatusOr<DatasetInfo> Inspect(const std::string& name) const;

  // Loads a split once and shares it; later calls return the same copy. Errors
  // name the file.
  absl::StatusOr<std::shared_ptr<const Dataset>> Load(const std::string& name, Split split);

  std::vector<std::string> Names() const;

 private:
  absl::StatusOr<std::string> Locate(const std::string& directory,
                                     const std::string& base_name) const;
  // The class count of `info`'s label files, read once per pair of files.
  absl::StatusOr<int> NumClasses(const DatasetInfo& info) const;

  // Constant after construction.
  const std::string data_dir_;
  const std::string fashion_fallback_dir_;

  std::mutex mu_;
  std::map<std::pair<std::string, Split>, std::shared_ptr<const Dataset>> loaded_
      ABSL_GUARDED_BY(mu_);

  // Keyed by the (train, test) label files.
  mutable std::mutex classes_mu_;
  mutable std::map<std::pair<std::string, std::string>, int> num_classes_
      ABSL_GUARDED_BY(classes_mu_);
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_DATASET_CATALOG_H_
