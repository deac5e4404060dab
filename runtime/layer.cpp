#include "runtime/layer.hpp"

#include "runtime/error.hpp"
#include "runtime/ops.hpp"
#include "runtime/rng.hpp"

namespace dsg {

Layer::Layer(const LayerParameter& param) : param_(param), key_(name_key(param.name().c_str())) {}

std::string Layer::where() const { return "layer '" + name() + "' (" + type() + "): "; }

void Layer::check_arity(const TensorVec& bottom, const TensorVec& top) const {
  auto check = [&](const char* what, int n, int exact, int lo, int hi) {
    if (exact >= 0 && n != exact)
      throw Error(where() + strfmt("needs exactly %d %s, got %d", exact, what, n));
    if (lo >= 0 && n < lo) throw Error(where() + strfmt("needs at least %d %s, got %d", lo, what, n));
    if (hi >= 0 && n > hi) throw Error(where() + strfmt("takes at most %d %s, got %d", hi, what, n));
  };
  check("bottom(s)", int(bottom.size()), exact_num_bottoms(), min_num_bottoms(), max_num_bottoms());
  check("top(s)", int(top.size()), exact_num_tops(), min_num_tops(), max_num_tops());
}

const char* layer_mode_name(LayerMode mode) {
  static const char* const names[] = {"dense", "active outputs (structured sparsity)", "active inputs (known-zero inputs)",
                                      "weight operator (compressed weights)", "fixed point", "sparse backward",
                                      "dynamic selection"};
  static_assert(sizeof(names) / sizeof(names[0]) == size_t(LayerMode::kDynamicSelection) + 1,
                "one name per LayerMode");
  return names[size_t(mode)];
}

uint32_t Layer::mode_bits() const {
  auto bit = [](LayerMode m) { return uint32_t(1) << unsigned(m); };
  uint32_t bits = bit(LayerMode::kDense);
  if (!active_outputs_.empty()) bits |= bit(LayerMode::kActiveOutputs);
  if (!active_inputs_.empty()) bits |= bit(LayerMode::kActiveInputs);
  if (weight_operator_) bits |= bit(LayerMode::kWeightOperator);
  if (param_.has_fixed_point_param()) bits |= bit(LayerMode::kFixedPoint);
  if (param_.has_structured_backward_param()) bits |= bit(LayerMode::kSparseBackward);
  if (param_.has_dsg_param() || param_.has_approx_dropout_param() || drops_units())
    bits |= bit(LayerMode::kDynamicSelection);
  return bits;
}

std::vector<LayerMode> Layer::modes_in_use() const {
  std::vector<LayerMode> modes;
  const uint32_t bits = mode_bits();
  for (unsigned m = 0; m <= unsigned(LayerMode::kDynamicSelection); ++m)
    if (bits >> m & 1u) modes.push_back(LayerMode(m));
  return modes;
}

// Runs before every forward and backward, so it does not allocate.
void Layer::check_device(const Context& ctx) const {
  if (ctx.device.type == DeviceType::CUDA && !cuda_built() && !device_simulated())
    throw Error(where() + "was asked to run on " + ctx.device.name() + ", but this build has no CUDA backend",
                "configure on a machine with the CUDA toolkit (nvcc), or use device cpu");
  const DeviceType kind = ctx.runs_device_code() ? DeviceType::CUDA : DeviceType::CPU;
  const uint32_t bits = mode_bits();
  for (unsigned m = 0; m <= unsigned(LayerMode::kDynamicSelection); ++m) {
    const LayerMode mode = LayerMode(m);
    if ((bits >> m & 1u) && !supports(kind, mode))
      throw Error(where() + "has no " + (mode == LayerMode::kDense ? std::string("") : std::string(layer_mode_name(mode)) + " ") +
                  "implementation for device " +
                  (ctx.device_code_on_host ? std::string("cuda (device code on the host)") : ctx.device.name()));
  }
}

void Layer::set_num_outputs(LayerParameter& param, int outputs) const {
  (void)param;
  throw Error(where() + strfmt("cannot be resized to %d outputs (its weight rows are not its output units)", outputs));
}

std::string Layer::blob_name(int blob_index) const { return strfmt("blob %d", blob_index); }

void Layer::setup(const TensorVec& bottom, const TensorVec& top, std::mt19937_64& rng) {
  check_arity(bottom, top);
  if (param_.has_fixed_point_param() && !supports(DeviceType::CPU, LayerMode::kFixedPoint))
    throw Error(where() + "fixed_point_param is not supported by layer type " + type() +
                " (only LSTM simulates fixed point)");
  loss_weights_.assign(top.size(), 0.0f);
  for (size_t i = 0; i < top.size(); ++i)
    loss_weights_[i] = int(i) < param_.loss_weight_size() ? param_.loss_weight(int(i)) : default_loss_weight(int(i));
  layer_setup(bottom, top, rng);
  param_propagate_down_.assign(blobs_.size(), true);
  for (size_t i = 0; i < blobs_.size(); ++i) {
    bool learnable = blob_is_learnable(int(i));
    if (int(i) < param_.param_size()) learnable = learnable && param_.param(int(i)).lr_mult() != 0.0f;
    param_propagate_down_[i] = learnable;
  }
  reshape(bottom, top);
}

float Layer::forward(const TensorVec& bottom, const TensorVec& top, const Context& ctx) {
  check_device(ctx);
  reshape(bottom, top);
  if (ctx.runs_device_code()) forward_cuda(bottom, top, ctx);
  else forward_cpu(bottom, top, ctx);
  float loss = 0;
  for (size_t i = 0; i < top.size(); ++i) {
    if (loss_weights_[i] == 0.0f) continue;
    const double s = ops_for(ctx.device).sum(top[i]->count(), top[i]->data(ctx.device));
    loss += loss_weights_[i] * static_cast<float>(s);
  }
  return loss;
}

void Layer::backward(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) {
  check_device(ctx);
  if (ctx.runs_device_code()) backward_cuda(top, propagate_down, bottom, ctx);
  else backward_cpu(top, propagate_down, bottom, ctx);
}

void Layer::forward_cuda(const TensorVec&, const TensorVec&, const Context& ctx) {
  throw Error(where() + "has no CUDA kernel (forward on " + ctx.device.name() + ")");
}

void Layer::backward_cuda(const TensorVec&, const std::vector<bool>&, const TensorVec&, const Context& ctx) {
  throw Error(where() + "has no CUDA kernel (backward on " + ctx.device.name() + ")");
}

void Layer::set_param_propagate_down(int i, bool value) {
  if (i >= int(param_propagate_down_.size())) param_propagate_down_.resize(i + 1, true);
  param_propagate_down_[i] = value;
}

float Layer::loss_weight(int top_index) const {
  return top_index < int(loss_weights_.size()) ? loss_weights_[top_index] : 0.0f;
}

void Layer::set_loss_weight(int top_index, float weight) {
  if (top_index >= int(loss_weights_.size())) loss_weights_.resize(top_index + 1, 0.0f);
  loss_weights_[top_index] = weight;
}

std::unique_ptr<Layer> create_layer(const LayerParameter& param) {
  try {
    return layer_registry().create(param.type(), param);
  } catch (const Error& e) {
    throw Error("layer '" + param.name() + "': " + e.what(), e.hint());
  }
}

}  // namespace dsg
