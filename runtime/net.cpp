#include "runtime/net.hpp"

#include <chrono>
#include <cstring>
#include <set>

#include "runtime/error.hpp"
#include "runtime/ops.hpp"

namespace dsg {

static bool rule_met(const NetStateRule& rule, const NetState& state) {
  if (rule.has_phase() && rule.phase() != state.phase()) return false;
  if (rule.has_min_level() && state.level() < rule.min_level()) return false;
  if (rule.has_max_level() && state.level() > rule.max_level()) return false;
  std::set<std::string> stages(state.stage().begin(), state.stage().end());
  for (const auto& s : rule.stage())
    if (!stages.count(s)) return false;
  for (const auto& s : rule.not_stage())
    if (stages.count(s)) return false;
  return true;
}

bool layer_included(const LayerParameter& layer, const NetState& state) {
  if (layer.include_size() > 0 && layer.exclude_size() > 0)
    throw Error("layer '" + layer.name() + "' has both include and exclude rules");
  if (layer.has_phase() && layer.phase() != state.phase()) return false;
  if (layer.include_size() > 0) {
    for (const auto& r : layer.include())
      if (rule_met(r, state)) return true;
    return false;
  }
  for (const auto& r : layer.exclude())
    if (rule_met(r, state)) return false;
  return true;
}

NetParameter insert_splits(const NetParameter& param) {
  // A blob "version" is identified by (producer layer, top index); inputs use layer -1.
  using Version = std::pair<int, int>;
  std::map<std::string, Version> latest;
  std::map<Version, int> consumers;
  std::map<std::pair<int, int>, Version> source_of_bottom;
  for (int i = 0; i < param.input_size(); ++i) latest[param.input(i)] = {-1, i};
  for (int i = 0; i < param.layer_size(); ++i) {
    const auto& layer = param.layer(i);
    for (int j = 0; j < layer.bottom_size(); ++j) {
      auto it = latest.find(layer.bottom(j));
      if (it == latest.end()) continue;  // reported by the Net with context
      source_of_bottom[{i, j}] = it->second;
      consumers[it->second]++;
    }
    for (int j = 0; j < layer.top_size(); ++j) latest[layer.top(j)] = {i, j};
  }
  auto split_name = [&](const std::string& blob, const Version& v, int k) {
    std::string producer = v.first < 0 ? std::string("input") : param.layer(v.first).name();
    return blob + "_" + producer + "_" + std::to_string(v.second) + "_split_" + std::to_string(k);
  };
  NetParameter out = param;
  out.clear_layer();
  std::map<Version, int> next_split;
  auto add_split = [&](const std::string& blob, const Version& v) {
    LayerParameter* split = out.add_layer();
    std::string producer = v.first < 0 ? std::string("input") : param.layer(v.first).name();
    split->set_name(blob + "_" + producer + "_" + std::to_string(v.second) + "_split");
    split->set_type("Split");
    split->add_bottom(blob);
    for (int k = 0; k < consumers[v]; ++k) split->add_top(split_name(blob, v, k));
  };
  for (int i = 0; i < param.input_size(); ++i)
    if (consumers[{-1, i}] > 1) add_split(param.input(i), {-1, i});
  for (int i = 0; i < param.layer_size(); ++i) {
    LayerParameter* layer = out.add_layer();
    *layer = param.layer(i);
    for (int j = 0; j < layer->bottom_size(); ++j) {
      auto it = source_of_bottom.find({i, j});
      if (it == source_of_bottom.end() || consumers[it->second] <= 1) continue;
      layer->set_bottom(j, split_name(layer->bottom(j), it->second, next_split[it->second]++));
    }
    for (int j = 0; j < layer->top_size(); ++j)
      if (consumers[{i, j}] > 1) add_split(layer->top(j), {i, j});
  }
  return out;
}

Net::Net(const NetParameter& param, Phase phase, std::mt19937_64& rng, const std::vector<std::string>& locations)
    : name_(param.name()), phase_(phase) {
  build(param, rng, locations);
  build_arena();
  for (size_t i = 0; i < layers_.size(); ++i)
    if (layers_[i]->drops_units()) dynamic_.push_back({i, dynamic_drop_producer(graph_, i)});
  find_double_masks();
}

void Net::propagate_structure() {
  std::vector<std::vector<int>> kept(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) kept[i] = layers_[i]->active_outputs();
  UnitPassResult r = propagate_units(graph_, kept, UnitPassMode::kKnownZero, masked_by_);
  for (size_t i = 0; i < layers_.size(); ++i)
    if (layers_[i]->channel_flow().kind == ChannelFlow::kProducer) layers_[i]->set_active_inputs(std::move(r.inputs[i]));
}

void Net::find_double_masks() {
  masked_by_.assign(layers_.size(), -1);
  shared_selection_.assign(layers_.size(), false);
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!layers_[i]->param().has_dsg_param()) continue;
    const Tensor* t = graph_.tops[i][0];
    int last = -1;
    bool relu = false;
    for (size_t j = i + 1; j < layers_.size(); ++j) {
      bool reads = false;
      for (const Tensor* b : graph_.bottoms[j]) reads = reads || b == t;
      if (!reads) continue;
      const Layer& next = *layers_[j];
      const ChannelFlow flow = next.channel_flow();
      const bool single = graph_.bottoms[j].size() == 1 && graph_.tops[j].size() == 1;
      const bool elementwise = single && flow.kind == ChannelFlow::kElementwise;
      if (!relu) {
        // The activation: a rectifier (ReLU) that keeps the dropped outputs zero.
        if (!elementwise || !flow.rectifier || !flow.zero_preserving)
          throw Error("layer '" + layers_[i]->name() + "': dsg_param needs DSG's CONV/FC -> ReLU (-> BatchNorm -> Scale) " +
                      "order, but its output goes to layer '" + next.name() + "' (" + next.type() + ")");
        relu = true;
      } else if (elementwise && !next.blobs().empty()) {  // per-channel BatchNorm / Scale
        last = int(j);
      } else {
        break;
      }
      t = graph_.tops[j][0];
    }
    if (!relu)
      throw Error("layer '" + layers_[i]->name() + "': dsg_param needs a ReLU after the layer (DSG's CONV/FC -> ReLU -> BN order)");
    if (last >= 0 && layers_[i]->double_mask_output()) {
      masked_by_[size_t(last)] = int(i);
      shared_selection_[i] = layers_[i]->param().dsg_param().selection() == DsgParameter::BATCH_SHARED;
    }
  }
}

