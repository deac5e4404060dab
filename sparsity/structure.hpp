// Structured (filter / channel) sparsity across the graph. A FILTER policy zeroes whole output
// channels of a Convolution or InnerProduct layer; the layer then computes only the kept channels
// (a smaller GEMM M) and the layers that consume those channels know which inputs are zero (a
// smaller K). This file decides, from the graph, which layers see which active channels.
#pragma once
#include <memory>
#include <vector>

#include "runtime/net.hpp"
#include "sparsity/policy.hpp"

namespace dsg {

// Checks that structured policies fit the graph (refused at load time with the reason).
void validate_structure(const Net& net, const std::vector<std::unique_ptr<SparsityPolicy>>& policies);

// Sets active_outputs / active_inputs on the layers of `net` (matched by name, so a TEST net that
// shares the TRAIN net's weights can be updated too) from the policies' current masks.
void apply_structure(Net& net, const std::vector<std::unique_ptr<SparsityPolicy>>& policies);

}  // namespace dsg
