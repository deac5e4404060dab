#include "runtime/channel_pass.hpp"

#include <algorithm>
#include <iterator>

#include "runtime/error.hpp"

namespace dsg {
namespace {

UnitSet make_units(std::vector<int> units, int64_t unit_size, int64_t num_units) {
  UnitSet k;
  if (int64_t(units.size()) >= num_units || unit_size <= 0) return k;
  k.reduced = true;
  k.units = std::move(units);
  k.unit_size = unit_size;
  k.num_units = num_units;
  return k;
}

bool same_layout(const UnitSet& a, const UnitSet& b) { return a.unit_size == b.unit_size && a.num_units == b.num_units; }

bool same_units(const UnitSet& a, const UnitSet& b) {
  return a.reduced == b.reduced && (!a.reduced || (a.units == b.units && same_layout(a, b)));
}

// Whether `k` describes channels of the 4-axis blob t (unit = one H W plane).
bool channel_aligned(const UnitSet& k, const Tensor& t) {
  return k.reduced && t.num_axes() == 4 && k.unit_size == t.count(2) && k.num_units == t.shape(1);
}

std::vector<int> merge(const std::vector<int>& a, const std::vector<int>& b, bool intersect) {
  std::vector<int> out;
  if (intersect) std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  else std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

// One walk of the pass; see the header for the modes.
class UnitWalk {
 public:
  UnitWalk(const LayerGraph& g, UnitPassMode mode) : g_(g), physical_(mode == UnitPassMode::kPhysical) {
    result_.inputs.resize(g.size());
  }

  UnitPassResult run(const std::vector<std::vector<int>>& kept_outputs, const std::vector<int>& double_mask) {
    for (size_t i = 0; i < g_.size(); ++i) {
      const Layer& l = *g_.layers[i];
      std::vector<UnitSet> in;
      bool reduced = false;
      for (const Tensor* b : g_.bottoms[i]) {
        in.push_back(at(b));
        reduced = reduced || in.back().reduced;
      }
      std::vector<UnitSet> out(g_.tops[i].size());
      const ChannelFlow flow = l.channel_flow();
      if (flow.kind == ChannelFlow::kProducer) {
        if (reduced) producer_inputs(i, flow, in);
        const std::vector<int>& kept = i < kept_outputs.size() ? kept_outputs[i] : std::vector<int>{};
        if (!kept.empty() && flow.rows_are_outputs && flow.unit_axis == 1)
          for (size_t t = 0; t < out.size(); ++t) {
            const Tensor& top = *g_.tops[i][t];
            if (top.num_axes() < 2) continue;
            out[t] = make_units(kept, top.count(2), top.shape(1));
            if (physical_) out[t].sources = {l.name()};
          }
      } else if (reduced) {
        follow(i, flow, in, out);
      }
      if (!physical_) apply_dynamic(i, out, double_mask);
      for (size_t t = 0; t < out.size(); ++t) known_[g_.tops[i][t]] = out[t];
    }
    return std::move(result_);
  }

 private:
  UnitSet at(const Tensor* t) const {
    auto it = known_.find(t);
    return it == known_.end() ? UnitSet{} : it->second;
  }

  void block(const std::vector<UnitSet>& in, size_t layer, const std::string& reason) {
    if (!physical_) return;
    const Layer& l = *g_.layers[layer];
    for (const auto& x : in)
      for (const auto& s : x.sources)
        result_.blocked.emplace(s, "its output reaches '" + l.name() + "' (" + l.type() + "), " + reason);
  }

  // The input units a Convolution (channels of its bottoms) or InnerProduct (features along axis
  // 1) keeps.
  void producer_inputs(size_t i, const ChannelFlow& flow, const std::vector<UnitSet>& in) {
    const Tensor& x = *g_.bottoms[i][0];
    std::vector<int>& inputs = result_.inputs[i];
    if (flow.inputs == ChannelFlow::kChannels) {
      if (physical_) {
        bool ok = flow.groups == 1 && channel_aligned(in[0], x);
        for (const auto& b : in) ok = ok && same_units(b, in[0]);
        if (ok) inputs = in[0].units;
        else block(in, i, "a grouped convolution or one whose input layout does not follow the channels");
        return;
      }
      UnitSet u;
      for (size_t b = 0; b < in.size(); ++b) {
        if (!channel_aligned(in[b], *g_.bottoms[i][b])) return;
        u.units = b == 0 ? in[b].units : merge(u.units, in[b].units, false);
      }
      inputs = u.units;
    } else if (flow.inputs == ChannelFlow::kFeatures && in[0].reduced &&
               in[0].unit_size * in[0].num_units == x.count(1)) {
      for (int u : in[0].units)
        for (int64_t j = 0; j < in[0].unit_size; ++j) inputs.push_back(int(u * in[0].unit_size + j));
    } else {
      block(in, i, "a transposed InnerProduct or one that does not start at axis 1");
    }
  }

  // Non-producing layers with at least one reduced input.
  void follow(size_t i, const ChannelFlow& flow, const std::vector<UnitSet>& in, std::vector<UnitSet>& out) {
    const Layer& l = *g_.layers[i];
    const TensorVec& bottoms = g_.bottoms[i];
    const TensorVec& tops = g_.tops[i];
    switch (flow.kind) {
      case ChannelFlow::kElementwise:
        if (!flow.zero_preserving) block(in, i, "which does not map zero channels to zero (or is not known to)");
        else if (physical_ && !l.blobs().empty()) block(in, i, "whose parameters are per channel");
        else for (auto& o : out) o = in[0];
        return;
      case ChannelFlow::kPool:
        if (channel_aligned(in[0], *bottoms[0]) && tops[0]->num_axes() == 4 && !(physical_ && tops.size() > 1)) {
          out[0] = in[0];
          out[0].unit_size = tops[0]->count(2);
        } else {
          block(in, i, "a pooling layer with an argmax top or an input that is not per channel");
        }
        return;
      case ChannelFlow::kFlatten: {
        const Tensor &x = *bottoms[0], &y = *tops[0];
        const bool batch_kept = x.num_axes() > 0 && y.num_axes() > 0 && x.shape(0) == y.shape(0);
        if (batch_kept && (!physical_ || flow.shape_follows_input)) out[0] = in[0];
        else block(in, i, "whose configured shape would not follow the channel count");
        return;
      }
      case ChannelFlow::kConcat:
        if (!concat(flow, in, bottoms, out[0])) block(in, i, "a Concat that is not along the channel axis of equally laid out inputs");
        return;
      case ChannelFlow::kEltwise:
        if (!eltwise(flow, in, out[0])) block(in, i, "an Eltwise whose inputs would keep different channels");
        return;
      default:
        block(in, i, "which does not map zero channels to zero (or is not known to)");
        return;
    }
  }

  bool concat(const ChannelFlow& flow, const std::vector<UnitSet>& in, const TensorVec& bottoms, UnitSet& out) {
    int64_t unit = 0;
    for (const auto& x : in)
      if (x.reduced) unit = unit == 0 || unit == x.unit_size ? x.unit_size : -1;
    if (flow.axis != 1 || unit <= 0) return false;
    UnitSet o;
    int64_t offset = 0;
    for (size_t b = 0; b < in.size(); ++b) {
      const int64_t per = bottoms[b]->count(1);
      if (per % unit != 0 || (in[b].reduced && in[b].num_units != per / unit)) return false;
      if (in[b].reduced) {
        for (int u : in[b].units) o.units.push_back(int(offset + u));
      } else {
        for (int64_t u = 0; u < per / unit; ++u) o.units.push_back(int(offset + u));
      }
      offset += per / unit;
      o.sources.insert(in[b].sources.begin(), in[b].sources.end());
    }
    std::set<std::string> sources = std::move(o.sources);
    out = make_units(std::move(o.units), unit, offset);
    out.sources = std::move(sources);
    return true;
  }

  // kKnownZero: SUM / MAX take the union (an input that may be anything makes the top anything);
  // PROD the intersection (unknown inputs do not matter). kPhysical: the inputs must agree.
  bool eltwise(const ChannelFlow& flow, const std::vector<UnitSet>& in, UnitSet& out) {
    if (physical_) {
      for (const auto& x : in)
        if (!same_units(x, in[0])) return false;
      out = in[0];
      for (const auto& x : in) out.sources.insert(x.sources.begin(), x.sources.end());
      return true;
    }
    UnitSet acc;
    bool first = true;
    for (const auto& k : in) {
      if (!k.reduced) {
        if (flow.intersect) continue;
        return true;  // nothing known
      }
      if (first) {
        acc = k;
        first = false;
      } else if (!same_layout(acc, k)) {
        return true;
      } else {
        acc.units = merge(acc.units, k.units, flow.intersect);
      }
    }
    if (!first) out = make_units(acc.units, acc.unit_size, acc.num_units);
    return true;
  }

  // kKnownZero: a unit-dropping layer knows its top's non-zero units for this pass; DSG's double
  // mask makes the end of a CONV/FC -> ReLU -> BatchNorm (-> Scale) chain zero where its producer
  // dropped channels, although BatchNorm / Scale do not preserve zeros.
  void apply_dynamic(size_t i, std::vector<UnitSet>& out, const std::vector<int>& double_mask) {
    const Layer& l = *g_.layers[i];
    if (out.size() != 1) return;
    const Tensor& top = *g_.tops[i][0];
    const std::vector<int>& dropped_kept = l.dynamic_kept();
    if (!dropped_kept.empty() && top.num_axes() >= 2) {
      UnitSet k = make_units(dropped_kept, top.count(2), top.shape(1));
      if (out[0].reduced && same_layout(out[0], k)) k.units = merge(out[0].units, k.units, true);
      out[0] = k;
    }
    const int source = i < double_mask.size() ? double_mask[i] : -1;
    if (source >= 0 && top.num_axes() >= 2) {
      const Layer& producer = *g_.layers[size_t(source)];
      if (!producer.active_outputs().empty())
        out[0] = make_units(producer.active_outputs(), top.num_axes() > 2 ? top.count(2) : 1, top.shape(1));
    }
  }

  const LayerGraph& g_;
  const bool physical_;
  std::map<const Tensor*, UnitSet> known_;
  UnitPassResult result_;
};

// Union-find over blobs.
struct Spaces {
  std::map<const Tensor*, const Tensor*> parent;
  const Tensor* find(const Tensor* x) {
    auto it = parent.find(x);
    if (it == parent.end()) return parent[x] = x;
    if (it->second == x) return x;
    return it->second = find(it->second);
  }
  void join(const Tensor* a, const Tensor* b) { parent[find(a)] = find(b); }
};

}  // namespace

int LayerGraph::index_of(const std::string& layer_name) const {
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i]->name() == layer_name) return int(i);
  return -1;
}

