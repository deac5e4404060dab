// The Embed layer's kernels (runtime/launch.hpp bodies); instantiated for CUDA in layers/embed.cu.
// Symbols are integers stored as floats in bottom 0; W is [K, N] (K = input_dim, N = num_output).
// An index that is not an integer in [0, K) (the CPU path throws; checking it on the host would
// read the bottom back) gives a NaN top row and no weight gradient.
#pragma once
#include <cmath>
#include <cstdint>

#include "runtime/launch.hpp"

namespace dsg {

// The table row of symbol value v, or -1 when v is not an integer in [0, K).
DSG_HOST_DEVICE inline int64_t embed_row(float v, int64_t K) {
  return v >= 0.0f && v < float(K) && std::floor(v) == v ? int64_t(v) : -1;
}

// Body index i = (position p, column j) of y [M, N]: y = W[index[p], j] (+ b[j]).
struct EmbedForward {
  int64_t K, N;
  float nan;
  const float* index;
  const float* w;
  const float* b;  // null without bias_term
  float* y;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t p = i / N, j = i % N;
    const int64_t row = embed_row(index[p], K);
    if (row < 0) y[i] = nan;
    else y[i] = b ? w[row * N + j] + b[j] : w[row * N + j];
  }
};

// Body index i = (table row r, column j) of dW [K, N]: dW[r, j] += dy[p, j] for every position p
// holding symbol r, added in position order as the CPU path (deterministic, no atomics).
struct EmbedWeightGrad {
  int64_t M, K, N;
  const float* index;
  const float* dy;
  float* dw;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t r = i / N, j = i % N;
    float acc = dw[i];
    for (int64_t p = 0; p < M; ++p)
      if (embed_row(index[p], K) == r) acc += dy[p * N + j];
    dw[i] = acc;
  }
};

}  // namespace dsg
