// DgcExchange: Deep Gradient Compression (Lin et al., ICLR 2018) as a GradientExchange
// (runtime/gradient_exchange.hpp), configured by the solver's gradient_exchange { method: DGC }.
//
// Per iteration and rank, for every learnable tensor (n values):
//   g  = this rank's gradient (+ weight decay, after local clipping, with momentum correction)
//   u  = m u + g;  v = v + u       (momentum correction; without it: v = v + g)
//   send the k = max(1, round(n (1 - s))) entries of v with the largest magnitude as (index, value)
//   pairs; clear v and u there (error feedback keeps the rest; factor masking clears u)
// The pairs of all ranks are allgathered and summed in rank order (identical bits everywhere), then
// divided by the rank count; the Solver steps w -= lr * lr_mult * that (applies_momentum()).
// s warms up exponentially: 1 - 0.25^(stage + 1) in four equal stages over warmup_iter iterations
// (75%, 93.75%, 98.4%, 99.6%), capped at `sparsity`. Local clipping uses clip_norm (or the solver's
// clip_gradients) divided by sqrt(ranks), as in the paper.
//
// Tensors with fewer than dense_below entries are sent whole (values only, no indices) every
// iteration: their velocity u, which is kept (momentum SGD), since masking it at every send would
// cancel momentum; the byte count says so.
//
// Runs on the CPU (the selection walks host memory); a CUDA run is refused by name.
#pragma once
#include <cstdint>
#include <vector>

#include "dsg.pb.h"
#include "runtime/communicator.hpp"
#include "runtime/gradient_exchange.hpp"
#include "runtime/net.hpp"

namespace dsg {

class DgcExchange final : public GradientExchange {
 public:
  DgcExchange(Net& net, Communicator& comm, const SolverParameter& solver, const Device& device);
  std::string describe() const override;
  void exchange(int iter, const Device& device) override;
  bool applies_momentum() const override { return momentum_correction_; }
  uint64_t last_bytes() const override { return last_bytes_; }
  uint64_t dense_bytes() const override { return uint64_t(net_.arena_size()) * sizeof(float); }
  std::vector<std::string> report() const override;
  void save(ModelFile* model) const override;
  void load(const ModelFile& model) override;

  // The sparsity used at iteration `iter` (warm-up included).
  float sparsity_at(int iter) const;
  // Entries of a tensor of n values sent at sparsity s (n when the tensor is sent whole).
  int64_t kept_entries(int64_t n, float s) const;
  // Whether a tensor of n values is sent whole.
  bool sent_whole(int64_t n) const { return n < int64_t(param_.dense_below()); }

 private:
  // The k-th largest |v[i]| (exact), through a sampled estimate of the threshold.
  float kth_largest_magnitude(const float* v, int64_t n, int64_t k);
  struct Slot {  // one learnable tensor
    Tensor* tensor;
    float decay;  // weight_decay * decay_mult
    int64_t offset;  // into u_ / v_
  };
  Net& net_;
  Communicator& comm_;
  GradientExchangeParameter param_;
  float momentum_ = 0, weight_decay_ = 0, clip_ = 0;
  bool l1_ = false, momentum_correction_ = true;
  std::vector<Slot> slots_;
  std::vector<float> u_, v_;       // local momentum and accumulated gradient, all slots
  std::vector<float> magnitude_;   // selection scratch
  std::vector<char> send_, receive_;  // this rank's message; all ranks' messages
  uint64_t last_bytes_ = 0;
  float last_sparsity_ = 0;
};

}  // namespace dsg
