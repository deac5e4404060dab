#include "runtime/filler.hpp"

#include <cmath>

#include "runtime/error.hpp"

namespace dsg {

const char* known_fillers() { return "constant, uniform, gaussian, xavier, msra"; }

static float fan_scale(const FillerParameter& filler, const Tensor& t) {
  int64_t count = t.count();
  double fan_in = t.num_axes() > 0 && t.shape(0) ? double(count) / t.shape(0) : 1.0;
  double fan_out = t.num_axes() > 1 && t.shape(1) ? double(count) / t.shape(1) : 1.0;
  double n = fan_in;
  if (filler.variance_norm() == FillerParameter::FAN_OUT) n = fan_out;
  if (filler.variance_norm() == FillerParameter::AVERAGE) n = (fan_in + fan_out) / 2;
  return static_cast<float>(n);
}

void fill(const FillerParameter& filler, Tensor& tensor, std::mt19937_64& rng) {
  const std::string& type = filler.type();
  float* d = tensor.mutable_data();
  int64_t n = tensor.count();
  if (type == "constant") {
    for (int64_t i = 0; i < n; ++i) d[i] = filler.value();
  } else if (type == "uniform") {
    std::uniform_real_distribution<float> u(filler.min(), filler.max());
    for (int64_t i = 0; i < n; ++i) d[i] = u(rng);
  } else if (type == "gaussian") {
    std::normal_distribution<float> g(filler.mean(), filler.std());
    for (int64_t i = 0; i < n; ++i) d[i] = g(rng);
    if (filler.sparse() > 0 && tensor.num_axes() > 1) {  // Caffe: keep each weight with p = sparse / num_outputs
      double keep = double(filler.sparse()) / tensor.shape(0);
      std::bernoulli_distribution b(keep);
      for (int64_t i = 0; i < n; ++i)
        if (!b(rng)) d[i] = 0;
    }
  } else if (type == "xavier") {
    float scale = std::sqrt(3.0f / fan_scale(filler, tensor));
    std::uniform_real_distribution<float> u(-scale, scale);
    for (int64_t i = 0; i < n; ++i) d[i] = u(rng);
  } else if (type == "msra") {
    std::normal_distribution<float> g(0.0f, std::sqrt(2.0f / fan_scale(filler, tensor)));
    for (int64_t i = 0; i < n; ++i) d[i] = g(rng);
  } else {
    throw Error("unknown filler type '" + type + "'; known: " + known_fillers());
  }
}

}  // namespace dsg
