// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011). A draw is a pure function of
// (seed, stream, index): stream combines iteration and layer, index is the element. No state,
// so CPU threads and GPU kernels produce bit-identical masks. Header-only and usable from CUDA.
#pragma once
#include <cstdint>

#include "runtime/launch.hpp"

namespace dsg {

struct Philox4 {
  uint32_t v[4];
};

DSG_HOST_DEVICE inline void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Philox4x32 with 10 rounds on counter c and key k.
DSG_HOST_DEVICE inline Philox4 philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                           uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// 32 random bits for element `index` of stream `stream` under `seed`.
DSG_HOST_DEVICE inline uint32_t counter_bits(uint64_t seed, uint64_t stream, uint64_t index) {
  return philox4x32(static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                    static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                    static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32))
      .v[0];
}

// Uniform float in [0, 1) with 24 random bits.
DSG_HOST_DEVICE inline float counter_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<float>(counter_bits(seed, stream, index) >> 8) * (1.0f / 16777216.0f);
}

// Uniform floats for elements 4 * block .. 4 * block + 3 of a stream from one Philox call (element
// i uses lane i % 4 of block i / 4): a quarter of the work of four counter_uniform calls.
DSG_HOST_DEVICE inline void counter_uniform4(uint64_t seed, uint64_t stream, uint64_t block, float out[4]) {
  const Philox4 r = philox4x32(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                               static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                               static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  for (int k = 0; k < 4; ++k) out[k] = static_cast<float>(r.v[k] >> 8) * (1.0f / 16777216.0f);
}

// Stream id for (iteration, layer key): distinct layers and iterations get distinct streams.
DSG_HOST_DEVICE inline uint64_t counter_stream(int64_t iteration, uint32_t layer_key) {
  return (static_cast<uint64_t>(iteration) << 32) ^ layer_key;
}

// FNV-1a hash of a name (layer keys are hashes of layer names, stable across nets and devices).
inline uint32_t name_key(const char* s) {
  uint32_t h = 2166136261u;
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 16777619u;
  return h;
}

}  // namespace dsg
