// The one channel-propagation pass. From output units chosen at some layers (the kept filters of
// a FILTER policy, an approximate-dropout pattern, a DSG selection, a thinning plan) it follows,
// through every layer's ChannelFlow description (runtime/layer.hpp), which units of every blob
// remain, and which input units every Convolution / InnerProduct can therefore skip.
//
// A blob's units are in the per-sample layout: unit u = elements [u s, (u + 1) s) of each sample,
// s = H W for a channel of an NCHW blob, 1 for a neuron. Units flow through zero-preserving
// elementwise layers, Pooling (top 0, new spatial size), Flatten / Reshape keeping the batch axis
// (so an InnerProduct after them sees feature ranges [c H W, (c + 1) H W)), Concat on the channel
// axis (offset and joined) and Eltwise (SUM / MAX: union, PROD: intersection).
//
// Two modes share the walk:
// - kKnownZero (training and inference): "which units can be non-zero". Where a layer does not
//   preserve the knowledge it is dropped silently (every unit may be non-zero after it).
// - kPhysical (thinning): "which units are physically present after the pruned rows are cut".
//   A layer that cannot follow a thinner blob (per-channel parameters, a loss, a grouped or
//   transposed consumer, a Reshape with fixed dims, ...) blocks the layers whose units reach it;
//   the result names each blocked layer with the reason.
//
// Channel coupling: blobs joined by an Eltwise through index-preserving layers share one channel
// space (coupled_groups), so the layers producing them must keep the same channels to be thinned.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/layer.hpp"

namespace dsg {

// The layers of a net with their bottoms and tops, in execution order (a Net, or any graph).
struct LayerGraph {
  std::vector<Layer*> layers;
  std::vector<TensorVec> bottoms, tops;
  size_t size() const { return layers.size(); }
  int index_of(const std::string& layer_name) const;
};

// What is known of a blob: which units of each sample remain (see the header comment).
struct UnitSet {
  bool reduced = false;    // false: every unit may remain
  std::vector<int> units;  // sorted; may be empty (the blob is all zeros)
  int64_t unit_size = 0, num_units = 0;
  std::set<std::string> sources;  // kPhysical: the seeded layers whose removed units this reflects
};

enum class UnitPassMode { kKnownZero, kPhysical };

struct UnitPassResult {
  // Per layer: the input units a kProducer layer keeps (its active_inputs; empty = all).
  std::vector<std::vector<int>> inputs;
  // kPhysical: seeded layer -> why its removed units cannot be followed.
  std::map<std::string, std::string> blocked;
};

// Runs the pass. `kept_outputs[i]` are the output units layer i keeps (empty = all); a layer
// seeds units only when its channel_flow() has rows_are_outputs on unit_axis 1. In kKnownZero
// mode the pass also applies each unit-dropping layer's dynamic_kept() and, where
// `double_mask_source[i] >= 0`, DSG's double mask (layer i's top keeps only the source layer's
// active outputs).
UnitPassResult propagate_units(const LayerGraph& graph, const std::vector<std::vector<int>>& kept_outputs,
                               UnitPassMode mode, const std::vector<int>& double_mask_source = {});

// Channel spaces shared through Eltwise layers: the layers creating the channels of the blobs that
// meet in `eltwise` (directly or through index-preserving layers), in net order. Only spaces that
// meet in at least one Eltwise are listed.
struct CoupledGroup {
  std::vector<std::string> owners;       // producing layers
  std::vector<std::string> owner_types;  // their types (for messages)
  std::string eltwise;                   // the first Eltwise joining them
};
std::vector<CoupledGroup> coupled_groups(const LayerGraph& graph);

// Approximate dropout: the index of the layer whose outputs the unit-dropping layer `index`
// selects (walking up from its bottom through single-input zero-preserving elementwise layers to
// a layer that can compute a subset of its outputs), or -1 when there is none or when another
// layer reads one of the blobs in between (then the dropped units must still be computed). A
// producer that is FILTER-pruned is refused with a dsg::Error.
int dynamic_drop_producer(const LayerGraph& graph, size_t index);

// Whether the layer keeps every unit index in place (elementwise or pooling), zero or not.
bool index_preserving(const ChannelFlow& flow);

}  // namespace dsg
