// The gradient exchanges of data-parallel training on 2 in-process ranks (support/thread_communicator.hpp):
// DgcExchange (distributed/dgc_exchange.hpp: top-k selection, error feedback, momentum correction,
// warm-up, byte counts, snapshot state, CPU only) and DenseExchange (runtime/gradient_exchange.hpp).
// Gradients are written straight into the learnable diffs, so every expectation is exact arithmetic.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <numeric>
#include <random>

#include "distributed/dgc_exchange.hpp"
#include "runtime/config.hpp"
#include "runtime/gradient_exchange.hpp"
#include "runtime/net.hpp"
#include "support/thread_communicator.hpp"

using namespace dsg;
using namespace dsg::test;

namespace {

// x [4, 50] -> InnerProduct 8 -> loss: learnable tensors of 400 (weights) and 8 (bias) values.
const char* kNet = R"(
  name: "tiny"
  layer { name: "in" type: "Input" top: "x" top: "label" input_param { shape { dim: 4 dim: 50 } shape { dim: 4 } } }
  layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
          inner_product_param { num_output: 8 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } } }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "y" bottom: "label" top: "loss" }
)";

std::unique_ptr<Net> make_net() {
  NetParameter p;
  parse_text_proto(kNet, "tiny-net", &p);
  std::mt19937_64 rng(5);  // the same weights on every rank
  return std::make_unique<Net>(p, TRAIN, rng);
}

SolverParameter dgc_solver(float sparsity, bool momentum_correction, float momentum = 0.9f, float decay = 0.0f) {
  SolverParameter s;
  s.set_type("SGD");
  s.set_momentum(momentum);
  s.set_weight_decay(decay);
  GradientExchangeParameter* g = s.mutable_gradient_exchange();
  g->set_method(GradientExchangeParameter::DGC);
  g->set_sparsity(sparsity);
  g->set_momentum_correction(momentum_correction);
  g->set_dense_below(0);  // every tensor goes through top-k (the whole-tensor path has its own test)
  return s;
}

// A deterministic gradient for (rank, iteration, tensor, element), with distinct magnitudes.
float grad(int rank, int iter, size_t tensor, int64_t i) {
  std::mt19937 rng(uint32_t(1000003 * rank + 7919 * iter + 131 * int(tensor) + i));
  return std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
}

void set_grads(Net& net, int rank, int iter) {
  const auto params = net.learnable_params();
  for (size_t t = 0; t < params.size(); ++t)
    for (int64_t i = 0; i < params[t].tensor->count(); ++i) params[t].tensor->mutable_diff()[i] = grad(rank, iter, t, i);
}

std::vector<std::vector<float>> diffs(Net& net) {
  std::vector<std::vector<float>> out;
  for (const auto& p : net.learnable_params()) out.emplace_back(p.tensor->diff(), p.tensor->diff() + p.tensor->count());
  return out;
}

