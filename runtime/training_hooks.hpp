// TrainingHooks: how plug-ins (the sparsity controller, later a gradient compressor) take part in
// the Solver's loop without the engine knowing them. The Solver owns the installed hooks and calls
// them in installation order at fixed points of each iteration:
//
//   begin_iteration(it)          before the test of iteration it (if any) and before forward
//   lr_mult(it)                  multiplies the learning rate of iteration it (product over hooks)
//   report()                     extra lines for the display-interval log
//   layer_stats()                per-layer state at display intervals (metrics, TensorBoard)
//   before_update(rate)          after backward (diffs hold the gradient), before the update rule
//   after_update()               after the weights changed
//   save(model) / load(model,it) plug-in state inside snapshots, so a resumed run continues exactly
//   set_device(device)           once, when installed: the device the solver trains on (where the
//                                parameters live); hooks apply their per-iteration work there
//
// dsgtrain installs them (sparsity/controller.hpp: install_sparsity); a Solver without hooks trains
// the dense net.
#pragma once
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "runtime/device.hpp"

namespace dsg {

// What a plug-in reports about one layer at a display interval (Solver's DisplayReport).
struct LayerStats {
  std::string layer;
  double sparsity = -1;  // fraction of the layer's weights that are zero; < 0: not reported
  int bits = 0;          // bits per weight (32: full precision); 0: not reported
};

class TrainingHooks {
 public:
  virtual ~TrainingHooks() = default;
  virtual void set_device(const Device& device) { (void)device; }
  virtual void begin_iteration(int iter) { (void)iter; }
  // Whether the last begin_iteration changed weights, masks or structure on the host (a prune
  // step): the passes that follow may move them to the device once, so the transfer check
  // (Context::check_transfers) skips that iteration.
  virtual bool changed_structure() const { return false; }
  virtual float lr_mult(int iter) const { (void)iter; return 1.0f; }
  virtual std::vector<std::string> report() const { return {}; }
  virtual std::vector<LayerStats> layer_stats() const { return {}; }
  virtual void before_update(float rate) { (void)rate; }
  virtual void after_update() {}
  virtual void save(ModelFile* model) const { (void)model; }
  // `iter` is the iteration training resumes at.
  virtual void load(const ModelFile& model, int iter) { (void)model; (void)iter; }
};

}  // namespace dsg