bool index_preserving(const ChannelFlow& flow) {
  return flow.kind == ChannelFlow::kElementwise || flow.kind == ChannelFlow::kPool;
}

UnitPassResult propagate_units(const LayerGraph& graph, const std::vector<std::vector<int>>& kept_outputs,
                               UnitPassMode mode, const std::vector<int>& double_mask_source) {
  return UnitWalk(graph, mode).run(kept_outputs, double_mask_source);
}

std::vector<CoupledGroup> coupled_groups(const LayerGraph& g) {
  Spaces spaces;
  std::map<const Tensor*, size_t> owner;  // blob -> index of the layer creating its channels
  for (size_t i = 0; i < g.size(); ++i) {
    const ChannelFlow f = g.layers[i]->channel_flow();
    const TensorVec& bottoms = g.bottoms[i];
    for (size_t t = 0; t < g.tops[i].size(); ++t) {
      const Tensor* top = g.tops[i][t];
      spaces.find(top);
      if (f.kind == ChannelFlow::kEltwise) {
        for (const Tensor* b : bottoms) spaces.join(b, top);
      } else if (index_preserving(f) && !bottoms.empty() && (f.kind != ChannelFlow::kPool || t == 0)) {
        spaces.join(bottoms[0], top);
      } else if (bottoms.empty() || top != bottoms[std::min(t, bottoms.size() - 1)]) {
        owner[top] = i;
      }
    }
  }
  std::vector<CoupledGroup> groups;
  std::set<const Tensor*> seen;
  for (size_t i = 0; i < g.size(); ++i) {
    if (g.layers[i]->channel_flow().kind != ChannelFlow::kEltwise || g.tops[i].empty()) continue;
    const Tensor* root = spaces.find(g.tops[i][0]);
    if (!seen.insert(root).second) continue;
    std::set<size_t> members;
    for (const auto& kv : owner)
      if (spaces.find(kv.first) == root) members.insert(kv.second);
    CoupledGroup group;
    group.eltwise = g.layers[i]->name();
    for (size_t m : members) {
      group.owners.push_back(g.layers[m]->name());
      group.owner_types.push_back(g.layers[m]->type());
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

int dynamic_drop_producer(const LayerGraph& g, size_t index) {
  const Layer& drop = *g.layers[index];
  if (g.bottoms[index].size() != 1 || g.tops[index].size() != 1) return -1;
  auto reads = [&](size_t m, const Tensor* b) {
    return std::find(g.bottoms[m].begin(), g.bottoms[m].end(), b) != g.bottoms[m].end();
  };
  auto writes = [&](size_t m, const Tensor* b) { return std::find(g.tops[m].begin(), g.tops[m].end(), b) != g.tops[m].end(); };
  std::vector<const Tensor*> chain;  // blobs between the producer and the dropping layer
  const Tensor* blob = g.bottoms[index][0];
  size_t from = index;  // the layer that reads `blob` in the chain
  for (;;) {
    chain.push_back(blob);
    size_t k = from;
    while (k-- > 0)
      if (writes(k, blob)) break;
    if (k == size_t(-1)) return -1;
    for (size_t m = k + 1; m < from; ++m)
      if (reads(m, blob)) return -1;  // another reader needs the dropped units
    const Layer& l = *g.layers[k];
    const ChannelFlow f = l.channel_flow();
    if (f.kind == ChannelFlow::kProducer && f.rows_are_outputs) {
      if (g.tops[k].size() != 1) return -1;
      // Later readers of an undropped blob of the chain (not overwritten in place) would see the
      // missing units.
      const Tensor* out = g.tops[index][0];
      for (size_t m = index + 1; m < g.size(); ++m)
        for (const Tensor* b : chain)
          if (b != out && reads(m, b)) return -1;
      if (l.param().has_sparsity_param() && l.param().sparsity_param().granularity() == SparsityParameter::FILTER)
        throw Error("layer '" + drop.name() + "' (" + drop.type() + ") drops outputs of layer '" + l.name() +
                    "', which is FILTER-pruned; approximate dropout and filter pruning of one layer cannot be combined");
      return int(k);
    }
    if (f.kind != ChannelFlow::kElementwise || !f.zero_preserving || g.bottoms[k].size() != 1 || g.tops[k].size() != 1)
      return -1;
    blob = g.bottoms[k][0];
    from = k;
  }
}

}  // namespace dsg
