#include "server/free_heap.h"

#include <cstdlib>  // Defines __GLIBC__ where the C library is glibc.

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace classifier {

bool ReturnFreeHeapToSystem() {
#if defined(__GLIBC__)
  return malloc_trim(0) == 1;
#else
  return false;
#endif
}

}  // namespace classifier
