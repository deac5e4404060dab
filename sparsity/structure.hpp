// Structured (filter / channel) sparsity across the graph. A FILTER policy zeroes whole output
// channels of a Convolution or InnerProduct layer; the layer then computes only the kept channels
// (a smaller GEMM M) and the layers that consume those channels know which inputs are zero (a
// smaller K). This file decides, from the graph, which layers see which active channels.
//
// Propagation ("which channels of this blob can be non-zero"): a blob's knowledge is a set of
// units in the per-sample layout (unit u = elements [u s, (u + 1) s) of each sample; s = H W for
// a channel of an NCHW blob, 1 for a neuron). It starts at every Convolution / InnerProduct with
// active_outputs and flows through layers that map 0 to 0 per channel (ChannelFlow below):
// elementwise layers keep it, Pooling keeps the channels (new spatial size), Flatten / Reshape
// keeping the batch axis keep the per-sample layout (so an InnerProduct after them sees feature
// ranges [c H W, (c + 1) H W)), Concat on the channel axis offsets and joins the sets, Eltwise
// SUM / MAX takes the union and PROD the intersection. Anything else (BatchNorm, Scale with bias,
// Sigmoid, Softmax, unknown types) makes every channel potentially non-zero.
//
// Channel coupling: blobs joined by an Eltwise (through index-preserving layers such as ReLU,
// Pooling or BatchNorm) share one channel space, so the layers producing them must keep the same
// channels to be thinned. The policy here is refusal, not joint selection: validate_structure
// requires every producer of a coupled space to be FILTER-pruned with identical sparsity_param
// (the magnitude ranking may still keep different channels per layer; propagation then uses the
// union at the Eltwise, and thinning keeps the union for the whole group).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "runtime/net.hpp"
#include "sparsity/policy.hpp"

namespace dsg {

// How a layer treats the channels of its bottoms, as far as zero channels are concerned.
enum class ChannelFlow {
  kElementwise,  // tops = f(bottom 0) per element, f(0) = 0: ReLU, TanH, Dropout, Split, Scale without bias
  kPool,         // Pooling (top 0): per channel, zeros stay zero, the spatial size changes
  kFlatten,      // Flatten / Reshape: the per-sample element order is unchanged when the batch axis is kept
  kConcat,       // Concat
  kEltwise,      // Eltwise (SUM / MAX: union, PROD: intersection)
  kProducer,     // Convolution / InnerProduct: computes new channels
  kOpaque,       // anything else: every channel of every top may be non-zero
};
ChannelFlow channel_flow(const Layer& layer);

// Channel spaces shared through Eltwise layers: the layers that create the channels of blobs
// meeting in `eltwise` (directly or through index-preserving layers), in net order. Only spaces
// that meet in at least one Eltwise are listed.
struct CoupledGroup {
  std::vector<std::string> owners;       // producing layers (Convolution, InnerProduct, or others)
  std::vector<std::string> owner_types;  // their types
  std::string eltwise;                   // the first Eltwise joining them
};
std::vector<CoupledGroup> coupled_groups(const Net& net);

// Checks that structured policies fit the graph; throws dsg::Error naming the layers and the
// reason. Refused: FILTER granularity on anything but a Convolution or non-transposed
// InnerProduct; FILTER pruning of a layer whose output reaches a loss, Softmax or Accuracy layer
// through channel-preserving layers (it would remove classes); channel-coupled layers of which
// only some are FILTER-pruned, or pruned with different sparsity_param.
void validate_structure(const Net& net, const std::vector<std::unique_ptr<SparsityPolicy>>& policies);

// Sets active_outputs on the layers of `net` (matched by name, so a TEST net that shares the
// TRAIN net's weights can be updated too) from the policies' current masks, then runs
// propagate_structure().
void apply_structure(Net& net, const std::vector<std::unique_ptr<SparsityPolicy>>& policies);

// The graph pass alone: from the active_outputs already set on the net's layers, sets the
// active_inputs of every Convolution / non-transposed InnerProduct whose bottom has a known
// reduced set of non-zero channels (features for an InnerProduct), and clears it elsewhere.
void propagate_structure(Net& net);

// Approximate dropout: the index of the layer whose outputs the unit-dropping layer
// `net.layers()[index]` selects — walking up from its bottom through single-input elementwise
// layers (ReLU, TanH, ...) to a Convolution or non-transposed InnerProduct — or -1 when there is
// none or when another layer reads one of the blobs in between (then the dropped units must still
// be computed). A producer that is FILTER-pruned is refused with a dsg::Error.
int dynamic_drop_producer(const Net& net, size_t index);

}  // namespace dsg
