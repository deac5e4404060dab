// SparsityController: creates the policies named by layers' sparsity_param, resolves the solver's
// schedule (epochs to iterations), and drives the policies through the training loop:
//   begin_iteration(it)  phase changes: DENSE releases masks, PRUNE prunes once, GRADUAL follows
//                        the cubic (AGP) ramp, HOLD keeps masks;
//                        QUANTIZE quantizes the layers with a quant_param (k-means or TTQ);
//   before_update(rate)  masks gradients, then lets quantizers reshape them (cluster sums, TTQ);
//   after_update()       masks weights (pruned stay exactly 0), then projects quantized layers;
//   lr_mult(it)          the phase's learning-rate multiplier;
//   report()             "fired N times, sparsity X% (target Y%)" per policy, when it changed;
//   layer_stats()        each driven layer's sparsity (policies) and bits per weight (quantizers);
//   save()/load()        policy state in snapshots, so a resumed run continues identically.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "runtime/net.hpp"
#include "runtime/solver.hpp"
#include "runtime/training_hooks.hpp"
#include "sparsity/policy.hpp"
#include "sparsity/quantizer.hpp"

namespace dsg {

class SparsityController : public TrainingHooks {
 public:
  // `layer_locations` maps NetParameter layer index to "file:line:col" for messages (may be
  // empty). Throws dsg::Error for invalid policies or schedules, including a policy that never
  // fires before max_iter.
  SparsityController(Net& net, const SolverParameter& solver, int64_t samples_per_iter, int64_t train_set_size);

  bool empty() const { return policies_.empty() && quantizers_.empty() && sparse_backward_.empty(); }
  // Another net sharing the weights (the TEST net) whose layers also get the structured sparsity.
  void add_mirror(Net& net) { mirrors_.push_back(&net); }
  // The solver's device: masks and quantizers apply there (Solver::add_hooks calls it).
  void set_device(const Device& device) override;
  void begin_iteration(int iter) override;
  bool changed_structure() const override { return changed_; }
  float lr_mult(int iter) const override;
  void before_update(float rate) override;
  void after_update() override;
  // The display-interval lines: those of status_lines() that differ from what the previous call
  // returned (so an unchanged policy is not logged again every display).
  std::vector<std::string> report() const override;
  std::vector<LayerStats> layer_stats() const override;
  // One line per policy ("Sparsity ip1 (magnitude FINE): fired N times, sparsity X% (target Y%)")
  // and per quantizer, every time.
  std::vector<std::string> status_lines() const;
  // The resolved schedule, one line per phase.
  std::vector<std::string> describe() const;
  void save(ModelFile* model) const override;
  // Restores policy state; `iter` is the iteration training resumes at.
  void load(const ModelFile& model, int iter) override;

  const std::vector<std::unique_ptr<SparsityPolicy>>& policies() const { return policies_; }
  const std::vector<std::unique_ptr<Quantizer>>& quantizers() const { return quantizers_; }
  // The layer modes the policies will switch on in `net` at prune steps (layer name, mode):
  // active outputs of FILTER-pruned layers, active inputs of the layers that consume them (the
  // channel pass) and of CHANNEL-pruned layers. For checking device support before training.
  std::vector<std::pair<std::string, LayerMode>> planned_modes(const Net& net) const;
  // Index of the phase active at `iter`, -1 before the first phase.
  int phase_at(int iter) const;

  struct Phase {
    SchedulePhase spec;
    int start = 0;
    int end = 0;  // first iteration of the next phase (or max_iter)
  };
  const std::vector<Phase>& phases() const { return phases_; }

 private:
  void create_quantizers();
  void create_policies();
  bool resolve_schedule(const SolverParameter& solver, int64_t samples_per_iter, int64_t train_set_size);
  // Throws when a policy or quantizer is driven by no phase that starts before max_iter.
  void check_everything_fires(int max_iter) const;
  bool drives(const Phase& phase, const std::string& layer) const;
  bool drives(const Phase& phase, const SparsityPolicy& policy) const { return drives(phase, policy.layer_name()); }
  void prune_driven(const Phase& phase, const std::vector<float>& targets);
  std::vector<float> gradual_targets(const Phase& phase, int iter) const;
  void structure_changed();

  Net& net_;
  std::vector<Net*> mirrors_;
  std::vector<std::unique_ptr<SparsityPolicy>> policies_;
  std::vector<std::unique_ptr<Quantizer>> quantizers_;
  std::vector<Layer*> sparse_backward_;  // layers with structured_backward_param (the mixed schedule)
  std::vector<Phase> phases_;
  std::vector<float> gradual_start_;
  mutable std::vector<std::string> reported_;  // report()'s lines as of its last call
  bool changed_ = false;  // the last begin_iteration pruned, released or quantized  // per policy: sparsity when the current GRADUAL phase began
};

// Creates the controller for `solver` (its TRAIN net, schedule and epoch size), lets it drive the
// TEST net's structure too, logs the resolved schedule and installs it as the solver's training
// hooks. Call it after Solver::set_max_iter. Idempotent: returns the installed controller when
// there is one.
SparsityController& install_sparsity(Solver& solver);

}  // namespace dsg
