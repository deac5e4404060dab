// Solver update rules (SGD with momentum, Nesterov, Adam), registered by Caffe's solver type
// string. A rule turns a parameter's regularised gradient (in its diff) into the step that the
// solver subtracts from the value, keeping per-parameter history. The rules run through the
// DeviceOps of the device given to init() (runtime/ops.hpp); the history lives on that device.
#pragma once
#include <memory>
#include <vector>

#include "dsg.pb.h"
#include "runtime/net.hpp"
#include "runtime/ops.hpp"
#include "runtime/registry.hpp"

namespace dsg {

class UpdateRule {
 public:
  explicit UpdateRule(const SolverParameter& param) : param_(param) {}
  virtual ~UpdateRule() = default;
  // Allocates (zeroed) history for every learnable parameter; the rule then runs on `device`.
  void init(const std::vector<LearnableParam>& params, const Device& device = Device::cpu());
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
  const DeviceOps& ops() const { return *ops_; }
  const Device& device() const { return device_; }

  SolverParameter param_;
  std::vector<Tensor> history_, history2_;  // values only; one per learnable parameter

 private:
  Device device_;
  const DeviceOps* ops_ = &cpu_ops();
};

using UpdateRuleRegistry = Registry<UpdateRule, const SolverParameter&>;
inline UpdateRuleRegistry& update_rule_registry() { return UpdateRuleRegistry::instance("solver type"); }

}  // namespace dsg
