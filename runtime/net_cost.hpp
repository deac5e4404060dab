// Training cost of a Net's last pass, as counted (Dynamic Sparse Graph's accounting): the
// multiply-accumulates of the Convolution and InnerProduct layers (dense and as run, including the
// search that chose what to run) and the memory of the activations a backward pass reads, dense
// (4 bytes per value) and with zero-value compression (4 bytes per non-zero plus a 1-bit mask
// per value, as DSG counts it).
#pragma once
#include <cstdint>
#include <string>

namespace dsg {

class Net;

struct NetCost {
  double dense_forward_macs = 0, dense_backward_macs = 0;
  double forward_macs = 0, backward_macs = 0, search_ops = 0;
  // The dense MACs whose weight is non-zero (per layer: dense MACs x the non-zero fraction of its
  // weight_blobs()): what unstructured (FINE) sparsity could skip with a sparse kernel, which the
  // dense kernels that ran do not (forward_macs counts only structured savings).
  double nonzero_forward_macs = 0, nonzero_backward_macs = 0;
  double activation_values = 0;  // values in the activation blobs (each distinct blob once)
  double activation_nonzeros = 0;
  double dense_training_ops() const { return dense_forward_macs + dense_backward_macs; }
  double training_ops() const { return forward_macs + backward_macs + search_ops; }
  double inference_ops() const { return forward_macs + search_ops; }
  double nonzero_training_ops() const { return nonzero_forward_macs + nonzero_backward_macs; }
  double activation_bytes() const { return 4 * activation_values; }
  double activation_zvc_bytes() const { return 4 * activation_nonzeros + activation_values / 8; }
};

// Counts the last forward/backward of `net`. Activations: every distinct top blob of a non-data
// layer (in-place tops once), excluding the loss and accuracy outputs (blobs of one value).
NetCost measure_net_cost(const Net& net);

// "training MACs 1.2e9 -> 4.4e8 as run (2.7x, search 3%), 9.1e7 with non-zero weights (13.2x),
// inference MACs 4.1e8 -> 1.5e8 as run (2.7x), 3.0e7 with non-zero weights (13.7x), activations
// 12.3 MB -> 3.4 MB zero-value compressed (3.6x)". The "non-zero weights" figures are what FINE
// (unstructured) sparsity could save; "as run" is what the kernels did.
std::string describe_net_cost(const NetCost& cost);

}  // namespace dsg
