// The Accuracy layer's kernels (runtime/launch.hpp bodies): the count is made on the device and
// written into the tops there, with no read back to the host. Instantiated for CUDA in
// layers/accuracy.cu.
//   1. AccuracyMark, per position: whether its label is ignored or invalid, else its class and
//      whether that class is among the top_k scores (ties count against it, as the CPU path).
//   2. AccuracyCount, per chunk of kAccuracyChunk positions: hits, counted positions, invalid labels.
//   3. AccuracyFinish: index 0 sums the chunks into top 0; index 1 + c counts class c into top 1.
// Counts are integers, so the result equals the CPU path's exactly. A label outside [0, C) (the
// CPU path throws) makes the accuracy NaN.
#pragma once
#include <cstdint>

#include "runtime/launch.hpp"

namespace dsg {

constexpr int64_t kAccuracyChunk = 256;
constexpr int kAccuracyIgnored = -1, kAccuracyInvalid = -2;

// code[k] = kAccuracyIgnored, kAccuracyInvalid, or 2 * class + hit for position k of the scores
// x [outer, C, inner] (label [outer * inner], class ids as floats).
// Whether a score is finite, on host and device alike (v - v is 0 unless v is NaN or infinite).
DSG_HOST_DEVICE inline bool accuracy_finite(float v) { return v - v == 0.0f; }

struct AccuracyMark {
  int64_t C, inner, top_k;
  bool has_ignore;
  int ignore;
  const float* x;
  const float* label;
  int* code;
  DSG_HOST_DEVICE void operator()(int64_t k) const {
    const float v = label[k];
    if (has_ignore && v == float(ignore)) {
      code[k] = kAccuracyIgnored;
      return;
    }
    if (!(v >= 0.0f && v < float(C))) {
      code[k] = kAccuracyInvalid;
      return;
    }
    const int64_t target = int64_t(v);
    const int64_t base = (k / inner) * C * inner + k % inner;
    const float true_score = x[base + target * inner];
    // The true class counts itself; a non-finite score in the row is a miss (as the CPU path).
    int64_t better = accuracy_finite(true_score) ? -1 : top_k;
    for (int64_t c = 0; c < C && better < top_k; ++c) {
      const float sc = x[base + c * inner];
      better += accuracy_finite(sc) ? int64_t(sc >= true_score) : top_k;
    }
    code[k] = int(2 * target + (better < top_k ? 1 : 0));
  }
};

// counts[3 j + {0, 1, 2}] = hits, counted positions, invalid labels of positions
// [j kAccuracyChunk, (j + 1) kAccuracyChunk) of the `positions`.
struct AccuracyCount {
  int64_t positions;
  const int* code;
  int64_t* counts;
  DSG_HOST_DEVICE void operator()(int64_t j) const {
    int64_t hits = 0, total = 0, invalid = 0;
    const int64_t end = (j + 1) * kAccuracyChunk < positions ? (j + 1) * kAccuracyChunk : positions;
    for (int64_t k = j * kAccuracyChunk; k < end; ++k) {
      const int v = code[k];
      if (v == kAccuracyInvalid) ++invalid;
      if (v < 0) continue;
      ++total;
      hits += v & 1;
    }
    counts[3 * j] = hits;
    counts[3 * j + 1] = total;
    counts[3 * j + 2] = invalid;
  }
};

// Index 0: accuracy[0] = hits / counted over all chunks (0 when none, `nan` with an invalid
// label). Index 1 + c (per_class non-null): per_class[c] = hits / counted positions of class c.
struct AccuracyFinish {
  int64_t positions, chunks;
  float nan;
  const int* code;
  const int64_t* counts;
  float* accuracy;
  float* per_class;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    int64_t hits = 0, total = 0, invalid = 0;
    if (i == 0) {
      for (int64_t j = 0; j < chunks; ++j) {
        hits += counts[3 * j];
        total += counts[3 * j + 1];
        invalid += counts[3 * j + 2];
      }
      accuracy[0] = invalid > 0 ? nan : total == 0 ? 0.0f : float(double(hits) / double(total));
      return;
    }
    const int c = int(i - 1);
    for (int64_t k = 0; k < positions; ++k) {
      const int v = code[k];
      if (v < 0 || (v >> 1) != c) continue;
      ++total;
      hits += v & 1;
    }
    per_class[c] = total == 0 ? 0.0f : float(double(hits) / double(total));
  }
};

}  // namespace dsg
