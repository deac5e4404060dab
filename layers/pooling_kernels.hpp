// Device kernel bodies of the Pooling layer (layers/pooling.cpp), for runtime/launch.hpp. They
// follow the CPU path's arithmetic exactly (taps visited row-major, the first maximum wins, AVE's
// divisor is the window clipped to the padded input, 1 / (kh kw) multiplied for unclipped
// windows), so the device results agree with the CPU's to the bit.
#pragma once
#include <cfloat>
#include <cstdint>

#include "runtime/launch.hpp"

namespace dsg::pool_kernels {

// Sizes of one pooling: bottoms [planes, h, w] -> tops [planes, ho, wo].
struct PoolShape {
  int64_t planes;
  int h, w, ho, wo, kh, kw, sh, sw, ph, pw;
};

// Input range [lo, hi) of output o along one axis, clipped to the input; size: the window
// clipped to the padded input (AVE's divisor). As PoolingLayer::windows().
struct Window1 {
  int lo, hi, size;
};
DSG_HOST_DEVICE inline Window1 window_of(int o, int stride, int pad, int kernel, int in) {
  const int start = o * stride - pad;
  const int end = start + kernel < in + pad ? start + kernel : in + pad;
  return Window1{start > 0 ? start : 0, end < in ? end : in, end - start};
}

// Outputs o along one axis whose window [o stride - pad, o stride - pad + kernel) holds input i:
// [first, last).
DSG_HOST_DEVICE inline void outputs_covering(int i, int stride, int pad, int kernel, int out, int& first, int& last) {
  const int p = i + pad;
  first = p < kernel ? 0 : (p - kernel) / stride + 1;
  last = p / stride + 1;
  if (last > out) last = out;
}

// One thread per top entry: y = the window maximum, arg = its flat h w index (-1 when no tap
// exceeds -FLT_MAX), mask (optional second top) = arg as a float.
struct MaxForward {
  PoolShape s;
  const float* x;
  float* y;
  int* arg;
  float* mask;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t oplane = int64_t(s.ho) * s.wo, t = i / oplane;
    const int oh = int((i % oplane) / s.wo), ow = int(i % s.wo);
    const Window1 hw = window_of(oh, s.sh, s.ph, s.kh, s.h), ww = window_of(ow, s.sw, s.pw, s.kw, s.w);
    const float* xp = x + t * s.h * s.w;
    float best = -FLT_MAX;
    int at = -1;
    for (int ih = hw.lo; ih < hw.hi; ++ih)
      for (int iw = ww.lo; iw < ww.hi; ++iw) {
        const float v = xp[ih * s.w + iw];
        const bool gt = v > best;
        best = gt ? v : best;
        at = gt ? ih * s.w + iw : at;
      }
    y[i] = best;
    arg[i] = at;
    if (mask) mask[i] = float(at);
  }
};

// One thread per top entry: the window mean (Caffe's padded divisor).
struct AveForward {
  PoolShape s;
  const float* x;
  float* y;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t oplane = int64_t(s.ho) * s.wo, t = i / oplane;
    const int oh = int((i % oplane) / s.wo), ow = int(i % s.wo);
    const Window1 hw = window_of(oh, s.sh, s.ph, s.kh, s.h), ww = window_of(ow, s.sw, s.pw, s.kw, s.w);
    const float* xp = x + t * s.h * s.w;
    float sum = 0;
    for (int ih = hw.lo; ih < hw.hi; ++ih)
      for (int iw = ww.lo; iw < ww.hi; ++iw) sum += xp[ih * s.w + iw];
    // Unclipped windows multiply by 1 / (kh kw), the others divide (as the CPU path).
    const bool full = hw.hi - hw.lo == s.kh && ww.hi - ww.lo == s.kw;
    y[i] = full ? sum * (1.0f / float(s.kh * s.kw)) : sum / float(hw.size * ww.size);
  }
};

// One thread per bottom entry: dx = the sum, in output order, of dy over the windows covering it
// (MAX: those whose argmax it is; AVE: dy / window size).
struct Backward {
  PoolShape s;
  bool max;
  const float* dy;
  const int* arg;  // MAX only
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t plane = int64_t(s.h) * s.w, t = i / plane;
    const int ih = int((i % plane) / s.w), iw = int(i % s.w), at = ih * s.w + iw;
    int oh0, oh1, ow0, ow1;
    outputs_covering(ih, s.sh, s.ph, s.kh, s.ho, oh0, oh1);
    outputs_covering(iw, s.sw, s.pw, s.kw, s.wo, ow0, ow1);
    const int64_t base = t * s.ho * s.wo;
    float acc = 0;
    for (int oh = oh0; oh < oh1; ++oh)
      for (int ow = ow0; ow < ow1; ++ow) {
        const int64_t o = base + int64_t(oh) * s.wo + ow;
        if (max) {
          if (arg[o] == at) acc += dy[o];
        } else {
          const Window1 hw = window_of(oh, s.sh, s.ph, s.kh, s.h), ww = window_of(ow, s.sw, s.pw, s.kw, s.w);
          acc += dy[o] / float(hw.size * ww.size);
        }
      }
    dx[i] = acc;
  }
};

}  // namespace dsg::pool_kernels
