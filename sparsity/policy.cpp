#include "sparsity/policy.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/log.hpp"
#include "runtime/ops.hpp"

namespace dsg {
namespace {

// Config loading (runtime/config.hpp) checks every sparsity_param's policy name and target with
// file:line:col, before any net is built.
void check_sparsity_params(const SolverParameter& s, const ConfigLocations& where) {
  for (int i = 0; i < s.net_param().layer_size(); ++i) {
    const LayerParameter& layer = s.net_param().layer(i);
    if (!layer.has_sparsity_param()) continue;
    const std::string at = (i < int(where.layer.size()) ? where.layer[size_t(i)] : std::string("net")) + ": layer '" +
                           layer.name() + "': ";
    const SparsityParameter& sp = layer.sparsity_param();
    if (!sp.has_policy()) throw Error(at + "sparsity_param has no policy; known: " + policy_registry().known_list());
    if (!policy_registry().has(sp.policy()))
      throw Error(at + "unknown sparsity policy '" + sp.policy() + "'; known: " + policy_registry().known_list());
    if (sp.has_target_sparsity() && !(sp.target_sparsity() >= 0 && sp.target_sparsity() < 1))
      throw Error(at + strfmt("target_sparsity must be in [0, 1), got %g", sp.target_sparsity()));
  }
}

const bool sparsity_check_registered = (register_config_check(check_sparsity_params), true);

}  // namespace

SparsityPolicy::SparsityPolicy(const SparsityParameter& param, Layer& layer) : param_(param), layer_(layer) {}

const std::string& SparsityPolicy::layer_name() const { return layer_.name(); }

void SparsityPolicy::validate() const {
  const std::string where = "layer '" + layer_.name() + "' sparsity_param: ";
  if (layer_.weight_blobs().empty())
    throw Error(where + "layer type " + layer_.type() + " has no prunable weights (granularity " +
                SparsityParameter::Granularity_Name(param_.granularity()) + " needs a weight layer)");
  if (param_.has_target_sparsity() == param_.has_quality())
    throw Error(where + "give exactly one of target_sparsity and quality");
  if (param_.has_target_sparsity() && !(param_.target_sparsity() >= 0 && param_.target_sparsity() < 1))
    throw Error(where + strfmt("target_sparsity must be in [0, 1), got %g", param_.target_sparsity()));
  if (param_.has_quality() && !(param_.quality() > 0))
    throw Error(where + strfmt("quality must be > 0, got %g", param_.quality()));
  if (param_.has_quality() && param_.granularity() != SparsityParameter::FINE)
    throw Error(where + "quality (threshold = quality * std) applies to FINE granularity only");
  if (!(param_.max_sparsity() > 0 && param_.max_sparsity() < 1))
    throw Error(where + strfmt("max_sparsity must be in (0, 1), got %g", param_.max_sparsity()));
  if (param_.scope() == SparsityParameter::GLOBAL && param_.granularity() != SparsityParameter::FINE)
    throw Error(where + "GLOBAL scope ranks single weights; use granularity FINE");
  auto g = param_.granularity();
  const std::vector<int> wb = layer_.weight_blobs();
  if (wb.size() > 1 && g != SparsityParameter::FINE)
    throw Error(where + "granularity " + SparsityParameter::Granularity_Name(g) + " is not supported on " +
                layer_.type() +
                strfmt(", whose %zu weight blobs are pruned as one mask; use granularity FINE", wb.size()));
  int axes = layer_.blobs()[0]->num_axes();
  if ((g == SparsityParameter::VECTOR || g == SparsityParameter::KERNEL) && axes != 4)
    throw Error(where + "granularity " + SparsityParameter::Granularity_Name(g) + " needs a 4-d convolution weight, but " +
                layer_.type() + " weights have shape " + layer_.blobs()[0]->shape_string());
}

float SparsityPolicy::resolve_target(float scale) const {
  if (!param_.has_quality()) return std::min(param_.target_sparsity() * scale, 0.9999f);
  const std::vector<float> d = weight_values();
  const double n = double(d.size());
  double sum = 0, sumsq = 0;
  for (float v : d) sum += v, sumsq += double(v) * v;
  double mean = sum / n;
  double std = std::sqrt(std::max(0.0, sumsq / n - mean * mean));
  double threshold = param_.quality() * scale * std;
  int64_t below = 0;
  for (float v : d) below += std::fabs(v) < threshold;
  return float(double(below) / n);
}

void SparsityPolicy::set_device(const Device& device) {
  device_ = device;
  masks_changed();
}

void SparsityPolicy::masks_changed() {
  if (device_.type == DeviceType::CPU) return;
  const TransferStats before = transfer_stats();
  if (!mask_.empty()) {
    device_mask_.resize(mask_.size());
    std::copy(mask_.begin(), mask_.end(), device_mask_.mutable_host());
    device_mask_.on(device_);
  }
  if (!bias_mask_.empty()) {
    device_bias_mask_.resize(bias_mask_.size());
    std::copy(bias_mask_.begin(), bias_mask_.end(), device_bias_mask_.mutable_host());
    device_bias_mask_.on(device_);
  }
  const TransferStats after = transfer_stats();
  if (after.to_device_bytes != before.to_device_bytes)
    log_info(strfmt("    Sparsity %s: masks to %s (%llu bytes)", layer_.name().c_str(), device_.name().c_str(),
                    static_cast<unsigned long long>(after.to_device_bytes - before.to_device_bytes)));
}

const uint8_t* SparsityPolicy::mask_on_device() const {
  return device_.type == DeviceType::CPU ? mask_.data() : device_mask_.on(device_);
}

const uint8_t* SparsityPolicy::bias_mask_on_device() const {
  return device_.type == DeviceType::CPU ? bias_mask_.data() : device_bias_mask_.on(device_);
}

void SparsityPolicy::prune_to(float sparsity) {
  std::vector<uint8_t> mask;
  const TransferStats before = transfer_stats();
  compute_mask(sparsity, mask);
  const TransferStats after = transfer_stats();
  if (after.to_host_bytes != before.to_host_bytes)
    log_info(strfmt("    Sparsity %s: weights read to the host for the prune decision (%llu bytes)",
                    layer_.name().c_str(), static_cast<unsigned long long>(after.to_host_bytes - before.to_host_bytes)));
  if (mask.size() != size_t(weight_count()))
    throw Error("sparsity policy " + std::string(type()) + " produced a mask of the wrong size for layer '" +
                layer_.name() + "'");
  mask_ = std::move(mask);
  derive_kept_outputs();
  masks_changed();
  active_ = true;
  ++fired_;
  current_target_ = sparsity;
  mask_weights();
}

void SparsityPolicy::derive_kept_outputs() {
  kept_outputs_.clear();
  bias_mask_.clear();
  if (!prunes_outputs()) return;
  const Tensor& w = *layer_.blobs()[0];
  int64_t rows = w.shape(0), per_row = w.count() / std::max<int64_t>(1, rows);
  for (int64_t r = 0; r < rows; ++r)
    if (std::any_of(mask_.begin() + r * per_row, mask_.begin() + (r + 1) * per_row, [](uint8_t m) { return m; }))
      kept_outputs_.push_back(int(r));
  if (layer_.blobs().size() > 1) {
    bias_mask_.assign(size_t(layer_.blobs()[1]->count()), 0);
    for (int r : kept_outputs_) bias_mask_[size_t(r)] = 1;
  }
}

std::vector<Tensor*> SparsityPolicy::weight_tensors() const {
  std::vector<Tensor*> out;
  for (int b : layer_.weight_blobs()) out.push_back(layer_.blobs()[size_t(b)].get());
  return out;
}

int64_t SparsityPolicy::weight_count() const {
  int64_t n = 0;
  for (const Tensor* w : weight_tensors()) n += w->count();
  return n;
}

std::vector<float> SparsityPolicy::weight_values() const {
  std::vector<float> out;
  out.reserve(size_t(weight_count()));
  for (const Tensor* w : weight_tensors()) out.insert(out.end(), w->data(), w->data() + w->count());
  return out;
}

void SparsityPolicy::mask_gradients() {
  if (!active_) return;
  const DeviceOps& ops = ops_for(device_);
  const uint8_t* mask = mask_on_device();
  size_t off = 0;
  for (Tensor* w : weight_tensors()) {
    ops.apply_mask(w->count(), mask + off, w->mutable_diff(device_));
    off += size_t(w->count());
  }
  if (!bias_mask_.empty())
    ops.apply_mask(int64_t(bias_mask_.size()), bias_mask_on_device(), layer_.blobs()[1]->mutable_diff(device_));
}

void SparsityPolicy::mask_weights() {
  if (!active_) return;
  const DeviceOps& ops = ops_for(device_);
  const uint8_t* mask = mask_on_device();
  size_t off = 0;
  for (Tensor* w : weight_tensors()) {
    ops.apply_mask(w->count(), mask + off, w->mutable_data(device_));
    off += size_t(w->count());
  }
  if (!bias_mask_.empty())
    ops.apply_mask(int64_t(bias_mask_.size()), bias_mask_on_device(), layer_.blobs()[1]->mutable_data(device_));
}

void SparsityPolicy::release() {
  active_ = false;
  kept_outputs_.clear();
  bias_mask_.clear();
  current_target_ = 0;
}

double SparsityPolicy::sparsity() const {
  int64_t zeros = 0, n = 0;
  for (const Tensor* w : weight_tensors()) {
    const float* d = w->data();
    for (int64_t i = 0; i < w->count(); ++i) zeros += d[i] == 0.0f;
    n += w->count();
  }
  return n ? double(zeros) / double(n) : 0.0;
}

std::vector<float> SparsityPolicy::saliency() const {
  std::vector<float> s = weight_values();
  for (float& v : s) v = std::fabs(v);
  return s;
}

void SparsityPolicy::save(PolicyState* state) const {
  state->set_layer(layer_.name());
  state->set_policy(type());
  state->set_fired(fired_);
  state->set_current_target(current_target_);
  state->set_active(active_);
  if (!mask_.empty()) {
    std::string bits((mask_.size() + 7) / 8, '\0');
    for (size_t i = 0; i < mask_.size(); ++i)
      if (mask_[i]) bits[i / 8] = char(uint8_t(bits[i / 8]) | (1u << (i % 8)));
    state->add_mask(bits);
  }
}

void SparsityPolicy::load(const PolicyState& state) {
  if (state.policy() != type())
    throw Error("layer '" + layer_.name() + "': snapshot holds a '" + state.policy() + "' policy state but the config uses '" +
                type() + "'");
  fired_ = state.fired();
  current_target_ = state.current_target();
  active_ = state.active();
  mask_.clear();
  if (state.mask_size() > 0) {
    size_t n = size_t(weight_count());
    const std::string& bits = state.mask(0);
    if (bits.size() != (n + 7) / 8) {
      std::string shapes;
      for (const Tensor* w : weight_tensors()) shapes += (shapes.empty() ? "" : " + ") + w->shape_string();
      throw Error("layer '" + layer_.name() + "': snapshot mask has the wrong size for weights " + shapes);
    }
    mask_.resize(n);
    for (size_t i = 0; i < n; ++i) mask_[i] = (uint8_t(bits[i / 8]) >> (i % 8)) & 1u;
  } else if (active_) {
    throw Error("layer '" + layer_.name() + "': snapshot marks the policy active but holds no mask");
  }
  if (active_) {
    derive_kept_outputs();
  } else {
    kept_outputs_.clear();
    bias_mask_.clear();
  }
  masks_changed();
}

std::vector<uint8_t> keep_top(const std::vector<float>& scores, size_t keep) {
  std::vector<uint8_t> mask(scores.size(), 0);
  if (keep >= scores.size()) {
    std::fill(mask.begin(), mask.end(), 1);
    return mask;
  }
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::nth_element(order.begin(), order.begin() + long(keep), order.end(), [&](size_t a, size_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  for (size_t i = 0; i < keep; ++i) mask[order[i]] = 1;
  return mask;
}

std::vector<int> stored_kept_outputs(const PolicyState& state, const Layer& layer) {
  const Tensor& w = *layer.blobs()[0];
  const std::string& bits = state.mask(0);
  if (bits.size() != size_t((w.count() + 7) / 8))
    throw Error("layer '" + layer.name() + "': snapshot mask has the wrong size for weights " + w.shape_string());
  const int64_t rows = w.shape(0), per = w.count() / std::max<int64_t>(1, rows);
  std::vector<int> kept;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = r * per; i < (r + 1) * per; ++i)
      if ((uint8_t(bits[size_t(i / 8)]) >> (i % 8)) & 1u) {
        kept.push_back(int(r));
        break;
      }
  return kept;
}

}  // namespace dsg