// A Communicator that records the payload of this rank's last allgather (what DGC sent).
class Recording final : public Communicator {
 public:
  explicit Recording(Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string describe() const override { return inner_.describe(); }
  void allreduce_sum(float* d, int64_t n, const Device& dev) override { inner_.allreduce_sum(d, n, dev); }
  void allgather(const void* in, void* out, int64_t bytes) override {
    sent.assign(static_cast<const char*>(in), static_cast<const char*>(in) + bytes);
    inner_.allgather(in, out, bytes);
  }
  void broadcast(void* d, int64_t b, int root) override { inner_.broadcast(d, b, root); }
  void barrier() override { inner_.barrier(); }
  std::vector<char> sent;

 private:
  Communicator& inner_;
};

// The (index, value) pairs of the last exchange, per tensor (k_t of them each, in order).
std::vector<std::vector<std::pair<uint32_t, float>>> sent_pairs(const std::vector<char>& sent,
                                                                const std::vector<int64_t>& k) {
  // The message holds, per tensor in order, its k indices (uint32) and then its k values.
  const int64_t total = std::accumulate(k.begin(), k.end(), int64_t(0));
  REQUIRE(int64_t(sent.size()) == total * 8);
  std::vector<std::vector<std::pair<uint32_t, float>>> out;
  size_t at = 0;
  for (int64_t kt : k) {
    out.emplace_back();
    for (int64_t e = 0; e < kt; ++e) {
      uint32_t index;
      float value;
      std::memcpy(&index, sent.data() + at + 4 * size_t(e), 4);
      std::memcpy(&value, sent.data() + at + 4 * size_t(kt + e), 4);
      out.back().push_back({index, value});
    }
    at += 8 * size_t(kt);
  }
  return out;
}

// Indices of the k largest |v| (ties in index order): the selection rule of the header.
std::vector<uint32_t> top_k(const std::vector<float>& v, int64_t k) {
  std::vector<uint32_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0u);
  std::stable_sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) { return std::fabs(v[a]) > std::fabs(v[b]); });
  idx.resize(size_t(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace

TEST_CASE("DGC: kept entries and the warm-up schedule", "[dgc]") {
  auto net = make_net();
  LocalCommunicator local;
  DgcExchange sizes(*net, local, dgc_solver(0.99f, true), Device::cpu());
  CHECK(sizes.kept_entries(400, 0.99f) == 4);
  CHECK(sizes.kept_entries(8, 0.99f) == 1);  // never fewer than one
  CHECK(sizes.kept_entries(400, 0.0f) == 400);
  CHECK(sizes.kept_entries(400, 0.75f) == 100);
  SolverParameter whole = dgc_solver(0.99f, true);
  whole.mutable_gradient_exchange()->set_dense_below(100);
  DgcExchange small_whole(*net, local, whole, Device::cpu());
  CHECK(small_whole.kept_entries(8, 0.99f) == 8);     // under dense_below: sent whole
  CHECK(small_whole.kept_entries(400, 0.99f) == 4);
  SolverParameter s = dgc_solver(0.999f, true);
  s.mutable_gradient_exchange()->set_warmup_iter(40);
  DgcExchange dgc(*net, local, s, Device::cpu());
  // Four stages of 10 iterations: 1 - 0.25^(stage + 1), then the target.
  CHECK(dgc.sparsity_at(0) == 0.75f);
  CHECK(dgc.sparsity_at(9) == 0.75f);
  CHECK(dgc.sparsity_at(10) == 0.9375f);
  CHECK(dgc.sparsity_at(20) == Approx(0.984375f).epsilon(1e-6));
  CHECK(dgc.sparsity_at(39) == Approx(0.99609375f).epsilon(1e-6));
  CHECK(dgc.sparsity_at(40) == 0.999f);
  CHECK(dgc.sparsity_at(100000) == 0.999f);
  s.mutable_gradient_exchange()->set_sparsity(0.9f);  // the warm-up is capped at the target
  DgcExchange capped(*net, local, s, Device::cpu());
  CHECK(capped.sparsity_at(0) == 0.75f);
  CHECK(capped.sparsity_at(10) == 0.9f);
  CHECK(capped.sparsity_at(30) == 0.9f);
  s.mutable_gradient_exchange()->set_warmup_iter(0);
  DgcExchange none(*net, local, s, Device::cpu());
  CHECK(none.sparsity_at(0) == 0.9f);
}

TEST_CASE("DGC: a CUDA device is refused by name", "[dgc]") {
  auto net = make_net();
  LocalCommunicator local;
  CHECK_THROWS_WITH(DgcExchange(*net, local, dgc_solver(0.99f, true), Device::cuda(0)),
                    Catch::Contains("CPU only") && Catch::Contains("cuda"));
}

TEST_CASE("DGC on 2 ranks: top-k per tensor sent, identical diffs, byte counts", "[dgc]") {
  ThreadGroup group(2);
  std::vector<std::vector<std::vector<float>>> result(2);
  std::mutex mu;
  run_ranks(group, [&](Communicator& inner) {
    Recording comm(inner);
    auto net = make_net();
    DgcExchange dgc(*net, comm, dgc_solver(0.99f, false), Device::cpu());
    set_grads(*net, comm.rank(), 0);
    const auto g = diffs(*net);
    dgc.exchange(0, Device::cpu());
    const std::vector<int64_t> k = {4, 1};  // round(400 * 0.01), max(1, round(8 * 0.01))
    std::lock_guard<std::mutex> lock(mu);
    INFO("rank " << comm.rank());
    const auto pairs = sent_pairs(comm.sent, k);
    for (size_t t = 0; t < 2; ++t) {
      std::vector<uint32_t> got;
      for (const auto& [index, value] : pairs[t]) {
        got.push_back(index);
        CHECK(value == g[t][index]);  // v = g on the first iteration (no momentum correction)
      }
      CHECK(got == top_k(g[t], k[t]));
    }
    CHECK(dgc.last_bytes() == 5 * 8);  // 5 (uint32, float) pairs
    CHECK(dgc.dense_bytes() == 408 * 4);
    CHECK(double(dgc.dense_bytes()) / double(dgc.last_bytes()) > 40.0);  // 1632 / 40 = 40.8x less
    CHECK(comm.bytes_sent() == 0);  // Recording does not count; the inner communicator does
    CHECK(inner.bytes_sent() == 40);
    result[size_t(comm.rank())] = diffs(*net);
  });
  CHECK(result[0] == result[1]);  // identical bits on both ranks
  // Nonzero exactly at the union of both ranks' selections.
  int nonzero = 0;
  for (const auto& t : result[0]) nonzero += int(std::count_if(t.begin(), t.end(), [](float x) { return x != 0; }));
  CHECK(nonzero >= 5);
  CHECK(nonzero <= 10);
}

TEST_CASE("DGC without momentum correction: error feedback loses nothing", "[dgc]") {
  // Per rank, sum over iterations of (sent) + (still accumulated) == sum of gradients; what is
  // applied is the rank average of what was sent. So R * sum(applied) + sum_r(accumulated_r)
  // == sum_r sum_t g_r,t. Values are in [-1, 1], 6 iterations x 2 ranks: each side is a sum of
  // <= 12 terms of magnitude <= 1 in float, rounding error <= 12 * 6e-8 * 12 ~ 1e-5; margin 1e-4.
  const int iters = 6;
  ThreadGroup group(2);
  std::vector<std::vector<double>> applied(2), gsum(2), accumulated(2);
  std::mutex mu;
  run_ranks(group, [&](Communicator& comm) {
    auto net = make_net();
    DgcExchange dgc(*net, comm, dgc_solver(0.9f, false), Device::cpu());
    std::vector<double> my_applied(408, 0.0), my_g(408, 0.0);
    for (int it = 0; it < iters; ++it) {
      set_grads(*net, comm.rank(), it);
      auto g = diffs(*net);
      dgc.exchange(it, Device::cpu());
      auto a = diffs(*net);
      for (size_t i = 0; i < 400; ++i) my_g[i] += g[0][i], my_applied[i] += a[0][i];
      for (size_t i = 0; i < 8; ++i) my_g[400 + i] += g[1][i], my_applied[400 + i] += a[1][i];
    }
    ModelFile model;
    dgc.save(&model);  // collective
    std::lock_guard<std::mutex> lock(mu);
    REQUIRE(model.exchange_state_size() == 2);
    const auto& st = model.exchange_state(comm.rank());
    CHECK(st.rank() == comm.rank());
    CHECK(st.ranks() == 2);
    applied[size_t(comm.rank())] = my_applied;
    gsum[size_t(comm.rank())] = my_g;
    accumulated[size_t(comm.rank())] = std::vector<double>(st.accumulated().begin(), st.accumulated().end());
  });
  REQUIRE(accumulated[0].size() == 408);
  int bad = 0;
  for (size_t i = 0; i < 408; ++i) {
    const double lhs = 2 * applied[0][i] + accumulated[0][i] + accumulated[1][i];
    const double rhs = gsum[0][i] + gsum[1][i];
    bad += std::fabs(lhs - rhs) > 1e-4;
    CHECK(applied[0][i] == applied[1][i]);
  }
  CHECK(bad == 0);
}

TEST_CASE("DGC with momentum correction matches the header's formula", "[dgc]") {
  // Reference, per rank and tensor (decay = weight_decay * decay_mult, weights fixed):
  //   u = m u + (g + decay w); v += u; send top-k |v|; clear v and u there;
  //   applied = (sum over ranks in rank order of the sent values) / 2.
  // The same float operations in the same order; the compiler may contract a * b + c into one
  // fused multiply-add in one place and not the other (-march=native), which changes a result by
  // at most an ulp per operation: over 5 iterations of |u|, |v| < 10, 1e-5 relative covers it,
  // while a wrong formula (no decay, no masking, momentum not applied) is off by >= 1e-3.
  const float m = 0.9f, wd = 0.01f, s = 0.95f;
  const int iters = 5;
  ThreadGroup group(2);
  int mismatch[2] = {-1, -1};
  bool applies[2] = {false, false};
  run_ranks(group, [&](Communicator& comm) {
    auto net = make_net();
    DgcExchange dgc(*net, comm, dgc_solver(s, true, m, wd), Device::cpu());
    const auto params = net->learnable_params();
    std::vector<std::vector<float>> w;
    for (const auto& p : params) w.emplace_back(p.tensor->data(), p.tensor->data() + p.tensor->count());
    std::vector<std::vector<float>> u[2], v[2];  // reference state of both ranks
    for (int r = 0; r < 2; ++r)
      for (const auto& wt : w) u[r].emplace_back(wt.size(), 0.0f), v[r].emplace_back(wt.size(), 0.0f);
    int mismatches = 0;
    for (int it = 0; it < iters; ++it) {
      std::vector<std::vector<float>> want;
      for (const auto& wt : w) want.emplace_back(wt.size(), 0.0f);
      for (int r = 0; r < 2; ++r)
        for (size_t t = 0; t < w.size(); ++t) {
          const float decay = wd * params[t].decay_mult;
          for (size_t i = 0; i < w[t].size(); ++i) {
            float gi = grad(r, it, t, int64_t(i)) * 1.0f;
            gi += decay * w[t][i];
            u[r][t][i] = m * u[r][t][i] + gi;
            v[r][t][i] += u[r][t][i];
          }
          for (uint32_t i : top_k(v[r][t], dgc.kept_entries(int64_t(w[t].size()), s))) {
            want[t][i] += v[r][t][i];
            v[r][t][i] = 0.0f;
            u[r][t][i] = 0.0f;
          }
        }
      for (auto& t : want)
        for (float& x : t) x *= 0.5f;
      set_grads(*net, comm.rank(), it);
      dgc.exchange(it, Device::cpu());
      const auto got = diffs(*net);
      for (size_t t = 0; t < w.size(); ++t)
        for (size_t i = 0; i < w[t].size(); ++i)
          mismatches += std::fabs(got[t][i] - want[t][i]) > 1e-5f * (1.0f + std::fabs(want[t][i]));
    }
    applies[comm.rank()] = dgc.applies_momentum();
    mismatch[comm.rank()] = mismatches;
  });
  CHECK(applies[0]);
  CHECK(mismatch[0] == 0);
  CHECK(mismatch[1] == 0);
}

TEST_CASE("DGC: per-rank state survives save and load", "[dgc]") {
  ThreadGroup group(2);
  bool same_bytes[2] = {false, false}, same_next[2] = {false, false}, fresh_differs[2] = {false, false};
  run_ranks(group, [&](Communicator& comm) {
    const size_t r = size_t(comm.rank());
    auto net_a = make_net(), net_b = make_net();
    const SolverParameter s = dgc_solver(0.9f, true, 0.9f, 0.001f);
    DgcExchange a(*net_a, comm, s, Device::cpu());
    for (int it = 0; it < 3; ++it) {
      set_grads(*net_a, comm.rank(), it);
      a.exchange(it, Device::cpu());
    }
    ModelFile model;
    a.save(&model);
    DgcExchange b(*net_b, comm, s, Device::cpu());
    b.load(model);
    ModelFile again;
    b.save(&again);
    same_bytes[r] = again.SerializeAsString() == model.SerializeAsString();
    // Both continue identically (the accumulators, not only the snapshot bytes, were restored).
    set_grads(*net_a, comm.rank(), 3);
    set_grads(*net_b, comm.rank(), 3);
    a.exchange(3, Device::cpu());
    b.exchange(3, Device::cpu());
    same_next[r] = diffs(*net_a) == diffs(*net_b);
    // A fresh exchange without the state sends something else (the test can fail).
    auto net_c = make_net();
    DgcExchange c(*net_c, comm, s, Device::cpu());
    set_grads(*net_c, comm.rank(), 3);
    c.exchange(3, Device::cpu());
    fresh_differs[r] = diffs(*net_c) != diffs(*net_a);
  });
  for (int r = 0; r < 2; ++r) {
    INFO("rank " << r);
    CHECK(same_bytes[r]);
    CHECK(same_next[r]);
    CHECK(fresh_differs[r]);
  }
}

TEST_CASE("DenseExchange averages the arena diff over the ranks, identically on each", "[dgc][dense]") {
  ThreadGroup group(2);
  std::vector<std::vector<std::vector<float>>> result(2);
  std::mutex mu;
  run_ranks(group, [&](Communicator& comm) {
    auto net = make_net();
    DenseExchange dense(*net, comm);
    set_grads(*net, comm.rank(), 0);
    dense.exchange(0, Device::cpu());
    std::lock_guard<std::mutex> lock(mu);  // Catch2 assertions are not thread-safe
    CHECK(dense.last_bytes() == 408 * 4);
    result[size_t(comm.rank())] = diffs(*net);
  });
  CHECK(result[0] == result[1]);
  int bad = 0;
  for (size_t t = 0; t < 2; ++t)
    for (size_t i = 0; i < result[0][t].size(); ++i)
      bad += result[0][t][i] != (grad(0, 0, t, int64_t(i)) + grad(1, 0, t, int64_t(i))) * 0.5f;
  CHECK(bad == 0);
}

TEST_CASE("ThreadCommunicator: collectives in rank order", "[dgc][comm]") {
  ThreadGroup group(3);
  std::mutex mu;
  run_ranks(group, [&](Communicator& comm) {
    float x[2] = {float(comm.rank() + 1), 0.5f};
    comm.allreduce_sum(x, 2, Device::cpu());
    int mine = 10 * comm.rank(), all[3];
    comm.allgather(&mine, all, sizeof(int));
    int root_value = comm.rank() == 2 ? 42 : -1;
    comm.broadcast(&root_value, sizeof(int), 2);
    std::lock_guard<std::mutex> lock(mu);  // Catch2 assertions are not thread-safe
    CHECK(x[0] == 6.0f);
    CHECK(x[1] == 1.5f);
    CHECK((all[0] == 0 && all[1] == 10 && all[2] == 20));
    CHECK(root_value == 42);
  });
}

TEST_CASE("DGC: tensors under dense_below are sent whole, as momentum SGD", "[dgc]") {
  // The net's tensors hold 400 and 8 values; with dense_below 100 the bias (8) is sent whole:
  // its 8 values without indices, and with momentum correction the sent velocity u is kept, so a
  // constant gradient g is sent as g, then (m + 1) g, then (m^2 + m + 1) g.
  auto net = make_net();
  LocalCommunicator local;
  SolverParameter s = dgc_solver(0.99f, true, 0.5f);
  s.mutable_gradient_exchange()->set_dense_below(100);
  DgcExchange dgc(*net, local, s, Device::cpu());
  const auto params = net->learnable_params();
  REQUIRE(params.size() == 2);
  REQUIRE(params[1].tensor->count() == 8);
  const float expected_factor[3] = {1.0f, 1.5f, 1.75f};
  for (int it = 0; it < 3; ++it) {
    for (const auto& p : params)
      for (int64_t i = 0; i < p.tensor->count(); ++i) p.tensor->mutable_diff()[i] = 0.25f * float(i + 1);
    dgc.exchange(it, Device::cpu());
    for (int64_t i = 0; i < 8; ++i) {
      INFO("iteration " << it << " bias " << i);
      CHECK(params[1].tensor->diff()[i] == Approx(expected_factor[it] * 0.25f * float(i + 1)).epsilon(1e-6));
    }
    // 4 pairs of the 400-value weight (8 bytes each) and 8 whole bias values (4 bytes each).
    CHECK(dgc.last_bytes() == 4 * 8 + 8 * 4);
  }
}
