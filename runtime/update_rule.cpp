#include "runtime/update_rule.hpp"

#include <cmath>

#include "runtime/error.hpp"

namespace dsg {

void UpdateRule::init(const std::vector<LearnableParam>& params) {
  history_.clear();
  history2_.clear();
  for (const auto& p : params) {
    history_.emplace_back(size_t(p.tensor->count()), 0.0f);
    if (uses_second_moment()) history2_.emplace_back(size_t(p.tensor->count()), 0.0f);
  }
}

void UpdateRule::save(SolverState* state) const {
  for (const auto& h : history_) {
    BlobProto* b = state->add_history();
    b->mutable_shape()->add_dim(int64_t(h.size()));
    b->mutable_data()->Add(h.begin(), h.end());
  }
  for (const auto& h : history2_) {
    BlobProto* b = state->add_history2();
    b->mutable_shape()->add_dim(int64_t(h.size()));
    b->mutable_data()->Add(h.begin(), h.end());
  }
}

void UpdateRule::load(const SolverState& state) {
  auto restore = [](std::vector<std::vector<float>>& dst, const google::protobuf::RepeatedPtrField<BlobProto>& src,
                    const char* what) {
    if (size_t(src.size()) != dst.size())
      throw Error(strfmt("solver state holds %d %s blobs but the net has %zu learnable parameters", src.size(), what,
                         dst.size()));
    for (size_t i = 0; i < dst.size(); ++i) {
      if (size_t(src[int(i)].data_size()) != dst[i].size())
        throw Error(strfmt("solver state %s blob %zu has %d values, expected %zu", what, i, src[int(i)].data_size(),
                           dst[i].size()));
      std::copy(src[int(i)].data().begin(), src[int(i)].data().end(), dst[i].begin());
    }
  };
  restore(history_, state.history(), "history");
  if (uses_second_moment()) restore(history2_, state.history2(), "second-moment");
}

namespace {

// v = momentum * v + rate * g; step = v.
class SGDRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  void compute_step(size_t i, Tensor& t, float rate, int) override {
    float* g = t.mutable_diff();
    float* v = history_[i].data();
    const float m = param_.momentum();
    for (int64_t k = 0; k < t.count(); ++k) {
      v[k] = m * v[k] + rate * g[k];
      g[k] = v[k];
    }
  }
  bool fused_l2_update(size_t i, Tensor& t, float rate, float decay) override {
    float* __restrict g = t.mutable_diff();
    float* __restrict w = t.mutable_data();
    float* __restrict v = history_[i].data();
    const float m = param_.momentum();
    const int64_t n = t.count();
    for (int64_t k = 0; k < n; ++k) {
      float step = m * v[k] + rate * (g[k] + decay * w[k]);
      v[k] = step;
      w[k] -= step;
      g[k] = 0.0f;
    }
    return true;
  }
};

// Caffe's Nesterov: v' = m v + rate g; step = (1 + m) v' - m v.
class NesterovRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  void compute_step(size_t i, Tensor& t, float rate, int) override {
    float* g = t.mutable_diff();
    float* v = history_[i].data();
    const float m = param_.momentum();
    for (int64_t k = 0; k < t.count(); ++k) {
      float prev = v[k];
      v[k] = m * v[k] + rate * g[k];
      g[k] = (1 + m) * v[k] - m * prev;
    }
  }
};

// Adam (Kingma & Ba) as in Caffe: beta1 = momentum, beta2 = momentum2, eps = delta.
class AdamRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  void compute_step(size_t i, Tensor& t, float rate, int iter) override {
    float* g = t.mutable_diff();
    float* m = history_[i].data();
    float* v = history2_[i].data();
    const float b1 = param_.momentum(), b2 = param_.momentum2(), eps = param_.delta();
    const int step = iter + 1;
    const float correction = std::sqrt(1 - std::pow(b2, step)) / (1 - std::pow(b1, step));
    for (int64_t k = 0; k < t.count(); ++k) {
      m[k] = b1 * m[k] + (1 - b1) * g[k];
      v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
      g[k] = rate * correction * m[k] / (std::sqrt(v[k]) + eps);
    }
  }

 protected:
  bool uses_second_moment() const override { return true; }
};

template <class Rule>
std::unique_ptr<UpdateRule> make(const SolverParameter& p) {
  return std::make_unique<Rule>(p);
}

struct RegisterRules {
  RegisterRules() {
    update_rule_registry().add("SGD", make<SGDRule>);
    update_rule_registry().add("Nesterov", make<NesterovRule>);
    update_rule_registry().add("Adam", make<AdamRule>);
  }
} register_rules;

}  // namespace
}  // namespace dsg
