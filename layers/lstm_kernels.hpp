// The LSTM's gate nonlinearities and its per-step kernel bodies for the device path (forward_cuda /
// backward_cuda in layers/lstm.cpp). The approximations are the CPU path's own (it calls them too),
// so both paths compute the same gate math; the bodies compute one (stream n, hidden unit j) of one
// step each and write only that unit's entries. Instantiated for CUDA in layers/lstm.cu.
#pragma once
#include <cstdint>
#include <cstring>

#include "runtime/launch.hpp"

namespace dsg {
namespace lstm {

// exp(x) for x in float range, relative error about 1e-7 (Cephes' expf): straight-line arithmetic,
// so the CPU gate loops vectorise (std::exp does not without -ffast-math).
DSG_HOST_DEVICE inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = 88.0f < x ? 88.0f : x;
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
  float r = x - n * 0.693359375f;
  r -= n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
#if defined(__CUDA_ARCH__)
  const float scale = __int_as_float(bits);
#else
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
#endif
  return p * scale;
}

DSG_HOST_DEVICE inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }
DSG_HOST_DEVICE inline float tanh_approx(float x) { return 2.0f / (1.0f + exp_approx(-2.0f * x)) - 1.0f; }

}  // namespace lstm

// Gate math of step t for every stream (i = n H + j), after the step's recurrent GEMM: the row
// block of gates [N, 4H] holds the pre-activations [i f o g]~ on entry and the activations on exit
// (unit j's four columns j, H + j, 2H + j, 3H + j belong to i). With keep = cont_t[n] (0 at t = 0,
// where c_prev and cont are null):
//   c_t = f (keep c_{t-1}) + i g (i g when keep == 0),  h_t = o tanh(c_t),
// and h'_t = cont_{t+1}[n] h_t into h_next (the next step's GEMM input) unless it is null (last step).
struct LstmCellForward {
  int64_t H = 0;
  float* gates = nullptr;             // [N, 4H] of step t
  const float* c_prev = nullptr;      // [N, H] c_{t-1}, null at t = 0
  const float* cont = nullptr;        // [N] cont_t, null at t = 0
  float* c = nullptr;                 // [N, H] c_t
  float* tanh_c = nullptr;            // [N, H] tanh(c_t)
  float* h = nullptr;                 // [N, H] h_t (the top)
  float* h_next = nullptr;            // [N, H] h'_t, null at the last step
  const float* cont_next = nullptr;   // [N] cont_{t+1}, null at the last step
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t n = i / H, j = i % H;
    float* a = gates + n * 4 * H;
    const float gi = lstm::sigmoid_approx(a[j]);
    const float gf = lstm::sigmoid_approx(a[H + j]);
    const float go = lstm::sigmoid_approx(a[2 * H + j]);
    const float gg = lstm::tanh_approx(a[3 * H + j]);
    a[j] = gi, a[H + j] = gf, a[2 * H + j] = go, a[3 * H + j] = gg;
    const float keep = cont ? cont[n] : 0.0f;
    const float cv = keep != 0.0f ? gf * (keep * c_prev[i]) + gi * gg : gi * gg;
    const float tc = lstm::tanh_approx(cv);
    const float hv = go * tc;
    c[i] = cv;
    tanh_c[i] = tc;
    h[i] = hv;
    if (h_next) h_next[i] = cont_next[n] * hv;
  }
};

// BPTT gate gradients of step t for every stream (i = n H + j): dG_t's four columns of unit j from
// the activations, tanh(c_t), c_{t-1} (scaled by keep = cont_t[n]; null at t = 0), the top diff dy
// and the carries from step t + 1 (dh_in = dG_{t+1} W_hc, dc_io = dc_{t+1} f_{t+1}, both scaled by
// keep_next = cont_{t+1}[n]; cont_next null at the last step):
//   dh = dy + keep_next dh_in,  dc = keep_next dc_io + dh o (1 - tanh^2 c_t),
//   di~ = dc g i (1 - i),  df~ = dc (keep c_{t-1}) f (1 - f),  do~ = dh tanh(c_t) o (1 - o),
//   dg~ = dc i (1 - g^2);  leaves dc_io = dc f for step t - 1.
struct LstmGateGradients {
  int64_t H = 0;
  const float* gates = nullptr;      // [N, 4H] activations of step t
  const float* tanh_c = nullptr;     // [N, H]
  const float* c_prev = nullptr;     // [N, H] c_{t-1}, null at t = 0
  const float* cont = nullptr;       // [N] cont_t, null at t = 0
  const float* dy = nullptr;         // [N, H] top diff of step t
  const float* dh_in = nullptr;      // [N, H]
  const float* cont_next = nullptr;  // [N] cont_{t+1}, null at the last step
  float* dc_io = nullptr;            // [N, H]
  float* dg = nullptr;               // [N, 4H] dG_t
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t n = i / H, j = i % H;
    const float* a = gates + n * 4 * H;
    const float gi = a[j], gf = a[H + j], go = a[2 * H + j], gg = a[3 * H + j], tc = tanh_c[i];
    const float keep = cont ? cont[n] : 0.0f;
    const float keep_next = cont_next ? cont_next[n] : 0.0f;
    const float cp = c_prev ? keep * c_prev[i] : 0.0f;
    const float dh = dy[i] + keep_next * dh_in[i];
    const float dc = keep_next * dc_io[i] + dh * go * (1.0f - tc * tc);
    float* d = dg + n * 4 * H;
    d[j] = dc * gg * gi * (1.0f - gi);
    d[H + j] = dc * cp * gf * (1.0f - gf);
    d[2 * H + j] = dh * tc * go * (1.0f - go);
    d[3 * H + j] = dc * gi * (1.0f - gg * gg);
    dc_io[i] = dc * gf;
  }
};

}  // namespace dsg
