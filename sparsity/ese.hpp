// ESE load-balance-aware pruning (Han et al., FPGA 2017), policy "ese". The layer's weight blobs
// (Layer::weight_blobs(); an LSTM's W_xc [4H, D] and W_hc [4H, H]) are viewed as one matrix
// [M, K'] whose row r is the concatenation of row r of every weight blob ([W_xc | W_hc] for the
// LSTM, K' = D + H). Rows are interleaved over N = num_partitions partitions (processing
// elements): row r belongs to partition r mod N. The rows form G gate blocks of M / G rows (G = 4
// for the LSTM, gates i, f, o, g; G = 1 otherwise), and every (gate block, partition) pair is
// pruned with its own magnitude top-k to the same number of non-zeros,
// round((1 - s) * (M / (G N)) * K'), so the most loaded partition carries exactly the mean load,
// in every gate.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/tensor.hpp"

namespace dsg {

// Non-zeros of each of `partitions` interleaved row partitions of the CURRENT values of
// `weights` (viewed as [shape(0), count / shape(0)]; row i counts towards partition i mod N).
// Throws dsg::Error when partitions < 1 or the tensor has no axes.
std::vector<int64_t> nonzeros_per_partition(const Tensor& weights, int partitions);

// The same over several blobs with equal shape(0) (their rows concatenated), counting only rows
// [row_begin, row_end) (row_end < 0: to the last row); row r counts towards partition r mod N.
std::vector<int64_t> nonzeros_per_partition(const std::vector<const Tensor*>& weights, int partitions,
                                            int64_t row_begin = 0, int64_t row_end = -1);

}  // namespace dsg
