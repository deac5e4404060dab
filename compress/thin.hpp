// Thinning: turning a filter-pruned snapshot into a smaller plain model. Output channels that a
// FILTER policy pruned (zero weights and bias, so exactly zero outputs) are removed from their
// layer (num_output shrinks) together with the matching input channels / features of the layers
// that consume them, so the result loads into a plain Net with no sparsity runtime and computes
// the same outputs as the masked model.
//
// A pruned layer is thinned only when every path from its output reaches Convolution /
// InnerProduct consumers through layers whose shape follows the channel count and that map zero
// channels to zero (ReLU, TanH, Dropout, Split, Pooling, Flatten, Reshape with 0 / -1 dims, Concat,
// Eltwise). Otherwise (BatchNorm, Scale, Sigmoid, a loss, a grouped or transposed consumer, ...)
// it keeps its full width and the report says why. Channel-coupled layers (runtime/channel_pass.hpp)
// are thinned together to the union of their kept channels. The walk is the engine's channel pass
// in its physical mode, so a layer joins thinning by describing itself (Layer::channel_flow,
// weight_blobs, set_num_outputs).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dsg.pb.h"

namespace dsg {

// One Convolution / InnerProduct layer of the TEST net before and after thinning.
struct ThinLayer {
  std::string name, type;
  int64_t outputs_before = 0, outputs_after = 0;  // num_output
  int64_t params_before = 0, params_after = 0;    // weights and biases
  int64_t macs_before = 0, macs_after = 0;        // multiply-accumulates per image
  std::string note;                               // why a pruned layer was not thinned, else empty
};

struct ThinnedModel {
  // A plain solver config: its net_param has no sparsity_param and the solver no schedule;
  // num_output is reduced for thinned layers.
  SolverParameter solver;
  // net (= solver.net_param), solver and the thinned weights; no solver state, no policies.
  ModelFile model;
  std::vector<ThinLayer> layers;
  int thinned_layers = 0;  // layers whose output channels were removed
};

// Builds the TEST net of `model` from its recorded data shapes (ModelFile.source_shape; no dataset
// is opened), loads its weights, reads the kept filters of its active FILTER policies and thins
// them. `label` names the model in messages. Throws dsg::Error when the model holds no network or
// weights, no recorded data shapes, or no structured sparsity.
ThinnedModel thin_model(const ModelFile& model, const std::string& label);

// The report: a header line, one line per layer ("before -> after" columns) and a total line.
std::vector<std::string> thin_report(const ThinnedModel& thinned);

}  // namespace dsg
