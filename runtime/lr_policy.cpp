#include "runtime/lr_policy.hpp"

#include <cmath>

#include "runtime/error.hpp"

namespace dsg {

float learning_rate(const SolverParameter& p, int iter) {
  const std::string policy = p.has_lr_policy() ? p.lr_policy() : "fixed";
  const double base = p.base_lr(), it = iter;
  if (policy == "fixed") return float(base);
  if (policy == "step") return float(base * std::pow(p.gamma(), std::floor(it / p.stepsize())));
  if (policy == "exp") return float(base * std::pow(p.gamma(), it));
  if (policy == "inv") return float(base * std::pow(1.0 + p.gamma() * it, -p.power()));
  if (policy == "multistep") {
    int steps = 0;
    for (int v : p.stepvalue()) steps += iter >= v;
    return float(base * std::pow(p.gamma(), steps));
  }
  double max_iter = p.max_iter() > 0 ? p.max_iter() : 1;
  if (policy == "poly") return float(base * std::pow(std::max(0.0, 1.0 - it / max_iter), p.power()));
  if (policy == "sigmoid") return float(base / (1.0 + std::exp(-p.gamma() * (it - p.stepsize()))));
  if (policy == "cosine") return float(base * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, it / max_iter))));
  throw Error("unknown lr_policy '" + policy + "'");
}

}  // namespace dsg
