// Copy kernels (runtime/launch.hpp bodies) of the layers that move values without arithmetic:
// Concat and Slice (blocks of rows between a tensor and its part along an axis) and
// ImageToSequence (image rows to sequence steps). Instantiated for CUDA in layers/copy_kernels.cu.
#pragma once
#include <cstdint>

#include "runtime/launch.hpp"

namespace dsg {

// dst[o * dst_ld + j] = src[o * src_ld + j] for o < rows, j < cols; body index i = o * cols + j.
// Concat and Slice: a bottom's [outer, row] block and its part of the joined [outer, total_row]
// tensor (the offset of the part already added to the pointer).
struct StridedCopy {
  int64_t cols, src_ld, dst_ld;
  const float* src;
  float* dst;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t o = i / cols, j = i % cols;
    dst[o * dst_ld + j] = src[o * src_ld + j];
  }
};

// Between images [N, C, H, W] and sequences [H, N, C W]: pixel (n, c, t, w) <-> step t, sample n,
// feature c W + w. Body index i walks the image in its order; to_sequence: `from` is the image and
// `to` the sequence, else the other way round.
struct ImageSequenceCopy {
  int64_t n, c, h, w;
  bool to_sequence;
  const float* from;
  float* to;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t r = i / w, x = i % w;  // r = (n C + c) H + t
    const int64_t t = r % h, nc = r / h, ch = nc % c, s = nc / c;
    const int64_t q = ((t * n + s) * c + ch) * w + x;
    if (to_sequence) to[q] = from[i];
    else to[i] = from[q];
  }
};

}  // namespace dsg
