#include "sparsity/structure.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "runtime/error.hpp"

namespace dsg {
namespace {

std::string describe(const SparsityParameter& p) {
  std::string s = "policy \"" + p.policy() + "\" granularity " + SparsityParameter::Granularity_Name(p.granularity());
  if (p.has_target_sparsity()) s += strfmt(" target_sparsity %g", p.target_sparsity());
  if (p.has_quality()) s += strfmt(" quality %g", p.quality());
  return s;
}

}  // namespace

void validate_structure(const Net& net, const std::vector<std::unique_ptr<SparsityPolicy>>& policies) {
  std::map<std::string, const SparsityPolicy*> by_layer;
  for (const auto& p : policies) by_layer[p->layer_name()] = p.get();
  const auto& layers = net.layers();
  for (const auto& p : policies) {
    if (!p->prunes_outputs()) continue;
    const std::string where = "layer '" + p->layer_name() + "' sparsity_param: ";
    const ChannelFlow flow = p->layer().channel_flow();
    if (flow.kind != ChannelFlow::kProducer)
      throw Error(where + "FILTER granularity needs a Convolution or InnerProduct layer, not " + p->layer().type());
    if (!flow.rows_are_outputs)
      throw Error(where + "FILTER pruning needs weights whose rows are the outputs ([num_output, K]); this " +
                  p->layer().type() + " has transpose: true (weights [K, num_output]), whose output neurons are columns");
    // Follow the output through channel-preserving layers to a loss / Softmax / Accuracy.
    size_t start = 0;
    while (start < layers.size() && layers[start].get() != &p->layer()) ++start;
    std::vector<std::pair<size_t, std::string>> todo;
    for (const auto& t : p->layer().param().top()) todo.push_back({start, t});
    std::set<std::pair<size_t, std::string>> visited;
    while (!todo.empty()) {
      auto [from, blob] = todo.back();
      todo.pop_back();
      if (!visited.insert({from, blob}).second) continue;
      for (size_t j = from + 1; j < layers.size(); ++j) {
        const Layer& c = *layers[j];
        const auto& bottoms = c.param().bottom();
        if (std::find(bottoms.begin(), bottoms.end(), blob) == bottoms.end()) continue;
        if (c.reads_class_scores())
          throw Error(where + "FILTER pruning would remove output neurons of a classifier: its output feeds '" +
                          c.name() + "' (" + c.type() + "), so pruning changes the label space",
                      "leave the classifier dense, or prune it with FINE granularity");
        const ChannelFlow f = c.channel_flow();
        if (index_preserving(f) || f.kind == ChannelFlow::kFlatten || f.kind == ChannelFlow::kEltwise)
          for (const auto& t : c.param().top()) todo.push_back({j, t});
      }
    }
  }
  for (const CoupledGroup& g : coupled_groups(net.graph())) {
    if (g.owners.size() < 2) continue;
    const SparsityPolicy* first = nullptr;
    for (const auto& name : g.owners) {
      auto it = by_layer.find(name);
      if (it != by_layer.end() && it->second->prunes_outputs()) first = it->second;
    }
    if (!first) continue;
    std::string list;
    for (const auto& name : g.owners) list += (list.empty() ? "'" : ", '") + name + "'";
    const std::string coupled = "layers " + list + " are channel-coupled (their outputs meet in Eltwise '" + g.eltwise +
                                "'), so FILTER pruning must apply to all of them with the same sparsity_param: ";
    for (size_t k = 0; k < g.owners.size(); ++k) {
      auto it = by_layer.find(g.owners[k]);
      if (it == by_layer.end() || !it->second->prunes_outputs())
        throw Error(coupled + "'" + first->layer_name() + "' is FILTER-pruned but '" + g.owners[k] + "' (" +
                        g.owner_types[k] + ") is not",
                    "give every coupled layer the same FILTER sparsity_param, or none of them");
      if (it->second->param().SerializeAsString() != first->param().SerializeAsString())
        throw Error(coupled + "'" + first->layer_name() + "' has " + describe(first->param()) + " but '" +
                        g.owners[k] + "' has " + describe(it->second->param()),
                    "give every coupled layer the same FILTER sparsity_param");
    }
  }
}

void apply_structure(Net& net, const std::vector<std::unique_ptr<SparsityPolicy>>& policies) {
  for (const auto& p : policies) {
    if (!p->prunes_outputs()) continue;
    Layer* layer = net.layer_by_name(p->layer_name());
    if (!layer) continue;
    std::vector<int> kept = p->active() ? p->kept_outputs() : std::vector<int>{};
    const auto& w = layer->blobs();
    if (!w.empty() && w[0]->num_axes() > 0 && int64_t(kept.size()) >= w[0]->shape(0)) kept.clear();
    layer->set_active_outputs(std::move(kept));
  }
  net.propagate_structure();
  // CHANNEL pruning zeroes whole input channels (Convolution, group 1) or input features
  // (InnerProduct columns) of the layer itself: skip them too, on top of what the producers
  // already made zero.
  for (const auto& p : policies) {
    if (!p->active() || p->param().granularity() != SparsityParameter::CHANNEL) continue;
    Layer* layer = net.layer_by_name(p->layer_name());
    if (!layer || layer->blobs().empty()) continue;
    const Tensor& w = *layer->blobs()[0];
    const int64_t rows = w.shape(0), inputs = w.shape(1), per_input = w.count(2);
    const auto& mask = p->mask();
    std::vector<uint8_t> live(size_t(inputs), 0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < inputs; ++c)
        for (int64_t k = 0; k < per_input && !live[size_t(c)]; ++k)
          live[size_t(c)] = mask[size_t((r * inputs + c) * per_input + k)];
    const std::vector<int>& before = layer->active_inputs();
    std::vector<int> kept;
    if (before.empty()) {
      for (int64_t c = 0; c < inputs; ++c)
        if (live[size_t(c)]) kept.push_back(int(c));
    } else {
      for (int c : before)
        if (live[size_t(c)]) kept.push_back(c);
    }
    if (int64_t(kept.size()) < inputs) layer->set_active_inputs(std::move(kept));
  }
}

}  // namespace dsg
