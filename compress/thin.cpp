#include "compress/thin.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "runtime/channel_pass.hpp"
#include "runtime/error.hpp"
#include "runtime/model_file.hpp"
#include "runtime/net.hpp"
#include "sparsity/policy.hpp"

namespace dsg {
namespace {

using KeptMap = std::map<std::string, std::vector<int>>;

struct Walk {
  KeptMap inputs;                              // consumer -> kept input channels (Conv) / features (IP)
  std::map<std::string, std::string> blocked;  // thinned layer that cannot be thinned -> reason
};

// Follows the planned output channels through the TEST net (the engine's channel pass in its
// physical mode): which inputs each consumer keeps, and which planned layers reach a layer that
// cannot follow a thinner blob.
Walk walk(const Net& net, const KeptMap& plan) {
  const LayerGraph& g = net.graph();
  std::vector<std::vector<int>> kept(g.size());
  for (const auto& kv : plan) kept[size_t(g.index_of(kv.first))] = kv.second;
  UnitPassResult r = propagate_units(g, kept, UnitPassMode::kPhysical);
  Walk w;
  w.blocked = std::move(r.blocked);
  for (size_t i = 0; i < g.size(); ++i)
    if (!r.inputs[i].empty()) w.inputs[g.layers[i]->name()] = std::move(r.inputs[i]);
  return w;
}

// The output channels kept by each active FILTER policy of the snapshot (only layers that lose
// at least one channel).
KeptMap kept_filters(const ModelFile& model, const Net& net) {
  KeptMap kept;
  for (const PolicyState& s : model.policy()) {
    Layer* layer = net.layer_by_name(s.layer());
    if (!layer || layer->blobs().empty() || !s.active() || s.mask_size() == 0) continue;
    if (layer->param().sparsity_param().granularity() != SparsityParameter::FILTER) continue;
    std::vector<int> k = stored_kept_outputs(s, *layer);
    if (int64_t(k.size()) < layer->blobs()[0]->shape(0)) kept[layer->name()] = std::move(k);
  }
  return kept;
}

// Copies the rows `rows` (all when empty) and, within each row, the column blocks `cols` (all
// when empty; `block` floats each) of a [R, C block] tensor into a new blob of shape `shape`.
void gather_blob(const Tensor& t, const std::vector<int>& rows, const std::vector<int>& cols, int64_t block,
                 std::vector<int> shape, BlobProto* out) {
  const int64_t r_all = t.num_axes() > 0 ? t.shape(0) : 1, per = t.count() / std::max<int64_t>(1, r_all);
  out->Clear();
  for (int d : shape) out->mutable_shape()->add_dim(d);
  const float* d = t.data();
  const int64_t nr = rows.empty() ? r_all : int64_t(rows.size());
  for (int64_t i = 0; i < nr; ++i) {
    const float* row = d + (rows.empty() ? i : rows[size_t(i)]) * per;
    if (cols.empty()) {
      for (int64_t j = 0; j < per; ++j) out->add_data(row[j]);
    } else {
      for (int c : cols)
        for (int64_t j = 0; j < block; ++j) out->add_data(row[c * block + j]);
    }
  }
}

// The TEST net of the snapshot, from its recorded data shapes, with its weights loaded.
std::unique_ptr<Net> rebuild_test_net(const ModelFile& model, const std::string& label) {
  std::mt19937_64 rng(0);  // initial values are overwritten by the stored weights
  std::unique_ptr<Net> net;
  try {
    net = std::make_unique<Net>(with_recorded_sources(model.net(), model, TEST), TEST, rng);
  } catch (const Error& e) {
    if (model.source_shape_size() > 0) throw;
    throw Error("'" + label + "': its net cannot be rebuilt without the dataset (the model records no data shapes; " +
                    "it was written by an older dsgtrain): " + e.what(),
                "dsgcompress --thin measures them from the dataset (--data DIR)");
  }
  try {
    net->params_from_proto(model);
  } catch (const Error& e) {
    throw Error("'" + label + "': " + e.what(), e.hint());
  }
  return net;
}

// What thinning removes: the kept output rows of each thinned layer, the kept inputs of their
// consumers, and why the pruned layers that stay whole do.
struct Plan {
  KeptMap rows;
  Walk walk;
  std::map<std::string, std::string> notes;

