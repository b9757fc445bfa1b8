// Heap memory the allocator holds but no one uses, given back to the operating system.
//
// glibc's malloc gives each busy thread an arena of its own (up to 8 per core) and keeps what is
// freed there for reuse; pages in the middle of an arena go back to the system only when
// malloc_trim asks. A server whose gRPC, batcher, training and work-queue threads take turns
// allocating therefore grows while nothing leaks: bench/soak.sh measured +6.9% RSS over 22
// minutes of 64 Predict callers, training, imports and watchers, and a malloc_trim(0) after
// such a load took RSS from 287 MB back to 262 MB (below its start). The housekeeper calls this
// once per round.
#ifndef CLASSIFIER_SERVER_FREE_HEAP_H_
#define CLASSIFIER_SERVER_FREE_HEAP_H_

namespace classifier {

// Returns the free pages of every malloc arena to the system (glibc's malloc_trim(0)); true
// when some were. Elsewhere than glibc it does nothing and returns false. Takes each arena's
// lock in turn, for about a millisecond per hundred MB of heap.
bool ReturnFreeHeapToSystem();

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_FREE_HEAP_H_
