// Device kernel bodies of the Convolution layer (layers/convolution_device.cpp), for runtime/launch.hpp:
// im2col of a chunk of images (one thread per column entry), col2im as one thread per input
// pixel summing its column entries in a fixed order (the CPU path's: kernel columns outer, rows
// inner; no atomics), the reorders between the GEMM layout [rows, nb Ho Wo] and NCHW, the bias
// gradient, and the gather / scatter-add of the compact weights of structured execution.
#pragma once
#include <cstdint>

#include "runtime/launch.hpp"

namespace dsg::conv_kernels {

// The column floats one device im2col + GEMM step may hold (128 MiB; at least one image per
// step). Tests lower it to run several steps on small shapes.
inline int64_t device_column_floats = int64_t(1) << 25;

// One convolution's sizes (2-D, NCHW).
struct ConvShape {
  int c, h, w, m, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw;
};

// col[(ci kh + i) kw + j][n Ho Wo + oh Wo + ow] = x[n0 + n, chan[ci], oh sh - ph + i dh,
// ow sw - pw + j dw] (0 outside the input) for ci < channels (chan null: ci itself); rows of col
// are len = nb Ho Wo floats long.
struct Im2col {
  ConvShape s;
  int n0;
  int64_t len;
  const int* chan;
  const float* x;
  float* col;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t row = i / len, pos = i % len, spatial = int64_t(s.ho) * s.wo;
    const int taps = s.kh * s.kw;
    const int ci = int(row / taps), t = int(row % taps), ki = t / s.kw, kj = t % s.kw;
    const int64_t n = pos / spatial;
    const int oh = int((pos % spatial) / s.wo), ow = int(pos % s.wo);
    const int c = chan ? chan[ci] : ci;
    const int ih = oh * s.sh - s.ph + ki * s.dh, iw = ow * s.sw - s.pw + kj * s.dw;
    col[i] = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w
                 ? x[((int64_t(n0) + n) * s.c + c) * s.h * s.w + int64_t(ih) * s.w + iw]
                 : 0.0f;
  }
};

// dx[n0 + n, c, ih, iw] = the sum of the column entries that Im2col read from that position, in
// the CPU col2im's order; 0 for channels with in_row[c] < 0 (not im2col'd). in_row null: every
// channel is its own column channel. One thread per input pixel of the nb images.
struct Col2im {
  ConvShape s;
  int n0;
  int64_t len;
  const int* in_row;
  const float* col;
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t plane = int64_t(s.h) * s.w, spatial = int64_t(s.ho) * s.wo;
    const int64_t nc = i / plane;
    const int n = int(nc / s.c), c = int(nc % s.c);
    const int ih = int((i % plane) / s.w), iw = int(i % s.w);
    const int ci = in_row ? in_row[c] : c;
    float* d = dx + (int64_t(n0) * s.c) * plane + i;
    if (ci < 0) {
      *d = 0.0f;
      return;
    }
    const int taps = s.kh * s.kw;
    const float* base = col + int64_t(ci) * taps * len + int64_t(n) * spatial;
    float acc = 0.0f;
    for (int kj = 0; kj < s.kw; ++kj) {
      const int pw = iw + s.pw - kj * s.dw;
      if (pw < 0 || pw % s.sw != 0) continue;
      const int ow = pw / s.sw;
      if (ow >= s.wo) continue;
      for (int ki = 0; ki < s.kh; ++ki) {
        const int ph = ih + s.ph - ki * s.dh;
        if (ph < 0 || ph % s.sh != 0) continue;
        const int oh = ph / s.sh;
        if (oh >= s.ho) continue;
        acc += base[int64_t(ki * s.kw + kj) * len + int64_t(oh) * s.wo + ow];
      }
    }
    *d = acc;
  }
};

// y[n0 + n, m, :] = out[row[m], n Ho Wo + :] + bias[m] (row null: m; row[m] < 0: 0), one thread
// per top entry of the nb images; out rows are len floats long.
struct ScatterOutput {
  ConvShape s;
  int n0;
  int64_t len;
  const int* row;
  const float* out;
  const float* bias;
  float* y;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t spatial = int64_t(s.ho) * s.wo, nm = i / spatial, pos = i % spatial;
    const int n = int(nm / s.m), m = int(nm % s.m);
    const int r = row ? row[m] : m;
    float* d = y + int64_t(n0) * s.m * spatial + i;
    if (r < 0) {
      *d = 0.0f;
      return;
    }
    *d = out[int64_t(r) * len + n * spatial + pos] + (bias ? bias[m] : 0.0f);
  }
};

// buf[r, n Ho Wo + :] = dy[n0 + n, chan[r], :] (chan null: r), one thread per entry of buf
// [rows, len].
struct GatherDiff {
  ConvShape s;
  int n0;
  int64_t len;
  const int* chan;
  const float* dy;
  float* buf;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t spatial = int64_t(s.ho) * s.wo, r = i / len, col = i % len, n = col / spatial, pos = col % spatial;
    const int64_t m = chan ? chan[r] : r;
    buf[i] = dy[((int64_t(n0) + n) * s.m + m) * spatial + pos];
  }
};

// db[chan[r]] += sums[r] (chan null: db[r]), one thread per row: the bias gradient from the row
// sums of the reordered top diff.
struct AddBiasDiff {
  const int* chan;
  const float* sums;
  float* db;
  DSG_HOST_DEVICE void operator()(int64_t r) const { db[chan ? chan[r] : r] += sums[r]; }
};

// Compact weights of structured execution: wc[i] = w[map[i]] (gather) and dw[map[i]] += dwc[i]
// (scatter-add; the map's entries are distinct).
struct GatherWeights {
  const int* map;
  const float* w;
  float* wc;
  DSG_HOST_DEVICE void operator()(int64_t i) const { wc[i] = w[map[i]]; }
};
struct ScatterAddWeights {
  const int* map;
  const float* dwc;
  float* dw;
  DSG_HOST_DEVICE void operator()(int64_t i) const { dw[map[i]] += dwc[i]; }
};

}  // namespace dsg::conv_kernels
