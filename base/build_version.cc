#include "base/build_version.h"

namespace classifier {

const char* BuildVersion() { return CLASSIFIER_BUILD_VERSION; }

}  // namespace classifier
