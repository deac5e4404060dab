#include "sparsity/quantizer.hpp"

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/ops.hpp"

namespace dsg {

Quantizer::Quantizer(const QuantizationParameter& param, Layer& layer) : param_(param), layer_(layer) {}

const std::string& Quantizer::layer_name() const { return layer_.name(); }

std::string quantizer_name(QuantizationParameter::Method method) {
  return method == QuantizationParameter::TTQ ? "ttq" : "kmeans";
}

void Quantizer::validate() const {
  if (layer_.blobs().empty())
    throw Error("layer '" + layer_.name() + "' quant_param: layer type " + layer_.type() + " has no weights to quantize");
  if (param_.index_bits() > 16)
    throw Error("layer '" + layer_.name() + strfmt("' quant_param: index_bits must be 0 (automatic) to 16, got %u",
                                                   param_.index_bits()));
}

void Quantizer::write_weights() {
  Tensor& w = *layer_.blobs()[0];
  cpu_ops().lookup(w.count(), codes_.data(), codebook_.data(), int(codebook_.size()), w.mutable_data());
}

void Quantizer::save(QuantizerState* state) const {
  state->set_layer(layer_.name());
  state->set_method(param_.method());
  state->set_bits(param_.bits());
  state->set_active(active_);
  for (float c : codebook_) state->add_codebook(c);
  state->set_codes(std::string(codes_.begin(), codes_.end()));
}

void Quantizer::load(const QuantizerState& state) {
  if (state.method() != param_.method())
    throw Error("the snapshot quantized layer '" + layer_.name() + "' with " + quantizer_name(state.method()) +
                " but the config says " + quantizer_name(param_.method()));
  active_ = state.active();
  codebook_.assign(state.codebook().begin(), state.codebook().end());
  codes_.assign(state.codes().begin(), state.codes().end());
  if (active_) {
    if (int64_t(codes_.size()) != layer_.blobs()[0]->count())
      throw Error("the snapshot's quantizer codes for layer '" + layer_.name() + "' do not match its weight count");
    for (uint8_t c : codes_)
      if (c >= codebook_.size()) throw Error("the snapshot's quantizer codes for layer '" + layer_.name() + "' are corrupt");
    write_weights();
  }
}

}  // namespace dsg
