// Sparsity policies on the LSTM, whose weights are two blobs (W_xc, W_hc) pruned as one mask, and
// ESE's per-gate load balance: every (gate, partition) pair of [W_xc | W_hc] keeps the same number
// of non-zeros. Then configs/lstm_rows_ese.prototxt end to end on synthetic data through the
// Solver: pruned weights of both blobs stay zero through the updates.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "datasets/data_paths.hpp"
#include "datasets/synthetic_data.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"
#include "sparsity/controller.hpp"
#include "sparsity/ese.hpp"
#include "sparsity/policy.hpp"

using namespace dsg;

namespace {

struct Lstm {
  std::unique_ptr<Layer> layer;
  Tensor x, cont, h;
  Tensor& wx() { return *layer->blobs()[0]; }
  Tensor& b() { return *layer->blobs()[1]; }
  Tensor& wh() { return *layer->blobs()[2]; }
};

// LSTM with H hidden units over D inputs and a sparsity_param (policy, target, partitions).
std::unique_ptr<Lstm> lstm(int H, int D, const std::string& policy, float target, int partitions,
                           SparsityParameter::Granularity g = SparsityParameter::FINE) {
  LayerParameter p;
  p.set_name("lstm");
  p.set_type("LSTM");
  auto* r = p.mutable_recurrent_param();
  r->set_num_output(uint32_t(H));
  r->mutable_weight_filler()->set_type("uniform");
  r->mutable_weight_filler()->set_min(-1.0f);
  r->mutable_weight_filler()->set_max(1.0f);
  r->mutable_bias_filler()->set_type("constant");
  r->mutable_bias_filler()->set_value(0.5f);
  auto* sp = p.mutable_sparsity_param();
  sp->set_policy(policy);
  sp->set_target_sparsity(target);
  sp->set_num_partitions(partitions);
  sp->set_granularity(g);
  auto out = std::make_unique<Lstm>();
  out->layer = create_layer(p);
  out->x.reshape({2, 3, D});
  out->cont.reshape({2, 3});
  std::mt19937_64 rng(3);
  out->layer->setup({&out->x, &out->cont}, {&out->h}, rng);
  // Scale the rows unevenly by gate and partition so that unbalanced pruning would show.
  for (Tensor* w : {&out->wx(), &out->wh()}) {
    const int cols = w->shape(1);
    for (int64_t i = 0; i < w->count(); ++i)
      w->mutable_data()[i] *= float(1 + (i / cols) % 8) * float(1 + (i / cols) / H);
  }
  return out;
}

std::unique_ptr<SparsityPolicy> make(Lstm& l) {
  const auto& sp = l.layer->param().sparsity_param();
  auto p = policy_registry().create(sp.policy(), sp, *l.layer);
  p->validate();
  return p;
}

std::string error_of(Lstm& l) {
  try {
    make(l);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

int64_t nonzeros(const Tensor& t) {
  return std::count_if(t.data(), t.data() + t.count(), [](float v) { return v != 0.0f; });
}

}  // namespace

TEST_CASE("ese on the LSTM: every (gate, partition) of [W_xc | W_hc] keeps the same non-zeros",
          "[sparsity][ese][lstm]") {
  const int H = 8, D = 6, N = 4;
  auto l = lstm(H, D, "ese", 0.75f, N);
  auto policy = make(*l);
  CHECK(l->layer->weight_blobs() == std::vector<int>{0, 2});
  const std::vector<float> before_x(l->wx().data(), l->wx().data() + l->wx().count());
  const std::vector<float> before_h(l->wh().data(), l->wh().data() + l->wh().count());
  policy->prune_to(0.75f);
  REQUIRE(policy->mask().size() == size_t(4 * H * (D + H)));
  // Per gate block (H rows) and partition (rows r = p mod N): 2 rows of D + H = 14 -> 28 weights,
  // round(0.25 * 28) = 7 kept.
  for (int g = 0; g < 4; ++g) {
    auto nnz = nonzeros_per_partition({&l->wx(), &l->wh()}, N, g * H, (g + 1) * H);
    INFO("gate " << g);
    CHECK(nnz == std::vector<int64_t>(size_t(N), 7));
    // The kept weights of each pair are its 7 largest |w| over both blobs.
    for (int p = 0; p < N; ++p) {
      std::vector<float> mags;
      for (int r = g * H + p; r < (g + 1) * H; r += N) {
        for (int c = 0; c < D; ++c) mags.push_back(std::fabs(before_x[size_t(r * D + c)]));
        for (int c = 0; c < H; ++c) mags.push_back(std::fabs(before_h[size_t(r * H + c)]));
      }
      std::sort(mags.begin(), mags.end(), std::greater<float>());
      for (int r = g * H + p; r < (g + 1) * H; r += N) {
        for (int c = 0; c < D; ++c)
          REQUIRE((l->wx().data()[r * D + c] != 0.0f) == (std::fabs(before_x[size_t(r * D + c)]) >= mags[6]));
        for (int c = 0; c < H; ++c)
          REQUIRE((l->wh().data()[r * H + c] != 0.0f) == (std::fabs(before_h[size_t(r * H + c)]) >= mags[6]));
      }
    }
  }
  CHECK(nonzeros(l->wx()) + nonzeros(l->wh()) == 4 * N * 7);
  CHECK(nonzeros(l->wx()) > 0);
  CHECK(nonzeros(l->wh()) > 0);
  CHECK(policy->sparsity() == Approx(0.75));
  CHECK(nonzeros(l->b()) == 4 * H);  // biases are not pruned
  const std::string detail = policy->detail();
  INFO(detail);
  CHECK_THAT(detail, Catch::Contains("non-zeros per partition max/mean 1.000 over 4 partitions"));
  for (const char* gate : {"gate i:", "gate f:", "gate o:", "gate g:"}) CHECK_THAT(detail, Catch::Contains(gate));
  CHECK_THAT(detail, Catch::Contains("W_x ") && Catch::Contains("W_h ") && Catch::Contains("dense, max/mean 1.000"));
}

TEST_CASE("a policy's mask covers both LSTM weight blobs through updates, save and load", "[sparsity][ese][lstm]") {
  auto l = lstm(8, 6, "ese", 0.9f, 2);
  auto policy = make(*l);
  policy->prune_to(0.9f);
  const std::vector<uint8_t> mask = policy->mask();
  const size_t nx = size_t(l->wx().count());
  REQUIRE(mask.size() == nx + size_t(l->wh().count()));
  REQUIRE(std::count(mask.begin(), mask.begin() + long(nx), 0) > 0);
  REQUIRE(std::count(mask.begin() + long(nx), mask.end(), 0) > 0);
  // A solver step: gradients everywhere, masked, then an update that would move every weight.
  for (int step = 0; step < 3; ++step) {
    for (auto& b : l->layer->blobs()) std::fill(b->mutable_diff(), b->mutable_diff() + b->count(), 1.0f);
    policy->mask_gradients();
    for (size_t i = 0; i < mask.size(); ++i) {
      const float d = i < nx ? l->wx().diff()[i] : l->wh().diff()[i - nx];
      REQUIRE(d == (mask[i] ? 1.0f : 0.0f));
    }
    CHECK(l->b().diff()[0] == 1.0f);
    for (auto& b : l->layer->blobs())
      for (int64_t i = 0; i < b->count(); ++i)
        b->mutable_data()[i] -= 0.01f * b->diff()[i] + 0.001f;  // moves every weight, like decay
    policy->mask_weights();
    for (size_t i = 0; i < mask.size(); ++i) {
      const float w = i < nx ? l->wx().data()[i] : l->wh().data()[i - nx];
      REQUIRE((w != 0.0f) == bool(mask[i]));
    }
  }
  // Snapshot round trip of the two-blob mask.
  PolicyState state;
  policy->save(&state);
  auto other = lstm(8, 6, "ese", 0.9f, 2);
  auto restored = make(*other);
  restored->load(state);
  CHECK(restored->active());
  CHECK(restored->mask() == mask);

  // Plain magnitude FINE ranks both blobs together too.
  auto m = lstm(8, 6, "magnitude", 0.8f, 1);
  auto mp = make(*m);
  mp->prune_to(0.8f);
  const int64_t total = m->wx().count() + m->wh().count();
  CHECK(nonzeros(m->wx()) + nonzeros(m->wh()) == std::llround(0.2 * double(total)));
  CHECK(mp->sparsity() == Approx(0.8).margin(1.0 / double(total)));
}

TEST_CASE("policies on the LSTM: configuration errors", "[sparsity][ese][lstm]") {
  auto uneven = lstm(6, 4, "ese", 0.5f, 4);  // H = 6 rows per gate, 4 partitions
  CHECK_THAT(error_of(*uneven), Catch::Contains("lstm") && Catch::Contains("H = 6") && Catch::Contains("N = 4"));
  auto ok = lstm(8, 4, "ese", 0.5f, 4);
  CHECK(error_of(*ok).empty());
  auto filter = lstm(8, 4, "magnitude", 0.5f, 1, SparsityParameter::FILTER);
  CHECK_THAT(error_of(*filter), Catch::Contains("lstm") && Catch::Contains("FINE") && Catch::Contains("weight blobs"));
}


TEST_CASE("lstm_rows_ese: ESE pruning and fixed point through the Solver", "[configs][ese][lstm]") {
  const std::string config = std::string(DSG_SOURCE_DIR) + "/configs/lstm_rows_ese.prototxt";
  LoadedConfig c = load_solver_config(config);
  const LayerParameter* lp = nullptr;
  for (const auto& l : c.solver.net_param().layer())
    if (l.type() == "LSTM") lp = &l;
  REQUIRE(lp);
  CHECK(lp->sparsity_param().policy() == "ese");
  CHECK(lp->sparsity_param().target_sparsity() == Approx(0.9));
  CHECK(lp->sparsity_param().num_partitions() == 4);
  CHECK(lp->fixed_point_param().weight_bits() == 12);
  CHECK(lp->fixed_point_param().activation_bits() == 16);
  CHECK(c.solver.schedule().phase_size() == 3);

  test::TempDir dir;
  test::write_striped_idx(dir, 640, 200);  // an epoch is 10 iterations: dense 30, prune 30, retrain 30
  resolve_data_sources(*c.solver.mutable_net_param(), c.config_dir, dir.path().string());
  c.solver.set_max_iter(90);
  c.solver.set_test_iter(0, 2);
  c.solver.set_test_interval(90);
  c.solver.set_display(0);
  c.solver.set_snapshot(0);
  c.solver.mutable_schedule()->mutable_phase(1)->set_prune_interval(5);  // reach 90% within 30 iterations
  set_num_threads(1);
  Context ctx;
  ctx.seed = 1;
  Solver solver(c.solver, c.net_locations, ctx, dir.file("lstm_rows_ese"));
  install_sparsity(solver);
  Layer* lstm_layer = solver.train_net().layer_by_name("lstm");
  REQUIRE(lstm_layer);
  const SparsityPolicy& policy = *install_sparsity(solver).policies()[0];
  const Tensor& wx = *lstm_layer->blobs()[0];
  const Tensor& wh = *lstm_layer->blobs()[2];
  int64_t violations = 0, checked = 0;
  solver.on_iteration = [&](const IterationReport& r) {
    if (r.iter <= 60 || !policy.active()) return;  // retrain phase: the masks are fixed
    const auto& mask = policy.mask();
    const size_t nx = size_t(wx.count());
    for (size_t i = 0; i < mask.size(); ++i) {
      const float w = i < nx ? wx.data()[i] : wh.data()[i - nx];
      violations += !mask[i] && w != 0.0f;
    }
    ++checked;
  };
  float accuracy = -1;
  solver.on_test = [&](const TestReport& r) {
    for (const auto& kv : r.outputs)
      if (kv.first == "accuracy") accuracy = kv.second;
  };
  solver.solve();
  CHECK(checked == 30);
  CHECK(violations == 0);
  CHECK(policy.active());
  CHECK(policy.sparsity() == Approx(0.9).margin(1e-3));
  // Both blobs are pruned, and every gate is balanced over the 4 partitions.
  CHECK(double(nonzeros(wx)) / double(wx.count()) < 0.5);
  CHECK(double(nonzeros(wh)) / double(wh.count()) < 0.5);
  for (int g = 0; g < 4; ++g) {
    auto nnz = nonzeros_per_partition({&wx, &wh}, 4, g * 128, (g + 1) * 128);
    INFO("gate " << g);
    CHECK(nnz == std::vector<int64_t>(4, nnz[0]));
  }
  CHECK_THAT(policy.detail(), Catch::Contains("max/mean 1.000 over 4 partitions"));
  // h is on the Q1.15 grid.
  const Tensor& h = solver.train_net().blob("h");
  for (int64_t i = 0; i < h.count(); ++i) {
    const double k = double(h.data()[i]) * 32768.0;
    REQUIRE(k == std::round(k));
  }
  CHECK(accuracy > 0.5f);
}
