// SparsityPolicy: what a layer's sparsity_param becomes. A policy never edits a layer's internals;
// it owns masks over the layer's weight blobs (Layer::weight_blobs(): blob 0, or W_xc and W_hc of
// an LSTM, concatenated in that order into one mask) and the bias entries of pruned filters
// (FILTER granularity, single-weight-blob layers only), and answers
// the four questions of ../shared/DESIGN.md:
//   1. weights      prune_to() recomputes the mask; mask_gradients()/mask_weights() enforce it
//                   around every solver update, so pruned weights stay exactly zero;
//   2. forward      kept_outputs(): for FILTER granularity, the output channels that are computed
//                   (the layer runs a smaller GEMM and the next layer's K shrinks with it);
//   3. backward     (structured gradient sparsity; later policies);
//   4. bookkeeping  fired(), sparsity(), current_target(), save()/load() for snapshots.
// Policies are registered by name (DSG_REGISTER_POLICY) and driven by the SparsityController.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "runtime/device_array.hpp"
#include "runtime/tensor.hpp"
#include "runtime/registry.hpp"

namespace dsg {

class Layer;

class SparsityPolicy {
 public:
  SparsityPolicy(const SparsityParameter& param, Layer& layer);
  virtual ~SparsityPolicy() = default;
  virtual const char* type() const = 0;

  const SparsityParameter& param() const { return param_; }
  Layer& layer() const { return layer_; }
  const std::string& layer_name() const;

  // Checks the configuration against the (set-up) layer; throws dsg::Error with the reason.
  virtual void validate() const;

  // The sparsity this policy aims at when a phase prunes with `scale` (target_sparsity * scale,
  // or, with `quality`, the fraction of weights below quality * scale * std(W)).
  virtual float resolve_target(float scale) const;
  // Recomputes the masks so that a fraction `sparsity` of the weights is zero, zeroes the pruned
  // weights (and biases of pruned filters) and activates the masks.
  void prune_to(float sparsity);
  // The device the masks apply on (the solver's, where the weights live; the CPU by default). The
  // masks are decided on the host at prune steps (an explicit, logged read of the weights) and
  // kept on that device (one logged upload per change), so mask_gradients / mask_weights move
  // nothing across.
  void set_device(const Device& device);
  const Device& device() const { return device_; }
  // Zeroes gradients (before the update) / values (after it) of pruned entries on device(), through
  // ops_for(device()). No-ops when inactive.
  void mask_gradients();
  void mask_weights();
  // Drops the masks (a re-dense phase). Pruned weights are zero at this point and restart there.
  void release();

  bool active() const { return active_; }
  int64_t fired() const { return fired_; }
  float current_target() const { return current_target_; }
  // Realised fraction of zeros over the weight blobs.
  double sparsity() const;
  // The weight blobs (Layer::weight_blobs(), in mask order) and their total element count.
  std::vector<Tensor*> weight_tensors() const;
  int64_t weight_count() const;
  // The current weight values, blobs concatenated in mask order.
  std::vector<float> weight_values() const;
  // Per-element keep mask of the weight blobs, concatenated in order (1 = kept); empty before the
  // first prune.
  const std::vector<uint8_t>& mask() const { return mask_; }
  // FILTER granularity: indices of the kept output channels (sorted); empty = all kept.
  const std::vector<int>& kept_outputs() const { return kept_outputs_; }
  bool prunes_outputs() const { return param_.granularity() == SparsityParameter::FILTER; }

  // Extra policy-specific facts for the training log (e.g. ESE's partition balance); may be empty.
  virtual std::string detail() const { return ""; }

  // Per-element saliency used to rank weights under GLOBAL scope (|w| by default), in mask order.
  virtual std::vector<float> saliency() const;

  void save(PolicyState* state) const;
  void load(const PolicyState& state);

 protected:
  // Fills `mask` (one entry per weight of the concatenated weight blobs, 1 = keep) so that a
  // fraction `sparsity` is pruned.
  virtual void compute_mask(float sparsity, std::vector<uint8_t>& mask) const = 0;

  SparsityParameter param_;
  Layer& layer_;

 private:
  void derive_kept_outputs();
  // After the host masks changed: refreshes their copies on device() (nothing on the CPU).
  void masks_changed();
  // The weight mask and bias mask in device()'s memory.
  const uint8_t* mask_on_device() const;
  const uint8_t* bias_mask_on_device() const;

  std::vector<uint8_t> mask_;
  std::vector<int> kept_outputs_;
  std::vector<uint8_t> bias_mask_;  // FILTER: 1 for the bias of each kept output (derived from mask_)
  bool active_ = false;
  int64_t fired_ = 0;
  float current_target_ = 0;
  Device device_;
  DeviceArray<uint8_t> device_mask_, device_bias_mask_;  // device copies (not used on the CPU)
};

using PolicyRegistry = Registry<SparsityPolicy, const SparsityParameter&, Layer&>;
inline PolicyRegistry& policy_registry() { return PolicyRegistry::instance("sparsity policy"); }

struct PolicyRegistrar {
  PolicyRegistrar(const char* name, PolicyRegistry::Creator creator) { policy_registry().add(name, std::move(creator)); }
};

// Helpers shared by policies: keep the `keep` largest scores (ties broken by lower index).
std::vector<uint8_t> keep_top(const std::vector<float>& scores, size_t keep);

// The output rows of `layer`'s blob 0 that keep at least one weight in the stored mask of a
// snapshot's PolicyState (mask(0): one bit per weight, LSB first), without creating the policy
// (thinning, and tools whose binary lacks the policy). Throws dsg::Error when the mask does not
// fit the weights.
std::vector<int> stored_kept_outputs(const PolicyState& state, const Layer& layer);

}  // namespace dsg

#define DSG_REGISTER_POLICY(name_string, Class)                                                            \
  static ::dsg::PolicyRegistrar dsg_policy_registrar_##Class(                                              \
      name_string, [](const ::dsg::SparsityParameter& p, ::dsg::Layer& l) -> std::unique_ptr<::dsg::SparsityPolicy> { \
        return std::make_unique<Class>(p, l);                                                              \
      })
