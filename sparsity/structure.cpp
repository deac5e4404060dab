#include "sparsity/structure.hpp"

#include "runtime/error.hpp"

namespace dsg {

void validate_structure(const Net& net, const std::vector<std::unique_ptr<SparsityPolicy>>& policies) {
  (void)net;
  for (const auto& p : policies) {
    if (!p->prunes_outputs()) continue;
    std::string type = p->layer().type();
    if (type != "Convolution" && type != "InnerProduct")
      throw Error("layer '" + p->layer_name() + "': FILTER granularity needs a Convolution or InnerProduct layer, not " + type);
  }
}

void apply_structure(Net& net, const std::vector<std::unique_ptr<SparsityPolicy>>& policies) {
  for (const auto& p : policies) {
    if (!p->prunes_outputs()) continue;
    Layer* layer = net.layer_by_name(p->layer_name());
    if (layer) layer->set_active_outputs(p->active() ? p->kept_outputs() : std::vector<int>{});
  }
}

}  // namespace dsg