void Net::apply_output_mask(size_t layer, bool diff, const Context& ctx) {
  const Layer& source = *layers_[size_t(masked_by_[layer])];
  const std::vector<uint8_t>* mask = source.dynamic_output_mask();
  if (!mask) return;
  Tensor& t = *graph_.tops[layer][0];
  if (int64_t(mask->size()) != t.count())
    throw Error("layer '" + layers_[layer]->name() + "': the DSG mask of '" + source.name() + "' has " +
                std::to_string(mask->size()) + " entries, the top has " + std::to_string(t.count()));
  // The mask in the memory of the device the net runs on (never copied here: a mask kept on the
  // host cannot be applied to device tensors without a transfer per pass).
  const uint8_t* on_device = source.dynamic_output_mask_on(ctx.device);
  if (!on_device)
    throw Error("layer '" + layers_[layer]->name() + "': the DSG double mask of '" + source.name() +
                "' is not available on " + ctx.device.name() + " (that layer keeps its mask on the host)");
  ops_for(ctx.device).apply_mask(t.count(), on_device, diff ? t.mutable_diff(ctx.device) : t.mutable_data(ctx.device));
}

namespace {

// --check-transfers (Context::check_transfers): the transfer counters around one layer's pass.
class TransferWatch {
 public:
  TransferWatch(const Context& ctx, const Layer& layer)
      : on_(ctx.check_transfers && !layer.is_data_layer()) {
    if (on_) before_ = transfer_stats();
  }
  // Throws when anything but single values was copied since construction.
  void check(const Layer& layer, const char* pass) const {
    if (!on_) return;
    const TransferStats now = transfer_stats();
    const uint64_t to_device = now.to_device_count - before_.to_device_count;
    const uint64_t to_host = now.to_host_count - before_.to_host_count;
    if (to_device == 0 && to_host == 0) return;
    throw Error(strfmt("transfer check: layer '%s' (%s) %s copied between host and device: %llu to the device "
                       "(%llu bytes), %llu to the host (%llu bytes)",
                       layer.name().c_str(), layer.type(), pass, static_cast<unsigned long long>(to_device),
                       static_cast<unsigned long long>(now.to_device_bytes - before_.to_device_bytes),
                       static_cast<unsigned long long>(to_host),
                       static_cast<unsigned long long>(now.to_host_bytes - before_.to_host_bytes)),
                "device code must use Tensor::data(ctx.device) / mutable_data(ctx.device) and keep its state "
                "on the device (runtime/device_array.hpp), never the host accessors");
  }

