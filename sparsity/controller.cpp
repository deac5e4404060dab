#include "sparsity/controller.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "sparsity/structure.hpp"

namespace dsg {
namespace {

// Creates a policy / quantizer by name for `layer` and validates it; errors name the layer.
template <class Registry, class Param>
auto create_validated(const Registry& registry, const std::string& name, const Param& param, Layer& layer) {
  try {
    auto made = registry.create(name, param, layer);
    made->validate();
    return made;
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind("layer '", 0) != 0) msg = "layer '" + layer.name() + "': " + msg;
    throw Error(msg, e.hint());
  }
}

}  // namespace

SparsityController::SparsityController(Net& net, const SolverParameter& solver, int64_t samples_per_iter,
                                       int64_t train_set_size)
    : net_(net) {
  create_quantizers();
  create_policies();
  for (const auto& layer : net.layers())
    if (layer->param().has_structured_backward_param()) sparse_backward_.push_back(layer.get());
  if (!resolve_schedule(solver, samples_per_iter, train_set_size)) return;
  check_everything_fires(solver.max_iter());
  validate_structure(net_, policies_);
}

void SparsityController::create_quantizers() {
  // TTQ leaves the first and last weight layers full precision by default (Zhu et al.).
  std::string first_weighted, last_weighted;
  for (const auto& layer : net_.layers()) {
    if (layer->channel_flow().kind != ChannelFlow::kProducer) continue;
    if (first_weighted.empty()) first_weighted = layer->name();
    last_weighted = layer->name();
  }
  for (const auto& layer : net_.layers()) {
    if (!layer->param().has_quant_param()) continue;
    const QuantizationParameter& qp = layer->param().quant_param();
    if (qp.method() == QuantizationParameter::TTQ && !qp.force() &&
        (layer->name() == first_weighted || layer->name() == last_weighted)) {
      log_warn("layer '" + layer->name() + "' is the " + (layer->name() == first_weighted ? "first" : "last") +
               " weight layer, which TTQ leaves full precision by default; set quant_param { force: true } to "
               "ternarise it");
      continue;
    }
    quantizers_.push_back(create_validated(quantizer_registry(), quantizer_name(qp.method()), qp, *layer));
  }
}

void SparsityController::create_policies() {
  bool first_conv_seen = false;
  for (const auto& layer : net_.layers()) {
    const ChannelFlow flow = layer->channel_flow();
    const bool convolution = flow.kind == ChannelFlow::kProducer && flow.inputs == ChannelFlow::kChannels;
    const bool is_first_conv = convolution && !first_conv_seen;
    first_conv_seen = first_conv_seen || convolution;
    if (!layer->param().has_sparsity_param()) continue;
    const SparsityParameter& sp = layer->param().sparsity_param();
    if (layer->weight_blobs().empty()) {
      log_warn("layer '" + layer->name() + "' (" + layer->type() + ") has no prunable weights (" +
               (layer->blobs().empty() ? "no parameters" : "per-channel parameters such as batch norm's are left dense") +
               "); its sparsity_param is ignored");
      continue;
    }
    if (is_first_conv && !sp.force()) {
      log_warn("layer '" + layer->name() +
               "' is the first convolution, which is left dense by default (pruning it costs the most accuracy); "
               "set sparsity_param { force: true } to prune it");
      continue;
    }
    if (!sp.has_policy()) throw Error("layer '" + layer->name() + "' sparsity_param has no policy");
    policies_.push_back(create_validated(policy_registry(), sp.policy(), sp, *layer));
  }
  gradual_start_.assign(policies_.size(), 0.0f);
}

