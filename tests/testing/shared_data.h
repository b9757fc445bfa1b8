// Where the tests find the real data that ../shared holds (never an absolute path of one
// machine): CLASSIFIER_TEST_MNIST_DIR when set, else ../shared/data/mnist beside the source
// tree (ctest sets CLASSIFIER_SOURCE_DIR for every test).
#ifndef CLASSIFIER_TESTS_TESTING_SHARED_DATA_H_
#define CLASSIFIER_TESTS_TESTING_SHARED_DATA_H_

#include <cstdlib>
#include <filesystem>
#include <string>

namespace classifier::testing {

// The folder of the real MNIST files, or "" when there is none here (a test then skips, saying
// which paths it looked at: RealMnistSkipReason).
inline std::string RealMnistDir() {
  for (const char* variable : {"CLASSIFIER_TEST_MNIST_DIR", "CLASSIFIER_SOURCE_DIR"}) {
    const char* value = std::getenv(variable);
    if (value == nullptr || *value == '\0') continue;
    std::string dir = value;
    if (std::string(variable) == "CLASSIFIER_SOURCE_DIR") dir += "/../shared/data/mnist";
    if (std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz")) return dir;
  }
  return "";
}

inline std::string RealMnistSkipReason() {
  return "no real MNIST: neither $CLASSIFIER_TEST_MNIST_DIR nor "
         "$CLASSIFIER_SOURCE_DIR/../shared/data/mnist holds t10k-images-idx3-ubyte.gz";
}

}  // namespace classifier::testing

#endif  // CLASSIFIER_TESTS_TESTING_SHARED_DATA_H_
