// Kernel bodies of InnerProduct's structured device path (layers/dense_product.cpp): the compact
// weight block W' of the kept rows / columns of W, its diff added back, outputs expanded from a
// compact product, and the bias gradient of the kept outputs. Every body writes only entry i.
// Instantiated for CUDA in layers/inner_product.cu.
#pragma once
#include <cstdint>

#include "runtime/launch.hpp"

namespace dsg {

// dst [rows, cols] packed = src[row(r), col(c)] with src rows `ld` apart; row(r) = row_index[r]
// (r when null), col(c) = col_index[c] (c when null). One entry of dst per i.
struct WeightBlockGather {
  int cols = 0;
  int64_t ld = 0;
  const int* row_index = nullptr;
  const int* col_index = nullptr;
  const float* src = nullptr;
  float* dst = nullptr;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t r = i / cols, c = i % cols;
    const int64_t sr = row_index ? row_index[r] : r, sc = col_index ? col_index[c] : c;
    dst[i] = src[sr * ld + sc];
  }
};

// dst[row(r), col(c)] += src[r, c] (src [rows, cols] packed, dst rows `ld` apart): the diff of the
// compact block added to the kept entries of dW. Indices are distinct, so every i owns its entry.
struct WeightBlockScatterAdd {
  int cols = 0;
  int64_t ld = 0;
  const int* row_index = nullptr;
  const int* col_index = nullptr;
  const float* src = nullptr;
  float* dst = nullptr;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t r = i / cols, c = i % cols;
    const int64_t dr = row_index ? row_index[r] : r, dc = col_index ? col_index[c] : c;
    dst[dr * ld + dc] += src[i];
  }
};

// dst [rows, width] = the compact src [rows, kept] spread over its columns: entry (r, c) is
// src[r, pos[c]] (+ bias[c] when bias is not null) where pos[c] >= 0, an exact 0 elsewhere. pos is
// the inverse of the kept index list (-1 for a column not kept). One entry of dst per i.
struct ExpandColumns {
  int width = 0, kept = 0;
  const int* pos = nullptr;
  const float* src = nullptr;
  const float* bias = nullptr;
  float* dst = nullptr;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t r = i / width, c = i % width;
    const int p = pos[c];
    if (p < 0) {
      dst[i] = 0.0f;
      return;
    }
    const float v = src[r * kept + p];
    dst[i] = bias ? v + bias[c] : v;
  }
};

// db[out(r)] += the column sum of dy [rows, cols] (packed), adding row after row in order (as the
// CPU path does); out(r) = out_index[r] (r when null). One column per i.
struct KeptColumnSums {
  int rows = 0, cols = 0;
  const int* out_index = nullptr;
  const float* dy = nullptr;
  float* db = nullptr;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    float* d = db + (out_index ? out_index[i] : i);
    float s = *d;
    for (int64_t r = 0; r < rows; ++r) s += dy[r * cols + i];
    *d = s;
  }
};

}  // namespace dsg