// Resolves the schedule's phases to iterations; false when there is nothing to schedule.
bool SparsityController::resolve_schedule(const SolverParameter& solver, int64_t samples_per_iter, int64_t train_set_size) {
  const auto& spec = solver.schedule();
  if (empty()) {
    if (spec.phase_size() > 0)
      throw Error("the solver has a sparsity schedule but no layer has a sparsity_param or quant_param");
    return false;
  }
  if (spec.phase_size() == 0 && policies_.empty() && quantizers_.empty()) return false;  // sparse backward always on
  if (spec.phase_size() == 0) {
    if (!policies_.empty())
      throw Error("layer '" + policies_[0]->layer_name() + "' has a sparsity_param but the solver has no schedule",
                  "add schedule { phase { mode: PRUNE start_epoch: ... } } to the solver");
    throw Error("layer '" + quantizers_[0]->layer_name() + "' has a quant_param but the solver has no schedule",
                "add schedule { phase { mode: QUANTIZE start_epoch: ... } } to the solver");
  }
  const int max_iter = solver.max_iter();
  for (int i = 0; i < spec.phase_size(); ++i) {
    const SchedulePhase& p = spec.phase(i);
    std::string name = p.has_name() ? p.name() : "#" + std::to_string(i);
    if (p.has_start_iter() && p.has_start_epoch())
      throw Error("schedule phase " + name + ": give start_iter or start_epoch, not both");
    Phase phase;
    phase.spec = p;
    if (p.has_start_epoch()) {
      if (train_set_size <= 0) throw Error("schedule phase " + name + ": start_epoch needs a Data layer in the TRAIN net");
      phase.start = int(std::llround(double(p.start_epoch()) * double(train_set_size) / double(samples_per_iter)));
    } else {
      phase.start = p.start_iter();
    }
    if (phase.start < 0) throw Error("schedule phase " + name + ": negative start");
    if (!phases_.empty() && phase.start <= phases_.back().start)
      throw Error("schedule phase " + name + " starts at iteration " + std::to_string(phase.start) +
                  ", not after the previous phase (" + std::to_string(phases_.back().start) + ")");
    if (!(p.lr_mult() > 0)) throw Error("schedule phase " + name + ": lr_mult must be > 0");
    if (p.mode() == SchedulePhase::GRADUAL && p.prune_interval() <= 0)
      throw Error("schedule phase " + name + ": prune_interval must be > 0");
    for (const auto& l : p.layer()) {
      bool found = false;
      for (const auto& pol : policies_) found = found || pol->layer_name() == l;
      for (const auto& q : quantizers_) found = found || q->layer_name() == l;
      for (const Layer* sb : sparse_backward_) found = found || sb->name() == l;
      if (!found)
        throw Error("schedule phase " + name + " names layer '" + l +
                    "', which has no sparsity policy, quantizer or structured backward");
    }
    bool quantized_before = false;
    for (const auto& ph : phases_) quantized_before = quantized_before || ph.spec.mode() == SchedulePhase::QUANTIZE;
    if (quantized_before && (p.mode() == SchedulePhase::PRUNE || p.mode() == SchedulePhase::GRADUAL ||
                             p.mode() == SchedulePhase::DENSE))
      throw Error("schedule phase " + name + " (" + SchedulePhase::Mode_Name(p.mode()) +
                  ") comes after a QUANTIZE phase; quantization keeps the sparsity pattern, so pruning or "
                  "re-densifying must happen before it");
    phases_.push_back(phase);
  }
  for (size_t i = 0; i < phases_.size(); ++i) {
    phases_[i].end = std::min(i + 1 < phases_.size() ? phases_[i + 1].start : max_iter, max_iter);
    if (phases_[i].start >= max_iter)
      log_warn(strfmt("sparsity schedule phase %zu starts at iteration %d, after training ends (max_iter %d)", i,
                      phases_[i].start, max_iter));
  }
  return true;
}

void SparsityController::check_everything_fires(int max_iter) const {
  // Every policy must fire (be pruned by a PRUNE or GRADUAL phase) before max_iter.
  for (const auto& pol : policies_) {
    bool fires = false;
    for (const auto& ph : phases_)
      fires = fires || ((ph.spec.mode() == SchedulePhase::PRUNE || ph.spec.mode() == SchedulePhase::GRADUAL) &&
                        ph.start < max_iter && drives(ph, *pol));
    if (!fires)
      throw Error("the sparsity policy of layer '" + pol->layer_name() + "' never fires: no PRUNE or GRADUAL phase that drives it starts before max_iter (" +
                  std::to_string(max_iter) + ")");
  }
  for (const auto& q : quantizers_) {
    bool fires = false;
    for (const auto& ph : phases_)
      fires = fires || (ph.spec.mode() == SchedulePhase::QUANTIZE && ph.start < max_iter && drives(ph, q->layer_name()));
    if (!fires)
      throw Error("the quantizer of layer '" + q->layer_name() + "' never fires: no QUANTIZE phase that drives it starts before max_iter (" +
                  std::to_string(max_iter) + ")");
  }}

bool SparsityController::drives(const Phase& phase, const std::string& layer) const {
  if (phase.spec.layer_size() == 0) return true;
  for (const auto& l : phase.spec.layer())
    if (l == layer) return true;
  return false;
}

int SparsityController::phase_at(int iter) const {
  int p = -1;
  for (size_t i = 0; i < phases_.size(); ++i)
    if (phases_[i].start <= iter) p = int(i);
  return p;
}

