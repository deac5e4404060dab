#include "runtime/update_rule.hpp"

#include <cmath>

#include "runtime/error.hpp"

namespace dsg {

void UpdateRule::init(const std::vector<LearnableParam>& params, const Device& device) {
  device_ = device;
  ops_ = &ops_for(device);
  history_.clear();
  history2_.clear();
  for (const auto& p : params) {
    history_.emplace_back(std::vector<int>{int(p.tensor->count())});
    if (uses_second_moment()) history2_.emplace_back(std::vector<int>{int(p.tensor->count())});
  }
}

void UpdateRule::save(SolverState* state) const {
  for (const auto& h : history_) {
    BlobProto* b = state->add_history();
    b->mutable_shape()->add_dim(h.count());
    b->mutable_data()->Add(h.data(), h.data() + h.count());
  }
  for (const auto& h : history2_) {
    BlobProto* b = state->add_history2();
    b->mutable_shape()->add_dim(h.count());
    b->mutable_data()->Add(h.data(), h.data() + h.count());
  }
}

void UpdateRule::load(const SolverState& state) {
  auto restore = [](std::vector<Tensor>& dst, const google::protobuf::RepeatedPtrField<BlobProto>& src,
                    const char* what) {
    if (size_t(src.size()) != dst.size())
      throw Error(strfmt("solver state holds %d %s blobs but the net has %zu learnable parameters", src.size(), what,
                         dst.size()));
    for (size_t i = 0; i < dst.size(); ++i) {
      if (int64_t(src[int(i)].data_size()) != dst[i].count())
        throw Error(strfmt("solver state %s blob %zu has %d values, expected %lld", what, i, src[int(i)].data_size(),
                           static_cast<long long>(dst[i].count())));
      std::copy(src[int(i)].data().begin(), src[int(i)].data().end(), dst[i].mutable_data());
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
    const Device& d = device();
    ops().sgd_step(t.count(), param_.momentum(), rate, t.mutable_diff(d), history_[i].mutable_data(d));
  }
  bool fused_l2_update(size_t i, Tensor& t, float rate, float decay) override {
    const Device& d = device();
    ops().sgd_l2_update(t.count(), param_.momentum(), rate, decay, t.mutable_data(d), t.mutable_diff(d),
                        history_[i].mutable_data(d));
    return true;
  }
};

// Caffe's Nesterov: v' = m v + rate g; step = (1 + m) v' - m v.
class NesterovRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  void compute_step(size_t i, Tensor& t, float rate, int) override {
    const Device& d = device();
    ops().nesterov_step(t.count(), param_.momentum(), rate, t.mutable_diff(d), history_[i].mutable_data(d));
  }
};

// Adam (Kingma & Ba) as in Caffe: beta1 = momentum, beta2 = momentum2, eps = delta.
class AdamRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  void compute_step(size_t i, Tensor& t, float rate, int iter) override {
    const float b1 = param_.momentum(), b2 = param_.momentum2();
    const int step = iter + 1;
    const float correction = std::sqrt(1 - std::pow(b2, step)) / (1 - std::pow(b1, step));
    const Device& d = device();
    ops().adam_step(t.count(), b1, b2, param_.delta(), rate * correction, t.mutable_diff(d),
                    history_[i].mutable_data(d), history2_[i].mutable_data(d));
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
