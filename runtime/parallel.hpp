// A small persistent thread pool for DSG's own loops (im2col, pooling, elementwise work).
// OpenBLAS runs its own threads for GEMMs; DSG never calls BLAS from inside parallel_for.
#pragma once
#include <cstdint>
#include <functional>

namespace dsg {

// The smallest chunk (in elements) worth handing to another thread in elementwise loops.
constexpr int64_t kParallelGrain = int64_t(1) << 15;

// Sets the number of threads used by parallel_for and by the BLAS library. 1 means serial.
void set_num_threads(int threads);
int num_threads();

// Calls fn(begin, end) over disjoint chunks covering [0, n), possibly concurrently. Chunks hold
// at least `grain` items. With one thread (or small n) it is a plain call fn(0, n).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace dsg