 private:
  bool on_;
  TransferStats before_;
};

}  // namespace

void Net::build(const NetParameter& full, std::mt19937_64& rng, const std::vector<std::string>& locations) {
  NetState state = full.state();
  state.set_phase(phase_);
  // Filter, remembering original indices for error locations.
  NetParameter filtered = full;
  filtered.clear_layer();
  std::vector<std::string> where;
  for (int i = 0; i < full.layer_size(); ++i) {
    if (!layer_included(full.layer(i), state)) continue;
    LayerParameter* kept = filtered.add_layer();
    *kept = full.layer(i);
    kept->set_phase(phase_);  // as in Caffe, a layer learns its net's phase from its parameter
    where.push_back(i < int(locations.size()) && !locations[i].empty() ? locations[i] + ": " : "");
  }
  if (filtered.input_size() > 0) throw Error("net '" + name_ + "': net-level inputs are not supported; use an Input layer");
  NetParameter param = insert_splits(filtered);

  std::set<std::string> names;
  size_t original = 0;  // index into `where`, advanced on non-split layers
  std::map<std::string, bool> blob_needs_backward;
  std::set<std::string> consumed;
  std::vector<std::string> created;
  for (int i = 0; i < param.layer_size(); ++i) {
    const LayerParameter& lp = param.layer(i);
    // insert_splits keeps the original layers in order and only adds Splits between them.
    bool is_split = int(original) >= filtered.layer_size() || filtered.layer(int(original)).name() != lp.name();
    std::string loc = is_split ? "" : (original < where.size() ? where[original] : "");
    if (!is_split) ++original;
    try {
      if (!names.insert(lp.name()).second) throw Error("duplicate layer name '" + lp.name() + "'");
      auto layer = create_layer(lp);
      TensorVec bottom, top;
      bool any_bottom_needs_backward = false;
      std::vector<bool> bottom_needs;
      for (const auto& b : lp.bottom()) {
        auto it = blobs_.find(b);
        if (it == blobs_.end())
          throw Error("layer '" + lp.name() + "': unknown bottom blob '" + b + "' (no earlier layer produces it in the " +
                      (phase_ == TRAIN ? "TRAIN" : "TEST") + " net)");
        bottom.push_back(it->second.get());
        consumed.insert(b);
        bottom_needs.push_back(blob_needs_backward[b]);
        any_bottom_needs_backward = any_bottom_needs_backward || blob_needs_backward[b];
      }
      for (int j = 0; j < lp.top_size(); ++j) {
        const std::string& t = lp.top(j);
        bool in_place = j < lp.bottom_size() && lp.bottom(j) == t;
        if (in_place) {
          if (!layer->allows_in_place())
            throw Error("layer '" + lp.name() + "' (" + lp.type() + ") cannot run in place (top '" + t + "' = bottom)");
          top.push_back(blobs_[t].get());
          continue;
        }
        for (const auto& b : lp.bottom())
          if (b == t) throw Error("layer '" + lp.name() + "': top '" + t + "' repeats a bottom at another position");
        if (blobs_.count(t)) throw Error("layer '" + lp.name() + "': top blob '" + t + "' is produced twice");
        blobs_[t] = std::make_shared<Tensor>();
        created.push_back(t);
        top.push_back(blobs_[t].get());
      }
      layer->setup(bottom, top, rng);
      // Backward is needed where a parameter learns or an input needs gradients.
      bool learns = false;
      for (size_t p = 0; p < layer->blobs().size(); ++p) learns = learns || layer->param_propagate_down(int(p));
      bool needs = !layer->is_data_layer() && (learns || any_bottom_needs_backward);
      std::vector<bool> propagate(bottom.size(), false);
      for (size_t b = 0; b < bottom.size(); ++b)
        propagate[b] = needs && bottom_needs[b] && layer->allow_backward_to(int(b)) &&
                       !(int(b) < lp.propagate_down_size() && !lp.propagate_down(int(b)));
      for (const auto& t : lp.top()) blob_needs_backward[t] = needs;
      layer_needs_backward_.push_back(needs);
      propagate_down_.push_back(propagate);
      graph_.layers.push_back(layer.get());
      graph_.bottoms.push_back(bottom);
      graph_.tops.push_back(top);
      layers_.push_back(std::move(layer));
    } catch (const Error& e) {
      throw Error(loc + e.what(), e.hint());
    }
  }
  for (const auto& t : created)
    if (!consumed.count(t)) outputs_.push_back(t);
}

