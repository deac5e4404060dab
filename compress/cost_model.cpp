#include "compress/cost_model.hpp"

namespace dsg::compress {
namespace {

Cost make(int64_t macs, double weight_words, double index_words, double activation_words, int64_t sram_bytes) {
  Cost c;
  c.macs = macs;
  c.weight_words = weight_words;
  c.index_words = index_words;
  c.activation_words = activation_words;
  c.weights_in_dram = (weight_words + index_words) * 4.0 > double(sram_bytes);
  const double weight_pj = c.weights_in_dram ? kDramReadPj : kSramReadPj;
  c.energy_pj = double(macs) * (kFloatMultPj + kFloatAddPj) + (weight_words + index_words) * weight_pj +
                activation_words * kSramReadPj;
  return c;
}

}  // namespace

LayerCost layer_cost(const LayerCostInput& in, int64_t sram_bytes) {
  LayerCost out;
  out.name = in.name;
  const double activations = double(in.activations_in + in.activations_out);
  out.dense = make(in.weights * in.positions, double(in.weights), 0.0, activations, sram_bytes);
  out.compressed = make(in.nonzero_values * in.positions, double(in.stored_values) * in.weight_bits / 32.0,
                        double(in.entries) * in.index_bits / 32.0, activations, sram_bytes);
  return out;
}

Cost total(const std::vector<LayerCost>& layers, bool compressed) {
  Cost t;
  for (const auto& l : layers) {
    const Cost& c = compressed ? l.compressed : l.dense;
    t.macs += c.macs;
    t.weight_words += c.weight_words;
    t.index_words += c.index_words;
    t.activation_words += c.activation_words;
    t.weights_in_dram = t.weights_in_dram || c.weights_in_dram;
    t.energy_pj += c.energy_pj;
  }
  return t;
}

}  // namespace dsg::compress
