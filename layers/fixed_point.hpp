// Fixed-point simulation helpers for fixed_point_param (see proto/dsg.proto FixedPointParameter):
// rounding onto symmetric grids, used by layers that simulate ESE-style 12-bit weights and 16-bit
// activations in float arithmetic. Backward treats the rounding as the identity (straight-through).
#pragma once
#include <cstdint>
#include <string>

#include "dsg.pb.h"

namespace dsg {

// Throws dsg::Error (prefixed by `where`) unless both bit widths are 0 (off) or in [2, 24].
void validate_fixed_point(const FixedPointParameter& p, const std::string& where);

// Weight grid step of a tensor: max|x| / (2^(bits-1) - 1); 0 when x is all zero or bits == 0.
float weight_grid_step(const float* x, int64_t n, int bits);

// out[i] = step * round(x[i] / step) (ties away from zero); a copy when step == 0. In place is fine.
void round_to_step(const float* x, int64_t n, float step, float* out);

// Activation step of the Q1.(bits-1) format on [-1, 1): 2^-(bits-1); 0 when bits == 0.
float activation_step(int bits);

// Rounds one activation onto the Q1.(bits-1) grid with step `step` (> 0), saturating to
// [-1, 1 - step].
inline float round_activation(float v, float step) {
  float q = float(int64_t(v / step + (v >= 0 ? 0.5f : -0.5f))) * step;
  return q < -1.0f ? -1.0f : (q > 1.0f - step ? 1.0f - step : q);
}

}  // namespace dsg