float SparsityController::lr_mult(int iter) const {
  int p = phase_at(iter);
  return p < 0 ? 1.0f : phases_[size_t(p)].spec.lr_mult();
}

// Prunes each driven policy to its target; GLOBAL-scope policies share one magnitude threshold.
void SparsityController::prune_driven(const Phase& phase, const std::vector<float>& targets) {
  std::vector<size_t> global;
  for (size_t i = 0; i < policies_.size(); ++i) {
    if (!drives(phase, *policies_[i])) continue;
    if (policies_[i]->param().scope() == SparsityParameter::GLOBAL) global.push_back(i);
    else policies_[i]->prune_to(targets[i]);
  }
  if (!global.empty()) {
    // Total zeros wanted across the group; layers whose share would exceed max_sparsity are capped
    // and the rest of the budget is spread over the others by a common threshold.
    std::vector<std::vector<float>> sal;
    double total = 0, wanted = 0;
    for (size_t i : global) {
      sal.push_back(policies_[i]->saliency());
      std::sort(sal.back().begin(), sal.back().end());
      total += double(sal.back().size());
      wanted += targets[i] * double(sal.back().size());
    }
    std::vector<bool> capped(global.size(), false);
    std::vector<double> share(global.size(), 0);
    for (int round = 0; round < int(global.size()) + 1; ++round) {
      double budget = wanted;
      std::vector<float> pool;
      for (size_t k = 0; k < global.size(); ++k) {
        if (capped[k]) budget -= policies_[global[k]]->param().max_sparsity() * sal[k].size();
        else pool.insert(pool.end(), sal[k].begin(), sal[k].end());
      }
      if (pool.empty()) break;
      size_t cut = size_t(std::clamp(budget, 0.0, double(pool.size())));
      float threshold = 0;
      if (cut > 0) {
        std::nth_element(pool.begin(), pool.begin() + long(cut - 1), pool.end());
        threshold = pool[cut - 1];
      }
      bool changed = false;
      for (size_t k = 0; k < global.size(); ++k) {
        double cap = policies_[global[k]]->param().max_sparsity();
        if (capped[k]) {
          share[k] = cap;
          continue;
        }
        size_t below = cut ? size_t(std::upper_bound(sal[k].begin(), sal[k].end(), threshold) - sal[k].begin()) : 0;
        share[k] = double(below) / sal[k].size();
        if (share[k] > cap) capped[k] = changed = true;
      }
      if (!changed) break;
    }
    for (size_t k = 0; k < global.size(); ++k) policies_[global[k]]->prune_to(float(share[k]));
  }
  structure_changed();
}

std::vector<float> SparsityController::gradual_targets(const Phase& phase, int iter) const {
  // Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) (1 - progress)^3, reaching s_f one pruning
  // interval before the phase ends so the last step is retrained.
  int span = std::max(phase.spec.prune_interval(), phase.end - phase.start - phase.spec.prune_interval());
  double progress = std::min(1.0, double(iter - phase.start) / double(span));
  std::vector<float> out(policies_.size(), 0.0f);
  for (size_t i = 0; i < policies_.size(); ++i) {
    float s_f = policies_[i]->resolve_target(phase.spec.sparsity_scale());
    float s_i = gradual_start_[i];
    out[i] = float(s_f + (s_i - s_f) * std::pow(1.0 - progress, 3.0));
  }
  return out;
}

void SparsityController::begin_iteration(int iter) {
  changed_ = false;
  int p = phase_at(iter);
  if (!phases_.empty())
    for (Layer* layer : sparse_backward_)
      layer->set_sparse_backward(p >= 0 && phases_[size_t(p)].spec.sparse_backward() && drives(phases_[size_t(p)], layer->name()));
  if (p < 0) return;
  const Phase& phase = phases_[size_t(p)];
  const auto mode = phase.spec.mode();
  if (iter == phase.start) {
    std::string name = phase.spec.has_name() ? phase.spec.name() : "#" + std::to_string(p);
    log_info(strfmt("Sparsity schedule: entering phase %s (%s) at iteration %d", name.c_str(),
                    SchedulePhase::Mode_Name(mode).c_str(), iter));
    changed_ = mode != SchedulePhase::HOLD;
    if (mode == SchedulePhase::DENSE) {
      for (auto& pol : policies_)
        if (drives(phase, *pol)) pol->release();
      structure_changed();
    } else if (mode == SchedulePhase::PRUNE) {
      std::vector<float> targets;
      for (auto& pol : policies_) targets.push_back(pol->resolve_target(phase.spec.sparsity_scale()));
      prune_driven(phase, targets);
    } else if (mode == SchedulePhase::QUANTIZE) {
      for (auto& q : quantizers_)
        if (drives(phase, q->layer_name()) && !q->active()) {
          q->quantize();
          log_info("    Quantized " + q->layer_name() + ": " + q->describe());
        }
    } else if (mode == SchedulePhase::GRADUAL) {
      for (size_t i = 0; i < policies_.size(); ++i)
        gradual_start_[i] = policies_[i]->active() ? policies_[i]->current_target() : 0.0f;
    }
  }
  if (mode == SchedulePhase::GRADUAL && (iter - phase.start) % phase.spec.prune_interval() == 0 &&
      iter - phase.start <= std::max(phase.spec.prune_interval(), phase.end - phase.start - phase.spec.prune_interval())) {
    prune_driven(phase, gradual_targets(phase, iter));
    changed_ = true;
  }
}

