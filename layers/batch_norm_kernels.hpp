// Device kernel bodies of the BatchNorm layer (layers/batch_norm.cpp), for runtime/launch.hpp.
// Per-channel statistics are summed in double in two stages of fixed order (deterministic), and
// the running-statistics update follows the CPU's branches exactly.
#pragma once
#include <cmath>
#include <cstdint>

#include "runtime/launch.hpp"

namespace dsg::bn_kernels {

// The bottom as [num, channels, spatial].
struct BnShape {
  int num, channels;
  int64_t spatial;
};

// Per-channel sums in two stages of fixed order (deterministic, no atomics): the m = num spatial
// entries of channel c, in the CPU path's order (images, then positions), are cut into `parts`
// runs of `run` entries; stage one sums each run (one thread per channel and run), stage two
// the runs of a channel in order (one thread per channel). With one part the sums are the CPU's.
struct Parts {
  int parts;
  int64_t run;
};

// Entry k (< m) of channel c in a [num, channels, spatial] buffer.
DSG_HOST_DEVICE inline int64_t channel_entry(const BnShape& s, int c, int64_t k) {
  return ((k / s.spatial) * s.channels + c) * s.spatial + k % s.spatial;
}

// part[c parts + p] = sum over run p of channel c of x (mean null) or of (x - mean_c)^2.
struct PartialSums {
  BnShape s;
  Parts q;
  const float* x;
  const double* mean;
  double* part;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int c = int(i / q.parts), p = int(i % q.parts);
    const int64_t m = int64_t(s.num) * s.spatial, k0 = p * q.run, k1 = k0 + q.run < m ? k0 + q.run : m;
    double acc = 0;
    if (mean) {
      const double mu = mean[c];
      for (int64_t k = k0; k < k1; ++k) {
        const float v = x[channel_entry(s, c, k)];
        acc += (v - mu) * (v - mu);
      }
    } else {
      for (int64_t k = k0; k < k1; ++k) acc += x[channel_entry(s, c, k)];
    }
    part[i] = acc;
  }
};

// mean[c] = (sum of channel c's parts) / m.
struct ChannelMean {
  BnShape s;
  Parts q;
  const double* part;
  double* mean;
  DSG_HOST_DEVICE void operator()(int64_t c) const {
    double sum = 0;
    for (int p = 0; p < q.parts; ++p) sum += part[c * q.parts + p];
    mean[c] = sum / double(int64_t(s.num) * s.spatial);
  }
};

// Batch statistics of channel c (m = num spatial > 0) from its mean and the parts of its sum of
// squared deviations: mean_out[c], inv_std[c], and the running sums updated as in
// BatchNormLayer::forward_cpu. Reads factor[0] before BatchFactor updates it.
struct BatchStats {
  BnShape s;
  Parts q;
  float eps, maf;
  const double* mean_d;
  const double* part;
  const float* factor;
  float* run_mean;
  float* run_var;
  float* mean;
  float* inv_std;
  DSG_HOST_DEVICE void operator()(int64_t ci) const {
    const int c = int(ci);
    const int64_t m = int64_t(s.num) * s.spatial;
    const float bias_correction = m > 1 ? float(m) / float(m - 1) : 1.0f;
    double sumsq = 0;
    for (int p = 0; p < q.parts; ++p) sumsq += part[ci * q.parts + p];
    const double mu = mean_d[c];
    const double var = sumsq / double(m);
    mean[c] = float(mu);
    inv_std[c] = float(1.0 / sqrt(var + eps));
    const float f = factor[0];
    if (mu == 0 && sumsq == 0) {
      // Not computed in this pass: no statistics (the running sums keep their global estimate).
      const float keep = f == 0.0f ? 0.0f : 1.0f / f;
      run_mean[c] = run_mean[c] * maf + run_mean[c] * keep;
      run_var[c] = run_var[c] * maf + run_var[c] * keep;
      return;
    }
    if (run_mean[c] == 0 && run_var[c] == 0 && f != 0) {
      // First statistics of a channel not computed before: they stand in for the passes it missed.
      const float weight = f * maf + 1.0f;
      run_mean[c] = float(mu) * weight;
      run_var[c] = bias_correction * float(var) * weight;
      return;
    }
    run_mean[c] = run_mean[c] * maf + float(mu);
    run_var[c] = run_var[c] * maf + bias_correction * float(var);
  }
};