void Net::build_arena() {
  size_t total = 0;
  for (auto& layer : layers_)
    for (auto& b : layer->blobs()) total += size_t(b->count());
  arena_size_ = total;
  arena_data_ = std::make_shared<Storage>(total);
  arena_diff_ = std::make_shared<Storage>(total);
  size_t offset = 0;
  for (auto& layer : layers_) {
    const LayerParameter& lp = layer->param();
    for (size_t i = 0; i < layer->blobs().size(); ++i) {
      Tensor& t = *layer->blobs()[i];
      std::memcpy(arena_data_->data() + offset, t.data(), sizeof(float) * t.count());
      t.bind(arena_data_, offset, arena_diff_, offset);
      offset += size_t(t.count());
      if (!layer->blob_is_learnable(int(i))) {
        state_.push_back(&t);
        continue;
      }
      float lr = 1, decay = 1;
      if (int(i) < lp.param_size()) {
        lr = lp.param(int(i)).lr_mult();
        decay = lp.param(int(i)).decay_mult();
        if (lp.param(int(i)).has_name())
          throw Error("layer '" + lp.name() + "': named parameter sharing (param { name }) is not supported");
      }
      learnable_.push_back({&t, lp.name(), int(i), lr, decay});
    }
  }
}

void Net::update_dynamic_structure(const Context& ctx) {
  bool changed = false;
  for (const auto& d : dynamic_) {
    Layer& layer = *layers_[d.layer];
    if (!layer.sample_dynamic_structure(ctx)) continue;
    changed = true;
    if (d.producer >= 0) layers_[size_t(d.producer)]->set_active_outputs(layer.dynamic_kept());
  }
  if (changed) propagate_structure();
}

float Net::forward(const Context& ctx) {
  if (!dynamic_.empty()) update_dynamic_structure(ctx);
  float loss = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto begin = profiling_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    const TransferWatch watch(ctx, *layers_[i]);
    loss += layers_[i]->forward(graph_.bottoms[i], graph_.tops[i], ctx);
    if (masked_by_[i] >= 0) apply_output_mask(i, false, ctx);
    watch.check(*layers_[i], "forward");
    if (profiling_) {
      times_[i].forward_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      ++times_[i].forwards;
    }
    // A batch-shared DSG selection changed this layer's computed channels: with the double mask
    // they are zero after the BatchNorm / Scale too, so the next layers skip them.
    if (shared_selection_[i] && layers_[i]->dynamic_output_mask()) propagate_structure();
  }
  return loss;
}

void Net::backward(const Context& ctx) {
  const DeviceOps& ops = ops_for(ctx.device);
  for (size_t i = layers_.size(); i-- > 0;) {
    Layer& layer = *layers_[i];
    for (size_t t = 0; t < graph_.tops[i].size(); ++t) {
      float w = layer.loss_weight(int(t));
      if (w == 0) continue;
      ops.fill(graph_.tops[i][t]->count(), w, graph_.tops[i][t]->mutable_diff(ctx.device));
    }
    if (!layer_needs_backward_[i]) continue;
    const auto begin = profiling_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    const TransferWatch watch(ctx, layer);
    if (masked_by_[i] >= 0) apply_output_mask(i, true, ctx);
    layer.backward(graph_.tops[i], propagate_down_[i], graph_.bottoms[i], ctx);
    watch.check(layer, "backward");
    if (profiling_) {
      times_[i].backward_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      ++times_[i].backwards;
    }
  }
}

