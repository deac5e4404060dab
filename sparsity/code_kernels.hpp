// The quantizers' per-update work on the device the weights live on (sparsity/quantizer.cpp,
// kmeans_quantizer.cpp, ttq_quantizer.cpp), so that an update reads nothing back to the host:
// per-code sums (per chunk, then over the chunks in chunk order: deterministic, accumulated in
// double as the CPU ops' sum_by_code), and the small tables derived from them (k-means' cluster
// gradients and centroids, TTQ's scales W_p, W_n and its value table). launch() bodies
// (runtime/launch.hpp); the CUDA instantiations are in sparsity/quantizer.cu.
#pragma once
#include <cstdint>

#include "runtime/launch.hpp"

namespace dsg {

// part[c * K + k] = sum of x[i] over i in chunk c with codes[i] == k.
struct CodeSumChunks {
  const uint8_t* codes;
  const float* x;
  int64_t n, chunk;
  int K;
  double* part;
  DSG_HOST_DEVICE void operator()(int64_t c) const {
    double* p = part + c * K;
    for (int k = 0; k < K; ++k) p[k] = 0;
    const int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
    for (int64_t i = c * chunk; i < end; ++i) p[codes[i]] += double(x[i]);
  }
};

// sums[k] = sum over chunks c (in order) of part[c * K + k].
struct CodeSumReduce {
  const double* part;
  int64_t chunks;
  int K;
  double* sums;
  DSG_HOST_DEVICE void operator()(int64_t k) const {
    double s = 0;
    for (int64_t c = 0; c < chunks; ++c) s += part[c * K + k];
    sums[k] = s;
  }
};

// k-means: table[k] = the summed gradient of cluster k (0 for the zero code).
struct KMeansGradTable {
  const double* sums;
  float* table;
  DSG_HOST_DEVICE void operator()(int64_t k) const { table[k] = k == 0 ? 0.0f : float(sums[k]); }
};

// k-means: centroid k = the mean of its members (kept when it has none; the zero code stays 0).
struct KMeansCentroids {
  const double* sums;
  const int64_t* counts;
  float* codebook;
  DSG_HOST_DEVICE void operator()(int64_t k) const {
    if (k > 0 && counts[k]) codebook[k] = float(sums[k] / double(counts[k]));
  }
};

// TTQ (run with n = 1): scales = {1, W_p, W_n}; W_p -= lr dL/dW_p, W_n -= lr dL/dW_n with
// dL/dW_p = sums[1], dL/dW_n = -sums[2].
struct TtqScaleStep {
  const double* sums;
  float lr;
  float* scales;
  DSG_HOST_DEVICE void operator()(int64_t) const {
    scales[1] = float(scales[1] - lr * sums[1]);
    scales[2] = float(scales[2] - lr * -sums[2]);
  }
};

// TTQ: the value table {0, W_p, -W_n} from the scales.
struct TtqTable {
  const float* scales;
  float* table;
  DSG_HOST_DEVICE void operator()(int64_t k) const { table[k] = k == 0 ? 0.0f : k == 1 ? scales[1] : -scales[2]; }
};

}  // namespace dsg
