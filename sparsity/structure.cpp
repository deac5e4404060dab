#include "sparsity/structure.hpp"

#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <set>

#include "runtime/error.hpp"

namespace dsg {
namespace {

// What is known about a blob: which units of each sample can be non-zero (see the header).
struct Known {
  bool reduced = false;     // false: nothing known, every element may be non-zero
  std::vector<int> units;   // sorted; may be empty (the blob is all zeros)
  int64_t unit_size = 0, num_units = 0;
};

Known make_known(std::vector<int> units, int64_t unit_size, int64_t num_units) {
  Known k;
  if (int64_t(units.size()) >= num_units || unit_size <= 0) return k;
  k.reduced = true;
  k.units = std::move(units);
  k.unit_size = unit_size;
  k.num_units = num_units;
  return k;
}

bool same_layout(const Known& a, const Known& b) { return a.unit_size == b.unit_size && a.num_units == b.num_units; }

// Whether `k` describes channels of the 4-axis blob t (unit = one H W plane).
bool channel_aligned(const Known& k, const Tensor& t) {
  return k.reduced && t.num_axes() == 4 && k.unit_size == t.count(2) && k.num_units == t.shape(1);
}

bool index_preserving(const Layer& l) {
  const ChannelFlow f = channel_flow(l);
  const std::string type = l.type();
  return f == ChannelFlow::kElementwise || f == ChannelFlow::kPool || type == "BatchNorm" || type == "Scale" ||
         type == "Sigmoid";
}

bool is_terminal(const std::string& type) {
  return type == "Softmax" || type == "Accuracy" ||
         (type.size() >= 4 && type.compare(type.size() - 4, 4, "Loss") == 0);
}

const Layer* producer_of_kept(const Layer& l) {
  return std::string(l.type()) == "InnerProduct" && l.param().inner_product_param().transpose() ? nullptr : &l;
}

// Union-find over blob names.
struct Spaces {
  std::map<std::string, std::string> parent;
  std::string find(const std::string& x) {
    auto it = parent.find(x);
    if (it == parent.end()) return parent[x] = x;
    if (it->second == x) return x;
    return it->second = find(it->second);
  }
  void join(const std::string& a, const std::string& b) { parent[find(a)] = find(b); }
};

std::string describe(const SparsityParameter& p) {
  std::string s = "policy \"" + p.policy() + "\" granularity " + SparsityParameter::Granularity_Name(p.granularity());
  if (p.has_target_sparsity()) s += strfmt(" target_sparsity %g", p.target_sparsity());
  if (p.has_quality()) s += strfmt(" quality %g", p.quality());
  return s;
}

}  // namespace

ChannelFlow channel_flow(const Layer& layer) {
  const std::string type = layer.type();
  if (type == "ReLU" || type == "TanH" || type == "Dropout" || type == "ApproxDropout" || type == "FeatureMapDropout" || type == "Split")
    return ChannelFlow::kElementwise;
  if (type == "Scale") return layer.param().scale_param().bias_term() ? ChannelFlow::kOpaque : ChannelFlow::kElementwise;
  if (type == "Pooling") return ChannelFlow::kPool;
  if (type == "Flatten" || type == "Reshape") return ChannelFlow::kFlatten;
  if (type == "Concat") return ChannelFlow::kConcat;
  if (type == "Eltwise") return ChannelFlow::kEltwise;
  if (type == "Convolution" || type == "InnerProduct") return ChannelFlow::kProducer;
  return ChannelFlow::kOpaque;
}

std::vector<CoupledGroup> coupled_groups(const Net& net) {
  Spaces spaces;
  std::map<std::string, size_t> owner;  // blob -> index of the layer creating its channels
  const auto& layers = net.layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = *layers[i];
    const auto& p = l.param();
    const ChannelFlow f = channel_flow(l);
    for (int t = 0; t < p.top_size(); ++t) {
      spaces.find(p.top(t));
      if (f == ChannelFlow::kEltwise) {
        for (const auto& b : p.bottom()) spaces.join(b, p.top(t));
      } else if (index_preserving(l) && p.bottom_size() > 0 && (f != ChannelFlow::kPool || t == 0)) {
        spaces.join(p.bottom(0), p.top(t));
      } else if (p.bottom_size() == 0 || p.top(t) != p.bottom(std::min(t, p.bottom_size() - 1))) {
        owner[p.top(t)] = i;
      }
    }
  }
  std::vector<CoupledGroup> groups;
  std::set<std::string> seen;
  for (const auto& l : layers) {
    if (channel_flow(*l) != ChannelFlow::kEltwise || l->param().top_size() == 0) continue;
    const std::string root = spaces.find(l->param().top(0));
    if (!seen.insert(root).second) continue;
    std::set<size_t> members;
    for (const auto& kv : owner)
      if (spaces.find(kv.first) == root) members.insert(kv.second);
    CoupledGroup g;
    g.eltwise = l->name();
    for (size_t i : members) {
      g.owners.push_back(layers[i]->name());
      g.owner_types.push_back(layers[i]->type());
    }
    groups.push_back(std::move(g));
  }
  return groups;
}

