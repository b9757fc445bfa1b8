// A floor under the stack size threads are created with, for the metrics endpoint.
//
// prometheus-cpp serves /metrics with civetweb, and Debian builds civetweb with
// USE_STACK_SIZE=102400: every civetweb thread asks pthread_attr_setstacksize for 100 KiB. glibc
// carves each thread's static TLS out of its stack, and this process's static TLS (LibTorch,
// libgomp, and OpenBLAS's 60 KiB, which scripts/install-deps.sh installs for LibTorch's sgemm_)
// leaves too little of 100 KiB: pthread_create fails with EINVAL and the exposer cannot start
// ("null context when constructing CivetServer"). civetweb 1.15 has no option for its stack
// size, so the executable interposes pthread_attr_setstacksize (exported with
// --export-dynamic-symbol, see server/CMakeLists.txt) and raises requests below the floor.
// Larger requests and every other thread are untouched; the floor is virtual memory, committed
// only as used.
//
// Compiled into every executable that links classifier_server_lib (an INTERFACE source): an
// object in a static archive would only be linked when something referenced it.
#include <dlfcn.h>
#include <pthread.h>

#include <algorithm>
#include <cstddef>

namespace {

// Room for the static TLS of every library the server loads, many times over.
constexpr size_t kThreadStackFloor = size_t{2} << 20;

using SetStackSize = int (*)(pthread_attr_t*, size_t);

}  // namespace

extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t stack_size) {
  // glibc's own definition, looked up once (thread-safe static initialisation).
  static const SetStackSize next =
      reinterpret_cast<SetStackSize>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  return next(attr, std::max(stack_size, kThreadStackFloor));
}
