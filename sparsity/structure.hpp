// Structured (filter / channel) sparsity across the graph. A FILTER policy zeroes whole output
// channels of a layer whose weight rows are its outputs (Convolution, InnerProduct); the layer then
// computes only the kept channels (a smaller GEMM M) and the layers that consume those channels
// know which inputs are zero (a smaller K). The graph walk itself is the engine's channel pass
// (runtime/channel_pass.hpp); this file checks that policies fit the graph and feeds their masks
// to the pass.
//
// Channel coupling: blobs joined by an Eltwise share one channel space (coupled_groups), so the
// layers producing them must keep the same channels to be thinned. The policy here is refusal, not
// joint selection: validate_structure requires every producer of a coupled space to be
// FILTER-pruned with identical sparsity_param (the magnitude ranking may still keep different
// channels per layer; propagation then uses the union at the Eltwise, and thinning keeps the union
// for the whole group).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "runtime/net.hpp"
#include "sparsity/policy.hpp"

namespace dsg {

// Checks that structured policies fit the graph; throws dsg::Error naming the layers and the
// reason. Refused: FILTER granularity on a layer whose weight rows are not its outputs (anything
// but a Convolution or non-transposed InnerProduct); FILTER pruning of a layer whose output reaches
// a layer that reads class scores (a loss, Softmax, Accuracy) through channel-preserving layers
// (it would remove classes); channel-coupled layers of which only some are FILTER-pruned, or
// pruned with different sparsity_param.
void validate_structure(const Net& net, const std::vector<std::unique_ptr<SparsityPolicy>>& policies);

// Sets active_outputs on the layers of `net` (matched by name, so a TEST net that shares the
// TRAIN net's weights can be updated too) from the policies' current masks, then runs
// Net::propagate_structure() and lets CHANNEL-pruned layers skip their pruned inputs too.
void apply_structure(Net& net, const std::vector<std::unique_ptr<SparsityPolicy>>& policies);

}  // namespace dsg