void validate_structure(const Net& net, const std::vector<std::unique_ptr<SparsityPolicy>>& policies) {
  std::map<std::string, const SparsityPolicy*> by_layer;
  for (const auto& p : policies) by_layer[p->layer_name()] = p.get();
  const auto& layers = net.layers();
  for (const auto& p : policies) {
    if (!p->prunes_outputs()) continue;
    const std::string where = "layer '" + p->layer_name() + "' sparsity_param: ";
    const std::string type = p->layer().type();
    if (type != "Convolution" && type != "InnerProduct")
      throw Error(where + "FILTER granularity needs a Convolution or InnerProduct layer, not " + type);
    if (type == "InnerProduct" && p->layer().param().inner_product_param().transpose())
      throw Error(where + "FILTER pruning needs an InnerProduct with weights [num_output, K]; this one has "
                          "transpose: true (weights [K, num_output]), whose output neurons are columns");
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
        if (is_terminal(c.type()))
          throw Error(where + "FILTER pruning would remove output neurons of a classifier: its output feeds '" +
                          c.name() + "' (" + c.type() + "), so pruning changes the label space",
                      "leave the classifier dense, or prune it with FINE granularity");
        const ChannelFlow f = channel_flow(c);
        if (index_preserving(c) || f == ChannelFlow::kFlatten || f == ChannelFlow::kEltwise)
          for (const auto& t : c.param().top()) todo.push_back({j, t});
      }
    }
  }
  for (const CoupledGroup& g : coupled_groups(net)) {
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
  propagate_structure(net);
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

void propagate_structure(Net& net) {
  std::map<std::string, Known> known;
  auto info = [&](const std::string& blob) -> Known {
    auto it = known.find(blob);
    return it == known.end() ? Known{} : it->second;
  };
  for (size_t index = 0; index < net.layers().size(); ++index) {
    Layer& l = *net.layers()[index];
    const auto& p = l.param();
    const std::string type = l.type();
    std::vector<Known> tops(size_t(p.top_size()));
    auto tensor = [&](const std::string& name) -> const Tensor& { return net.blob(name); };
    switch (channel_flow(l)) {
      case ChannelFlow::kElementwise:
        for (auto& t : tops) t = info(p.bottom(0));
        break;
      case ChannelFlow::kPool: {
        const Known k = info(p.bottom(0));
        const Tensor& top = tensor(p.top(0));
        if (channel_aligned(k, tensor(p.bottom(0))) && top.num_axes() == 4)
          tops[0] = make_known(k.units, top.count(2), k.num_units);
        break;
      }
      case ChannelFlow::kFlatten: {
        const Tensor &bottom = tensor(p.bottom(0)), &top = tensor(p.top(0));
        if (bottom.num_axes() > 0 && top.num_axes() > 0 && bottom.shape(0) == top.shape(0)) tops[0] = info(p.bottom(0));
        break;
      }
      case ChannelFlow::kConcat: {
        const auto& cp = p.concat_param();
        const Tensor& top = tensor(p.top(0));
        const int axis = top.canonical_axis(cp.has_concat_dim() ? int(cp.concat_dim()) : cp.axis());
        int64_t unit = 0;
        for (const auto& b : p.bottom())
          if (info(b).reduced) unit = unit ? (unit == info(b).unit_size ? unit : -1) : info(b).unit_size;
        if (axis != 1 || unit <= 0) break;
        std::vector<int> units;
        int64_t offset = 0;
        bool ok = true;
        for (const auto& b : p.bottom()) {
          const Known k = info(b);
          const int64_t per = tensor(b).count(1);
          ok = ok && per % unit == 0 && (!k.reduced || k.num_units == per / unit);
          if (!ok) break;
          if (k.reduced) {
            for (int u : k.units) units.push_back(int(offset + u));
          } else {
            for (int64_t u = 0; u < per / unit; ++u) units.push_back(int(offset + u));
          }
          offset += per / unit;
        }
        if (ok) tops[0] = make_known(std::move(units), unit, offset);
        break;
      }
      case ChannelFlow::kEltwise: {
        const bool prod = p.eltwise_param().operation() == EltwiseParameter::PROD;
        Known acc;
        bool first = true, ok = true;
        for (const auto& b : p.bottom()) {
          const Known k = info(b);
          if (!k.reduced) {
            if (prod) continue;
            ok = false;
            break;
          }
          if (first) {
            acc = k;
            first = false;
            continue;
          }
          if (!same_layout(acc, k)) {
            ok = false;
            break;
          }
          std::vector<int> merged;
          if (prod) std::set_intersection(acc.units.begin(), acc.units.end(), k.units.begin(), k.units.end(), std::back_inserter(merged));
          else std::set_union(acc.units.begin(), acc.units.end(), k.units.begin(), k.units.end(), std::back_inserter(merged));
          acc.units = std::move(merged);
        }
        if (ok && !first) tops[0] = make_known(acc.units, acc.unit_size, acc.num_units);
        break;
      }
      case ChannelFlow::kProducer: {
        // Inputs: the channels (Convolution, union over bottoms) or features (InnerProduct along
        // axis 1) that can be non-zero.
        std::vector<int> inputs;
        if (type == "Convolution") {
          Known u;
          for (int b = 0; b < p.bottom_size(); ++b) {
            const Known k = info(p.bottom(b));
            if (!channel_aligned(k, tensor(p.bottom(b)))) {
              u = Known{};
              break;
            }
            if (b == 0) {
              u = k;
            } else {
              std::vector<int> merged;
              std::set_union(u.units.begin(), u.units.end(), k.units.begin(), k.units.end(), std::back_inserter(merged));
              u.units = std::move(merged);
            }
          }
          if (u.reduced) inputs = u.units;
        } else if (producer_of_kept(l)) {
          const Known k = info(p.bottom(0));
          const Tensor& bottom = tensor(p.bottom(0));
          const int axis = bottom.canonical_axis(p.inner_product_param().axis());
          if (k.reduced && axis == 1 && k.unit_size * k.num_units == bottom.count(1))
            for (int u : k.units)
              for (int64_t j = 0; j < k.unit_size; ++j) inputs.push_back(int(u * k.unit_size + j));
        }
        l.set_active_inputs(std::move(inputs));
        const std::vector<int>& kept = l.active_outputs();
        if (kept.empty() || !producer_of_kept(l)) break;
        for (int t = 0; t < p.top_size(); ++t) {
          const Tensor& top = tensor(p.top(t));
          if (type == "Convolution" && top.num_axes() == 4) tops[size_t(t)] = make_known(kept, top.count(2), top.shape(1));
          if (type == "InnerProduct" && top.num_axes() == 2) tops[size_t(t)] = make_known(kept, 1, top.shape(1));
        }
        break;
      }
      case ChannelFlow::kOpaque:
        break;
    }
    // A unit-dropping layer (approximate dropout) knows its top's non-zero units for this pass.
    const std::vector<int>& dropped_kept = l.dynamic_kept();
    if (!dropped_kept.empty() && p.top_size() == 1) {
      const Tensor& top = tensor(p.top(0));
      if (top.num_axes() >= 2) {
        Known k = make_known(dropped_kept, top.count(2), top.shape(1));
        const Known& before = tops[0];
        if (before.reduced && same_layout(before, k)) {
          std::vector<int> both;
          std::set_intersection(before.units.begin(), before.units.end(), k.units.begin(), k.units.end(),
                                std::back_inserter(both));
          k.units = std::move(both);
        }
        tops[0] = k;
      }
    }
    // DSG double-mask selection: the end of a CONV/FC -> ReLU -> BatchNorm (-> Scale) chain is
    // masked again with its producer's selection, so the channels a batch-shared selection
    // dropped are zero here although BatchNorm / Scale are opaque.
    const int source = net.double_mask_source(index);
    if (source >= 0 && p.top_size() == 1) {
      const Layer& producer = *net.layers()[size_t(source)];
      const Tensor& top = tensor(p.top(0));
      if (!producer.active_outputs().empty() && top.num_axes() >= 2)
        tops[0] = make_known(producer.active_outputs(), top.num_axes() > 2 ? top.count(2) : 1, top.shape(1));
    }
    for (int t = 0; t < p.top_size(); ++t) known[p.top(t)] = tops[size_t(t)];
  }
}

int dynamic_drop_producer(const Net& net, size_t index) {
  const auto& layers = net.layers();
  const Layer& drop = *layers[index];
  if (drop.param().bottom_size() != 1) return -1;
  std::vector<std::string> chain;  // blobs between the producer and the dropping layer
  std::string blob = drop.param().bottom(0);
  size_t from = index;  // the layer that reads `blob` in the chain
  auto reads = [](const Layer& l, const std::string& b) {
    for (const auto& x : l.param().bottom())
      if (x == b) return true;
    return false;
  };
  auto writes = [](const Layer& l, const std::string& b) {
    for (const auto& x : l.param().top())
      if (x == b) return true;
    return false;
  };
  for (;;) {
    chain.push_back(blob);
    size_t k = from;
    while (k-- > 0)
      if (writes(*layers[k], blob)) break;
    if (k == size_t(-1)) return -1;
    for (size_t m = k + 1; m < from; ++m)
      if (reads(*layers[m], blob)) return -1;  // another reader needs the dropped units
    const Layer& l = *layers[k];
    const std::string type = l.type();
    if (type == "Convolution" || (type == "InnerProduct" && producer_of_kept(l))) {
      if (l.param().top_size() != 1) return -1;
      // Later readers of an undropped blob of the chain (not overwritten in place) would see the
      // missing units.
      const std::string& out = drop.param().top(0);
      for (size_t m = index + 1; m < layers.size(); ++m)
        for (const auto& b : chain)
          if (b != out && reads(*layers[m], b)) return -1;
      if (l.param().has_sparsity_param() && l.param().sparsity_param().granularity() == SparsityParameter::FILTER)
        throw Error("layer '" + drop.name() + "' (" + drop.type() + ") drops outputs of layer '" + l.name() +
                    "', which is FILTER-pruned; approximate dropout and filter pruning of one layer cannot be combined");
      return int(k);
    }
    if (channel_flow(l) != ChannelFlow::kElementwise || l.param().bottom_size() != 1 || l.param().top_size() != 1)
      return -1;
    blob = l.param().bottom(0);
    from = k;
  }
}

}  // namespace dsg
