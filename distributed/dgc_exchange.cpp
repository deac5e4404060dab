#include "distributed/dgc_exchange.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/error.hpp"
#include "runtime/log.hpp"

namespace dsg {

DgcExchange::DgcExchange(Net& net, Communicator& comm, const SolverParameter& solver, const Device& device)
    : net_(net), comm_(comm), param_(solver.gradient_exchange()) {
  if (device.type != DeviceType::CPU)
    throw Error("the DGC gradient exchange runs on the CPU only; --device " + device.name() + " was asked for",
                "use method: DENSE (NCCL allreduce) on a GPU, or --device cpu");
  if (!(param_.sparsity() >= 0.0f && param_.sparsity() < 1.0f))
    throw Error(strfmt("gradient_exchange.sparsity must be in [0, 1) (got %g)", param_.sparsity()));
  if (param_.warmup_iter() < 0) throw Error("gradient_exchange.warmup_iter must not be negative");
  if (!(param_.clip_norm() >= 0.0f)) throw Error("gradient_exchange.clip_norm must not be negative");
  if (param_.dense_below() < 0) throw Error("gradient_exchange.dense_below must not be negative");
  momentum_correction_ = param_.momentum_correction();
  if (momentum_correction_ && solver.type() != "SGD")
    throw Error("DGC's momentum correction replaces SGD's momentum, but the solver type is " + solver.type(),
                "use type: \"SGD\", or momentum_correction: false");
  momentum_ = solver.momentum();
  weight_decay_ = solver.weight_decay();
  l1_ = solver.regularization_type() == "L1";
  clip_ = param_.clip_norm() > 0 ? param_.clip_norm() : solver.clip_gradients();
  int64_t offset = 0;
  for (const LearnableParam& p : net.learnable_params()) {
    if (p.lr_mult == 0) continue;
    slots_.push_back({p.tensor, weight_decay_ * p.decay_mult, offset});
    offset += p.tensor->count();
  }
  u_.assign(size_t(offset), 0.0f);
  v_.assign(size_t(offset), 0.0f);
}

std::string DgcExchange::describe() const {
  return strfmt("DGC (%.4g%% sparse%s%s)", 100.0 * param_.sparsity(),
                param_.warmup_iter() ? strfmt(", warm-up over %d iterations", param_.warmup_iter()).c_str() : "",
                momentum_correction_ ? ", momentum correction" : "");
}

float DgcExchange::kth_largest_magnitude(const float* v, int64_t n, int64_t k) {
  // As in the paper, a sample estimates the threshold first: every stride-th entry (deterministic),
  // its (k / n)-quantile lowered by half, so that the candidates at or above it hold the k largest
  // in all but adversarial cases. The exact k-th largest among the candidates is then the exact
  // k-th largest overall. Too few candidates: the full selection.
  const int64_t stride = std::max<int64_t>(1, n / 4096);
  if (stride > 1 && k * 8 < n) {
    magnitude_.clear();
    for (int64_t i = 0; i < n; i += stride) magnitude_.push_back(std::fabs(v[i]));
    const int64_t m = int64_t(magnitude_.size());
    const int64_t rank = std::min<int64_t>(m - 1, (k * m) / n * 2 + 8);  // a generous margin
    std::nth_element(magnitude_.begin(), magnitude_.begin() + rank, magnitude_.end(), std::greater<float>());
    const float estimate = magnitude_[size_t(rank)];
    magnitude_.clear();
    for (int64_t i = 0; i < n; ++i) {
      const float a = std::fabs(v[i]);
      if (a >= estimate) magnitude_.push_back(a);
    }
    if (int64_t(magnitude_.size()) >= k) {
      std::nth_element(magnitude_.begin(), magnitude_.begin() + (k - 1), magnitude_.end(), std::greater<float>());
      return magnitude_[size_t(k - 1)];
    }
  }
  magnitude_.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) magnitude_[size_t(i)] = std::fabs(v[i]);
  std::nth_element(magnitude_.begin(), magnitude_.begin() + (k - 1), magnitude_.end(), std::greater<float>());
  return magnitude_[size_t(k - 1)];
}

