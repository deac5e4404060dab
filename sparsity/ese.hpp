// ESE load-balance-aware pruning (Han et al., FPGA 2017), policy "ese". The weight blob 0 is
// viewed as a matrix [M, K'] (M = shape(0), K' = count / M) whose rows are interleaved over
// N = num_partitions partitions (processing elements): row i belongs to partition i mod N.
// Every partition is pruned with its own magnitude top-k to the same number of non-zeros,
// round((1 - s) * (M / N) * K'), so the most loaded partition carries exactly the mean load.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/tensor.hpp"

namespace dsg {

// Non-zeros of each of `partitions` interleaved row partitions of the CURRENT values of
// `weights` (viewed as [shape(0), count / shape(0)]; row i counts towards partition i mod N).
// Throws dsg::Error when partitions < 1 or the tensor has no axes.
std::vector<int64_t> nonzeros_per_partition(const Tensor& weights, int partitions);

}  // namespace dsg