float* Net::arena_diff(const Device& device) {
  if (!arena_diff_) return nullptr;
  return device.type == DeviceType::CPU ? arena_diff_->mutable_host() : arena_diff_->mutable_device(device.index);
}

void Net::to_device(const Device& device) {
  if (device.type == DeviceType::CPU || !arena_data_) return;
  arena_data_->device(device.index);
  arena_diff_->device(device.index);
}

void Net::zero_param_diffs(const Device& device) {
  if (arena_size_) ops_for(device).fill(int64_t(arena_size_), 0.0f, arena_diff(device));
}

void Net::share_params_from(const Net& other) {
  for (auto& layer : layers_) {
    if (layer->blobs().empty()) continue;
    Layer* source = other.layer_by_name(layer->name());
    if (!source)
      throw Error("layer '" + layer->name() + "' has parameters in the " + (phase_ == TRAIN ? "TRAIN" : "TEST") +
                  " net but no layer of that name exists in the other net");
    if (source->blobs().size() != layer->blobs().size())
      throw Error("layer '" + layer->name() + "': parameter count differs between TRAIN and TEST nets");
    for (size_t i = 0; i < layer->blobs().size(); ++i) {
      Tensor& mine = *layer->blobs()[i];
      const Tensor& theirs = *source->blobs()[i];
      if (mine.shape() != theirs.shape())
        throw Error("layer '" + layer->name() + "': parameter " + std::to_string(i) + " has shape " +
                    mine.shape_string() + " here but " + theirs.shape_string() + " in the other net");
      mine.share_data(theirs);
      mine.share_diff(theirs);
    }
  }
}

Tensor& Net::blob(const std::string& name) const {
  auto it = blobs_.find(name);
  if (it == blobs_.end()) throw Error("net '" + name_ + "' has no blob '" + name + "'");
  return *it->second;
}

Layer* Net::layer_by_name(const std::string& name) const {
  for (auto& l : layers_)
    if (l->name() == name) return l.get();
  return nullptr;
}

void Net::params_to_proto(ModelFile* model) const {
  for (auto& layer : layers_) {
    for (size_t i = 0; i < layer->blobs().size(); ++i) {
      ParamBlob* pb = model->add_param();
      pb->set_layer(layer->name());
      pb->set_index(int(i));
      layer->blobs()[i]->to_proto(pb->mutable_blob());
    }
  }
}

void Net::params_from_proto(const ModelFile& model) {
  std::map<std::pair<std::string, int>, const BlobProto*> stored;
  for (const auto& pb : model.param()) stored[{pb.layer(), pb.index()}] = &pb.blob();
  for (auto& layer : layers_) {
    for (size_t i = 0; i < layer->blobs().size(); ++i) {
      auto it = stored.find({layer->name(), int(i)});
      if (it == stored.end())
        throw Error("model file has no parameter " + std::to_string(i) + " for layer '" + layer->name() + "'");
      try {
        layer->blobs()[i]->from_proto(*it->second, /*reshape=*/false);
      } catch (const Error& e) {
        throw Error("layer '" + layer->name() + "' parameter " + std::to_string(i) + ": " + e.what());
      }
    }
  }
}

void check_device_support(const Net& net, const Context& ctx,
                          const std::vector<std::pair<std::string, LayerMode>>& planned) {
  const DeviceType kind = ctx.runs_device_code() ? DeviceType::CUDA : DeviceType::CPU;
  const std::string device =
      ctx.device_code_on_host ? std::string("cuda (device code on the host)") : ctx.device.name();
  for (const auto& layer : net.layers()) {
    std::vector<LayerMode> modes = layer->modes_in_use();
    for (const auto& p : planned)
      if (p.first == layer->name()) modes.push_back(p.second);
    for (LayerMode mode : modes)
      if (!layer->supports(kind, mode))
        throw Error("layer '" + layer->name() + "' (" + layer->type() + ") of the " +
                        (net.phase() == TRAIN ? "TRAIN" : "TEST") + " net has no " +
                        (mode == LayerMode::kDense ? std::string("") : std::string(layer_mode_name(mode)) + " ") +
                        "implementation for device " + device,
                    "run with --device cpu");
  }
}

}  // namespace dsg
