#include "layers/fixed_point.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "runtime/error.hpp"

namespace dsg {

void validate_fixed_point(const FixedPointParameter& p, const std::string& where) {
  auto ok = [](uint32_t bits) { return bits == 0 || (bits >= 2 && bits <= 24); };
  if (!ok(p.weight_bits()) || !ok(p.activation_bits()))
    throw Error(where + strfmt("fixed_point_param: weight_bits and activation_bits must be 0 (off) or in [2, 24], "
                               "got %u and %u",
                               p.weight_bits(), p.activation_bits()));
}

float weight_grid_step(const float* x, int64_t n, int bits) {
  if (bits <= 0) return 0.0f;
  float max = 0.0f;
  for (int64_t i = 0; i < n; ++i) max = std::max(max, std::fabs(x[i]));
  return max / float((int64_t(1) << (bits - 1)) - 1);
}

void round_to_step(const float* x, int64_t n, float step, float* out) {
  if (step == 0.0f) {
    for (int64_t i = 0; i < n; ++i) out[i] = x[i];
    return;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = step * std::round(x[i] / step);
}

float activation_step(int bits) { return bits <= 0 ? 0.0f : std::ldexp(1.0f, -(bits - 1)); }

}  // namespace dsg