std::vector<std::pair<std::string, LayerMode>> SparsityController::planned_modes(const Net& net) const {
  std::vector<std::pair<std::string, LayerMode>> out;
  const LayerGraph& graph = net.graph();
  std::vector<std::vector<int>> kept(graph.layers.size());
  std::vector<int> masked_by(graph.layers.size(), -1);
  bool any = false;
  for (size_t i = 0; i < graph.layers.size(); ++i) {
    masked_by[i] = net.double_mask_source(i);
    kept[i] = graph.layers[i]->active_outputs();
    for (const auto& p : policies_) {
      if (p->layer_name() != graph.layers[i]->name()) continue;
      if (p->prunes_outputs()) {
        out.emplace_back(p->layer_name(), LayerMode::kActiveOutputs);
        kept[i] = {0};  // any strict subset: which units survive does not change who can skip them
        any = true;
      } else if (p->param().granularity() == SparsityParameter::CHANNEL) {
        out.emplace_back(p->layer_name(), LayerMode::kActiveInputs);
      }
    }
  }
  if (any) {
    const UnitPassResult r = propagate_units(graph, kept, UnitPassMode::kKnownZero, masked_by);
    for (size_t i = 0; i < graph.layers.size() && i < r.inputs.size(); ++i)
      if (!r.inputs[i].empty() && graph.layers[i]->channel_flow().kind == ChannelFlow::kProducer)
        out.emplace_back(graph.layers[i]->name(), LayerMode::kActiveInputs);
  }
  return out;
}

void SparsityController::set_device(const Device& device) {
  for (auto& pol : policies_) pol->set_device(device);
  for (auto& q : quantizers_) q->set_device(device);
}

void SparsityController::before_update(float rate) {
  for (auto& pol : policies_) pol->mask_gradients();
  for (auto& q : quantizers_) q->before_update(rate);
}

void SparsityController::after_update() {
  for (auto& pol : policies_) pol->mask_weights();
  for (auto& q : quantizers_) q->after_update();
}

std::vector<std::string> SparsityController::report() const {
  std::vector<std::string> lines = status_lines(), changed;
  for (size_t i = 0; i < lines.size(); ++i)
    if (i >= reported_.size() || lines[i] != reported_[i]) changed.push_back(lines[i]);
  reported_ = std::move(lines);
  return changed;
}

std::vector<std::string> SparsityController::status_lines() const {
  std::vector<std::string> lines;
  for (const auto& pol : policies_) {
    const auto& sp = pol->param();
    float target = sp.has_target_sparsity() ? sp.target_sparsity() : pol->current_target();
    std::string detail = pol->detail();
    lines.push_back(strfmt("    Sparsity %s (%s %s): fired %lld times, sparsity %.2f%% (target %.2f%%)%s%s%s",
                           pol->layer_name().c_str(), pol->type(),
                           SparsityParameter::Granularity_Name(sp.granularity()).c_str(),
                           static_cast<long long>(pol->fired()), 100.0 * pol->sparsity(), 100.0 * target,
                           pol->active() ? "" : pol->fired() ? ", masks released" : ", not pruned yet",
                           detail.empty() ? "" : ", ", detail.c_str()));
  }
  for (const auto& q : quantizers_)
    lines.push_back("    Quantization " + q->layer_name() + ": " + q->describe());
  return lines;
}

std::vector<LayerStats> SparsityController::layer_stats() const {
  std::vector<LayerStats> out;
  auto entry = [&](const std::string& layer) -> LayerStats& {
    for (auto& s : out)
      if (s.layer == layer) return s;
    out.push_back(LayerStats{layer});
    return out.back();
  };
  for (const auto& pol : policies_) entry(pol->layer_name()).sparsity = pol->sparsity();
  for (const auto& q : quantizers_) {
    // k-means: `bits` per code; TTQ: ternary codes (2 bits); full precision until quantized.
    const int bits = q->param().method() == QuantizationParameter::TTQ ? 2 : int(q->param().bits());
    entry(q->layer_name()).bits = q->active() ? bits : 32;
  }
  return out;
}

