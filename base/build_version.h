// Which build this binary is: the project's VERSION (CMakeLists.txt), raised whenever what a
// rank computes or the worker protocol changes. The server refuses a classifier-worker of
// another build. (A git commit would be stricter, but a partly rebuilt tree would then refuse
// its own workers.)
#ifndef CLASSIFIER_BASE_BUILD_VERSION_H_
#define CLASSIFIER_BASE_BUILD_VERSION_H_

namespace classifier {

const char* BuildVersion();

}  // namespace classifier

#endif  // CLASSIFIER_BASE_BUILD_VERSION_H_
