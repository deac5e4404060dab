// Solver update rules (SGD with momentum, Nesterov, Adam), registered by Caffe's solver type
// string. A rule turns a parameter's regularised gradient (in its diff) into the step that the
// solver subtracts from the value, keeping per-parameter history.
#pragma once
#include <memory>
#include <vector>

#include "dsg.pb.h"
#include "runtime/net.hpp"
#include "runtime/registry.hpp"

namespace dsg {

class UpdateRule {
 public:
  explicit UpdateRule(const SolverParameter& param) : param_(param) {}
  virtual ~UpdateRule() = default;
  // Allocates history for every learnable parameter.
  void init(const std::vector<LearnableParam>& params);
  // Replaces params[i].tensor's diff with the step to subtract; `iter` counts from 0.
  virtual void compute_step(size_t i, Tensor& param, float rate, int iter) = 0;
  // One fused pass over parameter i: g += decay * w (L2), the rule's step, w -= step, g = 0.
  // Returns false when the rule has no fused form (the solver then runs the generic passes).
  virtual bool fused_l2_update(size_t i, Tensor& param, float rate, float decay) {
    (void)i; (void)param; (void)rate; (void)decay;
    return false;
  }
  void save(SolverState* state) const;
  void load(const SolverState& state);

 protected:
  virtual bool uses_second_moment() const { return false; }
  SolverParameter param_;
  std::vector<std::vector<float>> history_, history2_;
};

using UpdateRuleRegistry = Registry<UpdateRule, const SolverParameter&>;
inline UpdateRuleRegistry& update_rule_registry() { return UpdateRuleRegistry::instance("solver type"); }

}  // namespace dsg