std::vector<std::string> SparsityController::describe() const {
  std::vector<std::string> lines;
  for (size_t i = 0; i < phases_.size(); ++i) {
    const auto& ph = phases_[i];
    std::string layers;
    for (const auto& l : ph.spec.layer()) layers += (layers.empty() ? "" : ",") + l;
    lines.push_back(strfmt("    phase %zu %s: %s, iterations [%d, %d), lr x%g, sparsity scale %g%s%s%s", i,
                           ph.spec.has_name() ? ph.spec.name().c_str() : "", SchedulePhase::Mode_Name(ph.spec.mode()).c_str(),
                           ph.start, ph.end, ph.spec.lr_mult(), ph.spec.sparsity_scale(),
                           layers.empty() ? ", all policies" : ", layers ", layers.c_str(),
                           sparse_backward_.empty() ? ""
                           : ph.spec.sparse_backward() ? ", structured sparse backward"
                                                       : ", dense backward"));
  }
  for (const auto& pol : policies_) {
    const auto& sp = pol->param();
    lines.push_back(strfmt("    policy %s on layer %s: %s granularity, %s, scope %s", pol->type(), pol->layer_name().c_str(),
                           SparsityParameter::Granularity_Name(sp.granularity()).c_str(),
                           sp.has_quality() ? strfmt("quality %g x std", sp.quality()).c_str()
                                            : strfmt("target %.1f%%", 100.0 * sp.target_sparsity()).c_str(),
                           SparsityParameter::Scope_Name(sp.scope()).c_str()));
  }
  for (const auto& q : quantizers_) {
    const auto& qp = q->param();
    lines.push_back(strfmt("    quantizer %s on layer %s: %s", q->type(), q->layer_name().c_str(),
                           qp.method() == QuantizationParameter::TTQ
                               ? strfmt("threshold %g x max|w|", qp.threshold()).c_str()
                               : strfmt("%u bits, %s init", qp.bits(),
                                        QuantizationParameter::Init_Name(qp.init()).c_str()).c_str()));
  }
  return lines;
}

void SparsityController::save(ModelFile* model) const {
  for (size_t i = 0; i < policies_.size(); ++i) {
    PolicyState* s = model->add_policy();
    policies_[i]->save(s);
    s->add_value(gradual_start_[i]);
  }
  for (const auto& q : quantizers_) q->save(model->add_quantizer());
}

void SparsityController::load(const ModelFile& model, int iter) {
  (void)iter;
  std::map<std::string, const PolicyState*> by_layer;
  for (const auto& s : model.policy()) by_layer[s.layer()] = &s;
  for (size_t i = 0; i < policies_.size(); ++i) {
    auto it = by_layer.find(policies_[i]->layer_name());
    if (it == by_layer.end())
      throw Error("the snapshot holds no sparsity state for layer '" + policies_[i]->layer_name() + "'");
    policies_[i]->load(*it->second);
    gradual_start_[i] = it->second->value_size() > 0 ? it->second->value(0) : 0.0f;
  }
  std::map<std::string, const QuantizerState*> quantizer_by_layer;
  for (const auto& s : model.quantizer()) quantizer_by_layer[s.layer()] = &s;
  for (auto& q : quantizers_) {
    auto it = quantizer_by_layer.find(q->layer_name());
    if (it == quantizer_by_layer.end())
      throw Error("the snapshot holds no quantizer state for layer '" + q->layer_name() + "'");
    q->load(*it->second);
  }
  structure_changed();
}

void SparsityController::structure_changed() {
  apply_structure(net_, policies_);
  for (Net* net : mirrors_) apply_structure(*net, policies_);
}

SparsityController& install_sparsity(Solver& solver) {
  for (const auto& h : solver.hooks())
    if (auto* installed = dynamic_cast<SparsityController*>(h.get())) return *installed;
  auto controller = std::make_unique<SparsityController>(solver.train_net(), solver.param(), solver.samples_per_iter(),
                                                         solver.train_set_size());
  if (solver.test_net()) controller->add_mirror(*solver.test_net());
  if (!controller->empty()) {
    log_info("Sparsity schedule (resolved):");
    for (const auto& line : controller->describe()) log_info(line);
  }
  SparsityController& ref = *controller;
  solver.add_hooks(std::move(controller));
  return ref;
}

}  // namespace dsg