// factor = factor maf + 1 (one thread, after BatchStats).
struct BatchFactor {
  float maf;
  float* factor;
  DSG_HOST_DEVICE void operator()(int64_t) const { factor[0] = factor[0] * maf + 1.0f; }
};

// Global statistics of channel c: mean = run_mean / factor, inv_std = 1 / sqrt(run_var / factor + eps).
struct GlobalStats {
  float eps;
  const float* run_mean;
  const float* run_var;
  const float* factor;
  float* mean;
  float* inv_std;
  DSG_HOST_DEVICE void operator()(int64_t c) const {
    const float s = factor[0] == 0.0f ? 0.0f : 1.0f / factor[0];
    mean[c] = run_mean[c] * s;
    inv_std[c] = 1.0f / sqrtf(run_var[c] * s + eps);
  }
};

// y = (x - mean_c) inv_std_c, one thread per entry (x == y allowed).
struct Normalize {
  BnShape s;
  const float* x;
  const float* mean;
  const float* inv_std;
  float* y;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int c = int((i / s.spatial) % s.channels);
    y[i] = (x[i] - mean[c]) * inv_std[c];
  }
};

// The normalised value of entry i: the saved top (in place) or recomputed from x.
DSG_HOST_DEVICE inline float normalized(const float* saved_y, const float* x, float mu, float is, int64_t i) {
  return saved_y ? saved_y[i] : (x[i] - mu) * is;
}

// Batch statistics backward, stage one: part[2 (c parts + p) + {0, 1}] = the sums of dy and of
// dy y over run p of channel c.
struct BackwardParts {
  BnShape s;
  Parts q;
  const float* x;
  const float* saved_y;  // the top of the last forward when it ran in place, else null
  const float* dy;
  const float* mean;
  const float* inv_std;
  double* part;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int c = int(i / q.parts), p = int(i % q.parts);
    const int64_t m = int64_t(s.num) * s.spatial, k0 = p * q.run, k1 = k0 + q.run < m ? k0 + q.run : m;
    const float mu = mean[c], is = inv_std[c];
    double a = 0, b = 0;
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t e = channel_entry(s, c, k);
      a += dy[e];
      b += double(dy[e]) * normalized(saved_y, x, mu, is, e);
    }
    part[2 * i] = a;
    part[2 * i + 1] = b;
  }
};

// Stage two: means[c] = mean(dy), means[C + c] = mean(dy y).
struct BackwardMeans {
  BnShape s;
  Parts q;
  const double* part;
  float* means;
  DSG_HOST_DEVICE void operator()(int64_t c) const {
    const int64_t m = int64_t(s.num) * s.spatial;
    double a = 0, b = 0;
    for (int p = 0; p < q.parts; ++p) {
      a += part[2 * (c * q.parts + p)];
      b += part[2 * (c * q.parts + p) + 1];
    }
    means[c] = float(a / double(m));
    means[s.channels + c] = float(b / double(m));
  }
};

// dx = (dy - mean(dy) - y mean(dy y)) inv_std, one thread per entry; means null: dx = dy inv_std
// (global statistics). dx may be dy (in place).
struct BackwardDx {
  BnShape s;
  const float* x;
  const float* saved_y;
  const float* dy;
  const float* mean;
  const float* inv_std;
  const float* means;
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int c = int((i / s.spatial) % s.channels);
    const float mu = mean[c], is = inv_std[c];
    const float mean_dy = means ? means[c] : 0.0f, mean_dyy = means ? means[s.channels + c] : 0.0f;
    dx[i] = (dy[i] - mean_dy - normalized(saved_y, x, mu, is, i) * mean_dyy) * is;
  }
};

}  // namespace dsg::bn_kernels