  void drop(const std::string& name, const std::string& why) {
    if (rows.erase(name)) notes.emplace(name, why);
  }
};

Plan plan_thinning(const ModelFile& model, const Net& net, const std::string& label) {
  Plan plan;
  plan.rows = kept_filters(model, net);
  if (plan.rows.empty())
    throw Error("'" + label + "' holds no structured sparsity: its FILTER policies keep every filter, so there is "
                "nothing to thin");
  for (const auto& kv : KeptMap(plan.rows)) {
    const ChannelFlow flow = net.layer_by_name(kv.first)->channel_flow();
    if (!flow.rows_are_outputs || flow.unit_axis != 1) plan.drop(kv.first, "transposed InnerProduct or axis other than 1");
    else if (flow.groups != 1) plan.drop(kv.first, "grouped convolution");
  }
  // Coupled layers: all thinned to the union of their kept channels, or none.
  const std::vector<CoupledGroup> groups = coupled_groups(net.graph());
  for (const CoupledGroup& g : groups) {
    if (g.owners.size() < 2) continue;
    std::set<int> all;
    bool any = false, every = true;
    for (const auto& o : g.owners) {
      auto it = plan.rows.find(o);
      any = any || it != plan.rows.end();
      every = every && it != plan.rows.end();
      if (it != plan.rows.end()) all.insert(it->second.begin(), it->second.end());
    }
    if (!any) continue;
    const int64_t width = net.blob(net.layer_by_name(g.owners[0])->param().top(0)).shape(1);
    for (const auto& o : g.owners) {
      if (!every) plan.drop(o, "channel-coupled through Eltwise '" + g.eltwise + "' with a layer that is not thinned");
      else if (int64_t(all.size()) >= width) plan.drop(o, "channel-coupled layers keep every channel between them");
      else plan.rows[o].assign(all.begin(), all.end());
    }
  }
  auto partners = [&](const std::string& name) {
    std::vector<std::string> out{name};
    for (const CoupledGroup& g : groups)
      if (std::find(g.owners.begin(), g.owners.end(), name) != g.owners.end()) out.insert(out.end(), g.owners.begin(), g.owners.end());
    return out;
  };
  plan.walk = walk(net, plan.rows);
  while (!plan.walk.blocked.empty()) {
    for (const auto& kv : plan.walk.blocked)
      for (const auto& name : partners(kv.first)) plan.drop(name, kv.second);
    plan.walk = walk(net, plan.rows);
  }
  return plan;
}

// The snapshot's parameters with the removed rows (thinned layers) and input columns (their
// consumers) cut out.
void write_thinned_params(const ModelFile& model, const Net& net, const Plan& plan, ModelFile* out_model) {
  static const std::vector<int> kAll;
  for (const ParamBlob& pb : model.param()) {
    ParamBlob* out = out_model->add_param();
    *out = pb;
    const bool rows = plan.rows.count(pb.layer()) > 0, cols = plan.walk.inputs.count(pb.layer()) > 0;
    if (!rows && !cols) continue;
    const Layer& l = *net.layer_by_name(pb.layer());
    const Tensor& t = *l.blobs()[size_t(pb.index())];
    const std::vector<int>& r = rows ? plan.rows.at(pb.layer()) : kAll;
    const std::vector<int>& c = cols ? plan.walk.inputs.at(pb.layer()) : kAll;
    const std::vector<int> weights = l.weight_blobs();
    if (std::find(weights.begin(), weights.end(), pb.index()) == weights.end()) {  // the bias: one entry per output
      if (rows) gather_blob(t, r, {}, 1, {int(r.size())}, out->mutable_blob());
      continue;
    }
    std::vector<int> shape = t.shape();
    if (rows) shape[0] = int(r.size());
    if (cols) shape[1] = int(c.size());
    gather_blob(t, r, c, t.count(2), shape, out->mutable_blob());  // a column block: one input channel's kh kw
  }
}

// The report row of a weight layer: outputs, parameters and MACs before and after.
ThinLayer report_row(const Layer& l, const Net& net, const Plan& plan) {
  const ChannelFlow flow = l.channel_flow();
  ThinLayer row;
  row.name = l.name();
  row.type = l.type();
  const Tensor& wt = *l.blobs()[0];
  const Tensor& y = net.blob(l.param().top(0));
  const int64_t outputs = flow.rows_are_outputs ? wt.shape(0) : wt.shape(1);
  auto it = plan.rows.find(l.name());
  auto in = plan.walk.inputs.find(l.name());
  row.outputs_before = outputs;
  row.outputs_after = it == plan.rows.end() ? outputs : int64_t(it->second.size());
  const int64_t fan_in = wt.count() / outputs;  // (C / group) kh kw, or K
  const int64_t fan_in_after = in == plan.walk.inputs.end() ? fan_in : int64_t(in->second.size()) * wt.count(2);
  const int64_t bias = l.blobs().size() > 1 ? 1 : 0;
  row.params_before = outputs * (fan_in + bias);
  row.params_after = row.outputs_after * (fan_in_after + bias);
  const bool conv = flow.inputs == ChannelFlow::kChannels;
  const int64_t positions = conv ? y.count(2) * int64_t(l.param().top_size()) : y.count(1, y.num_axes() - 1);
  row.macs_before = positions * outputs * fan_in;
  row.macs_after = positions * row.outputs_after * fan_in_after;
  if (plan.notes.count(l.name())) row.note = "not thinned: " + plan.notes.at(l.name());
  return row;
}

}  // namespace

ThinnedModel thin_model(const ModelFile& model, const std::string& label) {
  if (!model.has_net() || model.net().layer_size() == 0) throw Error("'" + label + "' holds no network definition");
  if (model.param_size() == 0) throw Error("'" + label + "' holds no weights");
  bool any_filter = false;  // checked before the net is built
  for (const PolicyState& ps : model.policy())
    for (const auto& l : model.net().layer())
      any_filter = any_filter || (l.name() == ps.layer() && ps.active() && ps.mask_size() > 0 &&
                                  l.sparsity_param().granularity() == SparsityParameter::FILTER);
  if (!any_filter)
    throw Error("'" + label + "' holds no structured sparsity: no layer has an active FILTER-granularity policy, so "
                "there is nothing to thin",
                "train with sparsity_param { granularity: FILTER ... } on a Convolution or InnerProduct layer");
  const std::unique_ptr<Net> net = rebuild_test_net(model, label);
  const Plan plan = plan_thinning(model, *net, label);

  ThinnedModel result;
  NetParameter thin_net = model.net();
  for (auto& layer : *thin_net.mutable_layer()) {
    layer.clear_sparsity_param();
    auto it = plan.rows.find(layer.name());
    if (it != plan.rows.end()) net->layer_by_name(layer.name())->set_num_outputs(layer, int(it->second.size()));
  }
  result.solver = model.has_solver() ? model.solver() : SolverParameter();
  result.solver.clear_schedule();
  result.solver.clear_net();
  result.solver.clear_train_net();
  *result.solver.mutable_net_param() = thin_net;
  *result.model.mutable_net() = thin_net;
  *result.model.mutable_solver() = result.solver;
  *result.model.mutable_source_shape() = model.source_shape();
  result.model.set_created_by("dsgcompress --thin");
  write_thinned_params(model, *net, plan, &result.model);

  for (const auto& l : net->layers()) {
    if (l->channel_flow().kind != ChannelFlow::kProducer || l->blobs().empty()) continue;
    result.layers.push_back(report_row(*l, *net, plan));
    result.thinned_layers += plan.rows.count(l->name()) > 0;
  }
  return result;
}

std::vector<std::string> thin_report(const ThinnedModel& thinned) {
  std::vector<std::string> lines;
  auto arrow = [](int64_t a, int64_t b) { return strfmt("%lld -> %lld", (long long)a, (long long)b); };
  lines.push_back(strfmt("%-16s %-13s %-14s %-22s %s", "layer", "type", "outputs", "params", "MACs/image"));
  ThinLayer total;
  for (const ThinLayer& r : thinned.layers) {
    std::string line = strfmt("%-16s %-13s %-14s %-22s %-26s", r.name.c_str(), r.type.c_str(),
                              arrow(r.outputs_before, r.outputs_after).c_str(),
                              arrow(r.params_before, r.params_after).c_str(), arrow(r.macs_before, r.macs_after).c_str());
    if (!r.note.empty()) line += "  (" + r.note + ")";
    while (!line.empty() && line.back() == ' ') line.pop_back();
    lines.push_back(line);
    total.params_before += r.params_before, total.params_after += r.params_after;
    total.macs_before += r.macs_before, total.macs_after += r.macs_after;
  }
  auto ratio = [](int64_t a, int64_t b) { return b > 0 ? double(a) / double(b) : 0.0; };
  lines.push_back(strfmt("%-16s %-13s %-14s %-22s %s", "total", "", "", arrow(total.params_before, total.params_after).c_str(),
                         arrow(total.macs_before, total.macs_after).c_str()));
  lines.push_back(strfmt("%d layer(s) thinned: %.2fx fewer params, %.2fx fewer MACs in Convolution / InnerProduct layers",
                         thinned.thinned_layers, ratio(total.params_before, total.params_after),
                         ratio(total.macs_before, total.macs_after)));
  return lines;
}

}  // namespace dsg
