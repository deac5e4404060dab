// Inference cost model for dsgeval's cost section: per layer and per sample, the multiply-
// accumulates, memory references (weights, indices, activations, in 32-bit words) and an energy
// estimate from EIE's 45 nm table (Han et al. 2016, Table I): 32-bit DRAM read 640 pJ, 32-bit
// SRAM read 5 pJ, float multiply 3.7 pJ, float add 0.9 pJ.
//
// Model (stated in every report):
//   dense       every weight is a 32-bit word read once per sample; MACs = weights * positions.
//   compressed  the stored values (non-zero blocks, fillers and block-internal zeros included) are
//               read once per sample at their code width, and one relative index per stored entry
//               (block) at the index width; MACs = stored non-zero values * positions.
//   placement   a layer's weights (+ indices) live in SRAM when they fit in `sram_bytes`, in DRAM
//               otherwise; activations (inputs read once, outputs written once) in SRAM.
// With blocks (one index per kernel row / kernel / filter) the index references shrink: the
// memory-reference saving of coarse-grained sparsity (Mao et al. 2017).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dsg::compress {

constexpr double kDramReadPj = 640.0, kSramReadPj = 5.0, kFloatMultPj = 3.7, kFloatAddPj = 0.9;

struct LayerCostInput {
  std::string name;
  int64_t weights = 0;           // dense weight count
  int64_t positions = 1;         // output positions per sample (Ho*Wo for a convolution, 1 for FC)
  int64_t activations_in = 0, activations_out = 0;  // per sample
  // Compressed form.
  int64_t stored_values = 0;     // values read (entries * block; all weights for a dense blob)
  int64_t nonzero_values = 0;    // of which non-zero (multiplied)
  int64_t entries = 0;           // relative indices read
  double weight_bits = 32, index_bits = 0;
};

struct Cost {
  int64_t macs = 0;
  double weight_words = 0, index_words = 0, activation_words = 0;
  bool weights_in_dram = false;
  double energy_pj = 0;
  double memory_refs() const { return weight_words + index_words + activation_words; }
};

struct LayerCost {
  std::string name;
  Cost dense, compressed;
};

LayerCost layer_cost(const LayerCostInput& in, int64_t sram_bytes);
// The sum over layers (weights_in_dram = any layer's).
Cost total(const std::vector<LayerCost>& layers, bool compressed);

}  // namespace dsg::compress
