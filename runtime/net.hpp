// Net: a DAG of layers built from bottom/top names (Caffe's Net). Layers are filtered by phase
// and include/exclude rules, a Split layer is inserted where a blob feeds several layers, and a
// top named like its bottom runs in place. After setup every layer's blobs live in one contiguous
// arena (data and diff), so solvers, global thresholds and exports walk one array.
#pragma once
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "runtime/channel_pass.hpp"
#include "runtime/layer.hpp"

namespace dsg {

// A learnable parameter as the solver sees it.
struct LearnableParam {
  Tensor* tensor;
  std::string layer;  // owning layer name
  int index;          // index in that layer's blobs()
  float lr_mult;
  float decay_mult;
};

class Net {
 public:
  // `layer_locations[i]` ("file:line:col") prefixes errors about param.layer(i) when given.
  Net(const NetParameter& param, Phase phase, std::mt19937_64& rng,
      const std::vector<std::string>& layer_locations = {});

  // Runs every layer forward; returns the total weighted loss.
  float forward(const Context& ctx);
  // Runs backward from the loss tops; parameter diffs accumulate into the arena.
  void backward(const Context& ctx);
  float forward_backward(const Context& ctx) {
    float loss = forward(ctx);
    backward(ctx);
    return loss;
  }

  // Brings the parameter arena (values and diffs) to `device` now: one counted copy each when the
  // host wrote last (after setup or loading weights), nothing otherwise.
  void to_device(const Device& device);
  // Zeroes every parameter diff (one fill over the arena, on `device`).
  void zero_param_diffs(const Device& device = Device::cpu());
  // Makes this net's parameters views of `other`'s (matched by layer name; shapes must agree).
  void share_params_from(const Net& other);

  const std::string& name() const { return name_; }
  Phase phase() const { return phase_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  // Per-layer wall-clock accounting of forward and backward (off by default; dsgtrain --profile).
  struct LayerTime {
    double forward_s = 0, backward_s = 0;
    int64_t forwards = 0, backwards = 0;
  };
  void set_profiling(bool on) { profiling_ = on; times_.assign(layers_.size(), LayerTime{}); }
  const std::vector<LayerTime>& layer_times() const { return times_; }

  // The bottoms / tops of layer i (for cost accounting and tests).
  const TensorVec& bottoms(size_t i) const { return graph_.bottoms[i]; }
  const TensorVec& tops(size_t i) const { return graph_.tops[i]; }
  // The layers with their bottoms and tops, for graph passes (runtime/channel_pass.hpp).
  const LayerGraph& graph() const { return graph_; }
  // The structure pass: from the active_outputs set on the layers (FILTER pruning, approximate
  // dropout, DSG batch-shared selection), sets the active_inputs of every layer that can skip
  // input units (runtime/channel_pass.hpp, kKnownZero) and clears them elsewhere.
  void propagate_structure();
  // The layer whose DSG output mask is re-applied to layer i's top (double-mask selection), or -1.
  int double_mask_source(size_t i) const { return i < masked_by_.size() ? masked_by_[i] : -1; }
  const std::vector<LearnableParam>& learnable_params() const { return learnable_; }
  // The blobs that are not learnable (BatchNorm's running statistics), updated by forward passes.
  const std::vector<Tensor*>& state_blobs() const { return state_; }
  // Total number of floats in the parameter arena (learnable and state blobs).
  size_t arena_size() const { return arena_size_; }
  float* arena_data() { return arena_data_ ? arena_data_->data() : nullptr; }
  // The arena's diff on `device` (for writing), nullptr when the net has no parameters.
  float* arena_diff(const Device& device);

  bool has_blob(const std::string& name) const { return blobs_.count(name) != 0; }
  Tensor& blob(const std::string& name) const;
  // Blobs produced but consumed by no layer (loss, accuracy, ...), in creation order.
  const std::vector<std::string>& output_names() const { return outputs_; }
  Layer* layer_by_name(const std::string& name) const;

  // All blobs of all layers (learnable and state) as ParamBlob entries, and back. Loading
  // requires every layer with blobs to be present with matching shapes.
  void params_to_proto(ModelFile* model) const;
  void params_from_proto(const ModelFile& model);

 private:
  void build(const NetParameter& param, std::mt19937_64& rng, const std::vector<std::string>& locations);
  void build_arena();

  // Layers that drop units per pass (approximate dropout) and the index of the layer whose outputs
  // they select, -1 when that layer cannot compute a subset (dynamic_drop_producer).
  struct DynamicDrop {
    size_t layer;
    int producer;
  };
  void update_dynamic_structure(const Context& ctx);
  // DSG double-mask selection: finds, for every layer with double_mask_output(), the BatchNorm /
  // Scale ending its CONV/FC -> ReLU -> BatchNorm (-> Scale) chain.
  void find_double_masks();
  void apply_output_mask(size_t layer, bool diff, const Context& ctx);

  // masked_by_[j]: the layer whose dynamic output mask is applied to layer j's top (-1: none).
  std::vector<int> masked_by_;
  // shared_selection_[i]: layer i selects its outputs once per batch (DSG BATCH_SHARED) and its
  // chain ends in a double mask, so consumers can skip the dropped channels.
  std::vector<bool> shared_selection_;
  bool profiling_ = false;
  std::vector<LayerTime> times_;

  std::vector<DynamicDrop> dynamic_;
  std::string name_;
  Phase phase_;
  std::vector<std::unique_ptr<Layer>> layers_;
  LayerGraph graph_;  // the layers (owned by layers_) with their bottoms and tops
  std::vector<std::vector<bool>> propagate_down_;
  std::vector<bool> layer_needs_backward_;
  std::map<std::string, std::shared_ptr<Tensor>> blobs_;
  std::vector<std::string> outputs_;
  std::vector<LearnableParam> learnable_;
  std::vector<Tensor*> state_;
  std::shared_ptr<Storage> arena_data_, arena_diff_;
  size_t arena_size_ = 0;
};

// Throws dsg::Error naming the first layer of `net`, and the mode, that has no implementation for
// the device `ctx` runs on (its device code when ctx.runs_device_code()): every mode in use now
// (Layer::modes_in_use) and the `planned` ones (layer name, mode) that training switches on later
// (structured sparsity at prune steps). Apps call it before training or evaluation starts.
void check_device_support(const Net& net, const Context& ctx,
                          const std::vector<std::pair<std::string, LayerMode>>& planned = {});

// Caffe's NetState filtering: whether a layer with these rules is part of a net in `state`.
bool layer_included(const LayerParameter& layer, const NetState& state);

// Returns a copy of `param` with Split layers inserted where a blob has several consumers.
NetParameter insert_splits(const NetParameter& param);

}  // namespace dsg
