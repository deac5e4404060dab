// Plane-level kernels of the Convolution layer (layers/convolution.cpp, convolution_dsg.cpp): im2col of one input
// plane into kh kw column rows and its adjoint col2im, plus small row helpers. Header-only so
// that they inline into the layer's loops; used by the Convolution layer alone (layers/convolution*.cpp).
#pragma once
#include <algorithm>
#include <cstdint>

#include "runtime/parallel.hpp"

namespace dsg::conv_detail {

inline float row_sum(const float* x, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; ++k) acc[k] += x[i + k];
  float s = 0;
  for (; i < n; ++i) s += x[i];
  for (int k = 0; k < 16; ++k) s += acc[k];
  return s;
}

// d[0, n) = s[0, n) and d[0, n) += s[0, n), in blocks of 8 so that the short rows of small
// feature maps compile to whole vector operations.
inline void copy_row(float* __restrict d, const float* __restrict s, int n) {
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int t = 0; t < 8; ++t) d[k + t] = s[k + t];
  for (; k < n; ++k) d[k] = s[k];
}

inline void add_row(float* __restrict d, const float* __restrict s, int n) {
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int t = 0; t < 8; ++t) d[k + t] += s[k + t];
  for (; k < n; ++k) d[k] += s[k];
}

inline void zero_row(float* d, int64_t n) {
  for (int64_t k = 0; k < n; ++k) d[k] = 0.0f;
}

// Outputs [lo, hi) along one axis whose input o * stride + off lies inside [0, in).
struct Span {
  int lo, hi, off;
};

inline Span span(int off, int stride, int in, int out) {
  int lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int hi = in - 1 - off >= 0 ? (in - 1 - off) / stride + 1 : 0;
  lo = std::min(lo, out);
  return Span{lo, std::clamp(hi, lo, out), off};
}

// One input plane [H, W] and its kh kw column rows (ld floats apart, Ho Wo values each); hspan /
// wspan give the valid output rows / columns of each kernel row / column.
struct PlaneGeometry {
  int h, w, ho, wo, kh, kw, sh, sw;
  const Span* hspan;
  const Span* wspan;
};

inline void im2col_plane(const PlaneGeometry g, const float* __restrict x, float* __restrict col, int64_t ld) {
  for (int i = 0; i < g.kh; ++i) {
    const Span rs = g.hspan[i];
    for (int j = 0; j < g.kw; ++j) {
      const Span cs = g.wspan[j];
      float* dst = col + (int64_t(i) * g.kw + j) * ld;
      zero_row(dst, rs.lo * g.wo);
      for (int oh = rs.lo; oh < rs.hi; ++oh) {
        float* d = dst + int64_t(oh) * g.wo;
        const float* s = x + int64_t(oh * g.sh + rs.off) * g.w;
        zero_row(d, cs.lo);
        if (g.sw == 1) {
          copy_row(d + cs.lo, s + cs.lo + cs.off, cs.hi - cs.lo);
        } else {
          for (int ow = cs.lo; ow < cs.hi; ++ow) d[ow] = s[ow * g.sw + cs.off];
        }
        zero_row(d + cs.hi, g.wo - cs.hi);
      }
      zero_row(dst + int64_t(rs.hi) * g.wo, (g.ho - rs.hi) * g.wo);
    }
  }
}

// Overwrites dx with the sum of the column entries im2col_plane read from each position. Kernel
// columns outermost: successive updates of a dx row then hit the same addresses, not shifted ones.
inline void col2im_plane(const PlaneGeometry g, const float* __restrict col, int64_t ld, float* __restrict dx) {
  zero_row(dx, g.h * g.w);
  for (int j = 0; j < g.kw; ++j) {
    const Span cs = g.wspan[j];
    for (int i = 0; i < g.kh; ++i) {
      const Span rs = g.hspan[i];
      const float* src = col + (int64_t(i) * g.kw + j) * ld;
      for (int oh = rs.lo; oh < rs.hi; ++oh) {
        const float* s = src + int64_t(oh) * g.wo;
        float* d = dx + int64_t(oh * g.sh + rs.off) * g.w;
        if (g.sw == 1) {
          add_row(d + cs.lo + cs.off, s + cs.lo, cs.hi - cs.lo);
        } else {
          for (int ow = cs.lo; ow < cs.hi; ++ow) d[ow * g.sw + cs.off] += s[ow];
        }
      }
    }
  }
}

