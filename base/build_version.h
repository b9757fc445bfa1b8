// Which build this binary is: the git commit the build was configured from ("unknown" outside
// a checkout). The server refuses a classifier-worker of another build.
#ifndef CLASSIFIER_BASE_BUILD_VERSION_H_
#define CLASSIFIER_BASE_BUILD_VERSION_H_

namespace classifier {

const char* BuildVersion();

}  // namespace classifier

#endif  // CLASSIFIER_BASE_BUILD_VERSION_H_