float DgcExchange::sparsity_at(int iter) const {
  const float target = param_.sparsity();
  const int warmup = param_.warmup_iter();
  if (warmup <= 0 || iter >= warmup) return target;
  const int stage = int(int64_t(iter) * 4 / warmup);  // 0..3
  return std::min(target, float(1.0 - std::pow(0.25, stage + 1)));
}

int64_t DgcExchange::kept_entries(int64_t n, float s) const {
  if (sent_whole(n)) return n;
  return std::clamp<int64_t>(std::llround(double(n) * (1.0 - double(s))), 1, n);
}

void DgcExchange::exchange(int iter, const Device& device) {
  if (device.type != DeviceType::CPU) throw Error("the DGC gradient exchange runs on the CPU only");
  const float s = sparsity_at(iter);
  last_sparsity_ = s;
  const float local_clip = clip_ > 0 ? clip_ / std::sqrt(float(comm_.size())) : 0.0f;
  float clip_scale = 1.0f;
  if (local_clip > 0 && momentum_correction_) {  // local clipping of this rank's gradient
    double sumsq = 0;
    for (const Slot& slot : slots_) {
      const float* g = slot.tensor->diff();
      for (int64_t i = 0; i < slot.tensor->count(); ++i) sumsq += double(g[i]) * g[i];
    }
    const double norm = std::sqrt(sumsq);
    if (norm > local_clip) clip_scale = float(local_clip / norm);
  }
  // This rank's message: per tensor, either its n values (sent whole) or k indices then k values.
  size_t message = 0;
  for (const Slot& slot : slots_) {
    const int64_t n = slot.tensor->count(), k = kept_entries(n, s);
    message += sent_whole(n) ? size_t(n) * sizeof(float) : size_t(k) * (sizeof(uint32_t) + sizeof(float));
  }
  send_.resize(message);
  size_t at = 0;
  for (const Slot& slot : slots_) {
    Tensor& t = *slot.tensor;
    const int64_t n = t.count();
    const float* g = t.diff();
    const float* w = t.data();
    float* u = u_.data() + slot.offset;
    float* v = v_.data() + slot.offset;
    if (momentum_correction_) {
      for (int64_t i = 0; i < n; ++i) {
        float gi = g[i] * clip_scale;
        if (slot.decay != 0) gi += l1_ ? slot.decay * float((w[i] > 0) - (w[i] < 0)) : slot.decay * w[i];
        u[i] = momentum_ * u[i] + gi;
        v[i] += u[i];
      }
    } else {
      for (int64_t i = 0; i < n; ++i) v[i] += g[i];
    }
    const int64_t k = kept_entries(n, s);
    if (sent_whole(n)) {
      // Sent every iteration: plain momentum SGD. The velocity u is what is sent and it is kept
      // (masking it every iteration would drop momentum altogether); v carries nothing over.
      std::memcpy(&send_[at], momentum_correction_ ? u : v, size_t(n) * sizeof(float));
      std::fill(v, v + n, 0.0f);
      at += size_t(n) * sizeof(float);
      continue;
    }
    // The k largest magnitudes: the k-th largest is the threshold; ties at it are taken in index
    // order until k are chosen (deterministic).
    const float threshold = k < n ? kth_largest_magnitude(v, n, k) : 0.0f;
    int64_t above = 0;
    if (k < n)
      for (int64_t i = 0; i < n; ++i) above += std::fabs(v[i]) > threshold;
    int64_t ties = k - above, chosen = 0;
    auto* index = reinterpret_cast<uint32_t*>(&send_[at]);
    auto* value = reinterpret_cast<float*>(&send_[at + size_t(k) * sizeof(uint32_t)]);
    for (int64_t i = 0; i < n && chosen < k; ++i) {
      const float m = std::fabs(v[i]);
      const bool take = k == n || m > threshold || (m == threshold && ties-- > 0);
      if (!take) continue;
      index[chosen] = uint32_t(i);
      value[chosen] = v[i];
      v[i] = 0.0f;
      if (momentum_correction_) u[i] = 0.0f;  // momentum factor masking
      ++chosen;
    }
    at += size_t(k) * (sizeof(uint32_t) + sizeof(float));
  }
  // Exchange: every rank's message, in rank order.
  const int ranks = comm_.size();
  receive_.resize(message * size_t(ranks));
  comm_.allgather(send_.data(), receive_.data(), int64_t(message));
  last_bytes_ = message;
  // Sum into the zeroed diffs in rank order (the same bits on every rank), then average.
  for (const Slot& slot : slots_) std::fill(slot.tensor->mutable_diff(), slot.tensor->mutable_diff() + slot.tensor->count(), 0.0f);
  for (int r = 0; r < ranks; ++r) {
    const char* block = receive_.data() + size_t(r) * message;
    size_t pos = 0;
    for (const Slot& slot : slots_) {
      const int64_t n = slot.tensor->count(), k = kept_entries(n, s);
      float* d = slot.tensor->mutable_diff();
      if (sent_whole(n)) {
        const auto* value = reinterpret_cast<const float*>(block + pos);
        for (int64_t i = 0; i < n; ++i) d[i] += value[i];
        pos += size_t(n) * sizeof(float);
        continue;
      }
      const auto* index = reinterpret_cast<const uint32_t*>(block + pos);
      const auto* value = reinterpret_cast<const float*>(block + pos + size_t(k) * sizeof(uint32_t));
      for (int64_t e = 0; e < k; ++e) d[index[e]] += value[e];
      pos += size_t(k) * (sizeof(uint32_t) + sizeof(float));
    }
  }
  const float inv = 1.0f / float(ranks);
  for (const Slot& slot : slots_) {
    float* d = slot.tensor->mutable_diff();
    for (int64_t i = 0; i < slot.tensor->count(); ++i) d[i] *= inv;
  }
}