// The same windows as rows (DSG's per-sample path): for one input plane, entry (window, tap) of
// rows[(oh Wo + ow) ld + i kw + j] = x[oh sh + hspan[i].off, ow sw + wspan[j].off] (0 outside),
// with ld the row length (all channels' taps) and rows pointing at this channel's first tap.
inline void im2row_plane(const PlaneGeometry g, const float* __restrict x, float* __restrict rows, int64_t ld) {
  for (int oh = 0; oh < g.ho; ++oh)
    for (int ow = 0; ow < g.wo; ++ow) {
      float* dst = rows + (int64_t(oh) * g.wo + ow) * ld;
      for (int i = 0; i < g.kh; ++i) {
        const Span rs = g.hspan[i];
        const bool row_in = oh >= rs.lo && oh < rs.hi;
        const float* src = row_in ? x + int64_t(oh * g.sh + rs.off) * g.w : nullptr;
        for (int j = 0; j < g.kw; ++j) {
          const Span cs = g.wspan[j];
          dst[i * g.kw + j] = row_in && ow >= cs.lo && ow < cs.hi ? src[ow * g.sw + cs.off] : 0.0f;
        }
      }
    }
}

// The adjoint of im2row_plane: overwrites dx (one input plane) with the sum of the row entries
// read from each position.
inline void row2im_plane(const PlaneGeometry g, const float* __restrict rows, int64_t ld, float* __restrict dx) {
  zero_row(dx, int64_t(g.h) * g.w);
  for (int oh = 0; oh < g.ho; ++oh)
    for (int ow = 0; ow < g.wo; ++ow) {
      const float* src = rows + (int64_t(oh) * g.wo + ow) * ld;
      for (int i = 0; i < g.kh; ++i) {
        const Span rs = g.hspan[i];
        if (oh < rs.lo || oh >= rs.hi) continue;
        float* d = dx + int64_t(oh * g.sh + rs.off) * g.w;
        for (int j = 0; j < g.kw; ++j) {
          const Span cs = g.wspan[j];
          if (ow >= cs.lo && ow < cs.hi) d[ow * g.sw + cs.off] += src[i * g.kw + j];
        }
      }
    }
}

// Calls fn(plane offset in [nb, C, H, W], offset of the plane's first tap in the rows
// [nb Ho Wo, C kh kw], row length) for each of the nb * C input planes, in parallel.
template <class PlaneFn>
void for_each_input_plane(const PlaneGeometry g, int channels, int nb, PlaneFn fn) {
  const int64_t d = int64_t(channels) * g.kh * g.kw, plane = int64_t(g.h) * g.w, spatial = int64_t(g.ho) * g.wo;
  parallel_for(int64_t(nb) * channels, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, spatial * g.kh * g.kw)),
               [&](int64_t begin, int64_t end) {
                 for (int64_t t = begin; t < end; ++t)
                   fn(t * plane, (t / channels) * spatial * d + (t % channels) * g.kh * g.kw, d);
               });
}

// The windows of nb images x [nb, C, H, W] as rows [nb Ho Wo, C kh kw] (im2col transposed).
inline void im2row_images(const PlaneGeometry g, int channels, int nb, const float* x, float* rows) {
  for_each_input_plane(g, channels, nb, [&](int64_t xo, int64_t ro, int64_t ld) { im2row_plane(g, x + xo, rows + ro, ld); });
}

// The adjoint of im2row_images: dx [nb, C, H, W] = the sum of the row entries read from each position.
inline void row2im_images(const PlaneGeometry g, int channels, int nb, const float* rows, float* dx) {
  for_each_input_plane(g, channels, nb, [&](int64_t xo, int64_t ro, int64_t ld) { row2im_plane(g, rows + ro, ld, dx + xo); });
}

}  // namespace dsg::conv_detail
