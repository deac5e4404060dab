#include "runtime/net_cost.hpp"

#include <set>

#include "runtime/error.hpp"
#include "runtime/net.hpp"

namespace dsg {

NetCost measure_net_cost(const Net& net) {
  NetCost c;
  std::set<const float*> seen;  // Split tops share their bottom's values
  for (size_t i = 0; i < net.layers().size(); ++i) {
    const Layer& layer = *net.layers()[i];
    const LayerMacs m = layer.macs();
    c.dense_forward_macs += m.dense_forward;
    c.dense_backward_macs += m.dense_backward;
    c.forward_macs += m.forward;
    c.backward_macs += m.backward;
    c.search_ops += m.search;
    if (m.dense_forward > 0 || m.dense_backward > 0) {
      double values = 0, nonzeros = 0;
      for (int b : layer.weight_blobs()) {
        const Tensor& w = *layer.blobs()[size_t(b)];
        const float* v = w.data();
        for (int64_t k = 0; k < w.count(); ++k) nonzeros += v[k] != 0.0f;
        values += double(w.count());
      }
      const double fraction = values > 0 ? nonzeros / values : 1.0;
      c.nonzero_forward_macs += m.dense_forward * fraction;
      c.nonzero_backward_macs += m.dense_backward * fraction;
    }
    if (layer.is_data_layer()) continue;
    for (const Tensor* t : net.tops(i)) {
      if (t->count() <= 1 || !seen.insert(t->data()).second) continue;
      const float* v = t->data();
      int64_t nz = 0;
      for (int64_t k = 0; k < t->count(); ++k) nz += v[k] != 0.0f;
      c.activation_values += double(t->count());
      c.activation_nonzeros += double(nz);
    }
  }
  return c;
}

std::string describe_net_cost(const NetCost& c) {
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  return strfmt("training MACs %.3g -> %.3g as run (%.2fx, search %.1f%%), %.3g with non-zero weights (%.2fx), "
                "inference MACs %.3g -> %.3g as run (%.2fx), %.3g with non-zero weights (%.2fx), "
                "activations %.2f MB -> %.2f MB zero-value compressed (%.2fx)",
                c.dense_training_ops(), c.training_ops(), ratio(c.dense_training_ops(), c.training_ops()),
                100 * ratio(c.search_ops, c.training_ops()), c.nonzero_training_ops(),
                ratio(c.dense_training_ops(), c.nonzero_training_ops()), c.dense_forward_macs, c.inference_ops(),
                ratio(c.dense_forward_macs, c.inference_ops()), c.nonzero_forward_macs,
                ratio(c.dense_forward_macs, c.nonzero_forward_macs), c.activation_bytes() / 1e6,
                c.activation_zvc_bytes() / 1e6, ratio(c.activation_bytes(), c.activation_zvc_bytes()));
}

}  // namespace dsg
