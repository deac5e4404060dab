#include "sparsity/quantizer.hpp"

#include <algorithm>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/log.hpp"
#include "runtime/ops.hpp"
#include "sparsity/code_kernels.hpp"

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

void Quantizer::set_device(const Device& device) {
  device_ = device;
  codes_changed();
  device_changed();
}

void Quantizer::codes_changed() {
  if (on_cpu() || codes_.empty()) return;
  device_codes_.resize(codes_.size());
  std::copy(codes_.begin(), codes_.end(), device_codes_.mutable_host());
  const TransferStats before = transfer_stats();
  device_codes_.on(device_);
  log_info(strfmt("    Quantization %s: codes to %s (%llu bytes)", layer_.name().c_str(), device_.name().c_str(),
                  static_cast<unsigned long long>(transfer_stats().to_device_bytes - before.to_device_bytes)));
}

const uint8_t* Quantizer::codes_on_device() const {
  return on_cpu() ? codes_.data() : device_codes_.on(device_);
}

uint8_t* Quantizer::mutable_codes_on_device() {
  if (on_cpu()) return codes_.data();
  device_codes_.resize(codes_.size());
  return device_codes_.mutable_on(device_);
}

const float* Quantizer::table_on_device(const float* table, int size) {
  if (on_cpu()) return table;
  device_table_.resize(size_t(size));
  std::copy(table, table + size, device_table_.mutable_host());
  return device_table_.on(device_);
}

const double* Quantizer::code_sums_on_device(const float* x, int codes) {
  const Device& d = device_;
  const int64_t n = layer_.blobs()[0]->count();
  const int64_t chunk = 4096, chunks = std::max<int64_t>(1, (n + chunk - 1) / chunk);
  code_part_.resize(size_t(chunks * codes));
  code_sums_.resize(size_t(codes));
  double* part = code_part_.mutable_on(d);
  double* sums = code_sums_.mutable_on(d);
  launch(d, chunks, CodeSumChunks{codes_on_device(), x, n, chunk, codes, part}, 1);
  launch(d, codes, CodeSumReduce{part, chunks, codes, sums}, 1);
  return sums;
}

float* Quantizer::device_table(int size) {
  device_table_.resize(size_t(size));
  return device_table_.mutable_on(device_);
}

void Quantizer::write_weights() {
  Tensor& w = *layer_.blobs()[0];
  ops_for(device_).lookup(w.count(), codes_on_device(), table_on_device(codebook_.data(), int(codebook_.size())),
                          int(codebook_.size()), w.mutable_data(device_));
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
    codes_changed();
    write_weights();
  }
}

}  // namespace dsg