std::vector<std::string> DgcExchange::report() const {
  const double ratio = last_bytes_ ? double(dense_bytes()) / double(last_bytes_) : 0.0;
  return {strfmt("    Gradient exchange: DGC at %.4g%% sparsity: %llu bytes sent per rank this iteration, dense "
                 "%llu (%.0fx less)",
                 100.0 * last_sparsity_, static_cast<unsigned long long>(last_bytes_),
                 static_cast<unsigned long long>(dense_bytes()), ratio)};
}

void DgcExchange::save(ModelFile* model) const {
  // Every rank's accumulators go into rank 0's snapshot, so a resumed run continues exactly.
  const int ranks = comm_.size();
  const size_t n = u_.size();
  std::vector<float> mine(2 * n), all(2 * n * size_t(ranks));
  std::copy(u_.begin(), u_.end(), mine.begin());
  std::copy(v_.begin(), v_.end(), mine.begin() + ptrdiff_t(n));
  comm_.allgather(mine.data(), all.data(), int64_t(mine.size() * sizeof(float)));
  for (int r = 0; r < ranks; ++r) {
    ExchangeState* state = model->add_exchange_state();
    state->set_rank(r);
    state->set_ranks(ranks);
    const float* base = all.data() + size_t(r) * 2 * n;
    state->mutable_momentum()->Assign(base, base + n);
    state->mutable_accumulated()->Assign(base + n, base + 2 * n);
  }
}

void DgcExchange::load(const ModelFile& model) {
  for (const ExchangeState& state : model.exchange_state()) {
    if (state.rank() != comm_.rank()) continue;
    if (state.ranks() != comm_.size() || size_t(state.momentum_size()) != u_.size() ||
        size_t(state.accumulated_size()) != v_.size())
      break;
    std::copy(state.momentum().begin(), state.momentum().end(), u_.begin());
    std::copy(state.accumulated().begin(), state.accumulated().end(), v_.begin());
    return;
  }
  std::fill(u_.begin(), u_.end(), 0.0f);
  std::fill(v_.begin(), v_.end(), 0.0f);
  if (comm_.rank() == 0)
    log_warn(strfmt("the snapshot holds no DGC state for %d ranks; the local gradient accumulators start empty",
                    comm_.size()));
}

}  // namespace dsg
