// End-to-end tests of the sparsity schedule through the Solver on the tiny learnable dataset:
// DSD (dense -> sparse -> re-dense), GRADUAL, iterative PRUNE, GLOBAL scope with caps, resume
// from a sparse snapshot, FILTER pruning of an InnerProduct, configuration errors, the
// first-convolution rule and the report lines.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <vector>

#include "datasets/data_layer.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"
#include "sparsity/controller.hpp"
#include "support/solver_configs.hpp"
#include "support/tolerance.hpp"

using namespace dsg;
using test::schedule;
using test::TempDir;
using test::with_sparsity;

namespace {

LoadedConfig load(const TempDir& dir, const std::string& text) { return test::load_config(dir, text); }
using test::cpu_ctx;
std::string error_of(const TempDir& dir, const std::string& text) { return test::setup_error(dir, text); }

// ip1 of the tiny MLP has 32 x 144 weights.
constexpr double kIp1 = 32 * 144;

// Runs `text` and records the first policy's realised sparsity after every iteration
// (index = iterations completed; [0] is unused).
std::vector<double> sparsity_trace(Solver& s) {
  std::vector<double> trace(size_t(s.param().max_iter()) + 1, -1.0);
  s.on_iteration = [&](const IterationReport& r) { trace[size_t(r.iter)] = install_sparsity(s).policies()[0]->sparsity(); };
  s.solve();
  return trace;
}

}  // namespace

TEST_CASE("DSD: dense -> PRUNE(0.8) -> re-dense", "[sparsity][controller]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  std::string text = test::tiny_mlp_solver(
      dir.path().string(), 60,
      schedule("phase { mode: DENSE start_iter: 0 } phase { mode: PRUNE start_iter: 20 lr_mult: 0.5 } "
               "phase { mode: DENSE start_iter: 40 lr_mult: 0.1 }"));
  LoadedConfig c = load(dir, with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.8"));
  Solver s(c.solver, c.net_locations, cpu_ctx(7), dir.file("dsd"));
  install_sparsity(s);
  std::vector<double> trace(61), lr(61);
  std::vector<float> sparse_weights;
  Tensor& w = *s.train_net().layer_by_name("ip1")->blobs()[0];
  s.on_iteration = [&](const IterationReport& r) {
    trace[size_t(r.iter)] = install_sparsity(s).policies()[0]->sparsity();
    lr[size_t(r.iter)] = r.lr;
    if (r.iter == 40) sparse_weights.assign(w.data(), w.data() + w.count());
  };
  s.solve();
  for (int it = 1; it <= 20; ++it) CHECK(trace[size_t(it)] < 0.01);
  for (int it = 21; it <= 40; ++it) {
    INFO("after iteration " << it);
    CHECK(std::fabs(trace[size_t(it)] - 0.8) <= 1.0 / kIp1);
  }
  CHECK(lr[30] == Approx(0.025));
  CHECK(lr[50] == Approx(0.005));
  // Re-dense: the masks are gone and the pruned weights train away from zero.
  CHECK(trace[41] < 0.8 - 1.0 / kIp1);
  CHECK(trace[60] < 0.2);
  REQUIRE(sparse_weights.size() == size_t(kIp1));
  int64_t pruned = 0, revived = 0;
  for (size_t i = 0; i < sparse_weights.size(); ++i)
    if (sparse_weights[i] == 0.0f) ++pruned, revived += w.data()[i] != 0.0f;
  CHECK(pruned >= int64_t(0.8 * kIp1) - 1);
  CHECK(double(revived) / double(pruned) > 0.8);
  const auto& policy = *install_sparsity(s).policies()[0];
  CHECK(policy.fired() == 1);
  CHECK_FALSE(policy.active());
}

TEST_CASE("GRADUAL pruning rises monotonically to the target", "[sparsity][controller]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  std::string text = test::tiny_mlp_solver(
      dir.path().string(), 60,
      schedule("phase { mode: GRADUAL start_iter: 0 prune_interval: 5 } phase { mode: HOLD start_iter: 50 }"));
  LoadedConfig c = load(dir, with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.8"));
  Solver s(c.solver, c.net_locations, cpu_ctx(7), dir.file("gradual"));
  install_sparsity(s);
  std::vector<double> trace = sparsity_trace(s);
  int increases = 0;
  for (int it = 2; it <= 60; ++it) {
    INFO("after iteration " << it);
    REQUIRE(trace[size_t(it)] >= trace[size_t(it - 1)]);
    increases += trace[size_t(it)] > trace[size_t(it - 1)];
  }
  CHECK(increases >= 8);
  // Cubic ramp: 0.8 * (1 - (1 - 20/45)^3) = 0.663 after the prune at iteration 20.
  CHECK(trace[21] == Approx(0.8 * (1 - std::pow(1 - 20.0 / 45.0, 3))).margin(1.0 / kIp1));
  // The target is reached one interval before the phase ends and held afterwards.
  CHECK(trace[44] < 0.8 - 1.0 / kIp1);
  for (int it = 46; it <= 60; ++it) CHECK(std::fabs(trace[size_t(it)] - 0.8) <= 1.0 / kIp1);
  CHECK(install_sparsity(s).policies()[0]->fired() == 10);
}

TEST_CASE("iterative PRUNE phases with growing sparsity_scale", "[sparsity][controller]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  std::string text = test::tiny_mlp_solver(
      dir.path().string(), 60,
      schedule("phase { mode: PRUNE start_iter: 0 sparsity_scale: 0.5 } "
               "phase { mode: PRUNE start_iter: 20 sparsity_scale: 0.75 } "
               "phase { mode: PRUNE start_iter: 40 sparsity_scale: 1.0 }"));
  LoadedConfig c = load(dir, with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.8"));
  Solver s(c.solver, c.net_locations, cpu_ctx(7), dir.file("iter"));
  install_sparsity(s);
  std::vector<double> trace = sparsity_trace(s);
  CHECK(std::fabs(trace[20] - 0.4) <= 1.0 / kIp1);
  CHECK(std::fabs(trace[40] - 0.6) <= 1.0 / kIp1);
  CHECK(std::fabs(trace[60] - 0.8) <= 1.0 / kIp1);
  CHECK(install_sparsity(s).policies()[0]->fired() == 3);
  CHECK(install_sparsity(s).policies()[0]->current_target() == Approx(0.8));
}

TEST_CASE("GLOBAL scope reaches the overall target with per-layer caps", "[sparsity][controller]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  std::string text =
      test::tiny_mlp_solver(dir.path().string(), 5, schedule("phase { mode: PRUNE start_iter: 0 }"));
  text = with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.8 scope: GLOBAL");
  // ip2's weights (fan-in 32) are larger than ip1's (fan-in 144): uncapped it would get well
  // under 80% but above its 25% cap, so the cap binds and ip1 takes the rest.
  text = with_sparsity(text, "ip2", "policy: \"magnitude\" target_sparsity: 0.8 scope: GLOBAL max_sparsity: 0.25");
  LoadedConfig c = load(dir, text);
  Solver s(c.solver, c.net_locations, cpu_ctx(7), dir.file("global"));
  install_sparsity(s);
  s.solve();
  const auto& pols = install_sparsity(s).policies();
  REQUIRE(pols.size() == 2);
  REQUIRE(pols[0]->layer_name() == "ip1");
  const double n1 = kIp1, n2 = 32 * 4;
  CHECK(pols[1]->sparsity() == Approx(0.25));
  CHECK(pols[0]->sparsity() > 0.8);
  double overall = (pols[0]->sparsity() * n1 + pols[1]->sparsity() * n2) / (n1 + n2);
  CHECK(std::fabs(overall - 0.8) <= 2.0 / (n1 + n2));
}

TEST_CASE("resuming from a snapshot inside a sparse phase keeps masks and losses", "[sparsity][controller]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  std::string text = test::tiny_mlp_solver(
      dir.path().string(), 50,
      "snapshot: 25\n" +
          schedule("phase { mode: DENSE start_iter: 0 } phase { mode: GRADUAL start_iter: 10 prune_interval: 5 } "
                   "phase { mode: HOLD start_iter: 40 }"),
      /*dropout=*/true);
  LoadedConfig c = load(dir, with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.7"));
  Solver full(c.solver, c.net_locations, cpu_ctx(7), dir.file("full"));
  install_sparsity(full);
  double sparsity_at_25 = -1;
  std::vector<uint8_t> mask_at_25;
  full.on_iteration = [&](const IterationReport& r) {
    if (r.iter != 25) return;
    sparsity_at_25 = install_sparsity(full).policies()[0]->sparsity();
    mask_at_25 = install_sparsity(full).policies()[0]->mask();
  };
  full.solve();
  REQUIRE(sparsity_at_25 > 0.3);
  Solver resumed(c.solver, c.net_locations, cpu_ctx(7), dir.file("resumed"));
  install_sparsity(resumed);
  resumed.restore(dir.file("full_iter_25.dsgmodel"));
  const auto& policy = *install_sparsity(resumed).policies()[0];
  CHECK(policy.active());
  CHECK(policy.sparsity() == sparsity_at_25);
  CHECK(policy.mask() == mask_at_25);
  resumed.solve();
  std::vector<float> tail(full.losses().begin() + 25, full.losses().end());
  CHECK(resumed.losses() == tail);
  CHECK(install_sparsity(resumed).policies()[0]->sparsity() == install_sparsity(full).policies()[0]->sparsity());
  CHECK(install_sparsity(resumed).policies()[0]->fired() == install_sparsity(full).policies()[0]->fired());
}

TEST_CASE("an InnerProduct with FILTER pruning trains", "[sparsity][controller]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  std::string text =
      test::tiny_mlp_solver(dir.path().string(), 150, schedule("phase { mode: PRUNE start_iter: 0 }"));
  LoadedConfig c = load(dir, with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.5 granularity: FILTER"));
  Solver s(c.solver, c.net_locations, cpu_ctx(7), dir.file("filter"));
  install_sparsity(s);
  float accuracy = -1;
  s.on_test = [&](const TestReport& r) {
    for (auto& kv : r.outputs)
      if (kv.first == "accuracy") accuracy = kv.second;
  };
  s.solve();
  const auto& policy = *install_sparsity(s).policies()[0];
  REQUIRE(policy.kept_outputs().size() == 16);
  CHECK(s.train_net().layer_by_name("ip1")->active_outputs() == policy.kept_outputs());
  REQUIRE(s.test_net() != nullptr);
  CHECK(s.test_net()->layer_by_name("ip1")->active_outputs() == policy.kept_outputs());
  const Layer& ip1 = *s.train_net().layer_by_name("ip1");
  std::vector<bool> kept(32, false);
  for (int m : policy.kept_outputs()) kept[size_t(m)] = true;
  for (int m = 0; m < 32; ++m) {
    INFO("neuron " << m);
    bool row_zero = true;
    for (int k = 0; k < 144; ++k) row_zero = row_zero && ip1.blobs()[0]->data()[m * 144 + k] == 0.0f;
    CHECK(row_zero == !kept[size_t(m)]);
    if (!kept[size_t(m)]) CHECK(ip1.blobs()[1]->data()[m] == 0.0f);
  }
  CHECK(policy.sparsity() == Approx(0.5));
  CHECK(s.losses().back() < s.losses().front() * 0.3f);
  CHECK(accuracy > 0.9f);
}

TEST_CASE("bad sparsity configurations give clear errors", "[sparsity][controller]") {
  TempDir dir;
  test::write_learnable_idx(dir, 64, 20);
  const std::string prune = schedule("phase { mode: PRUNE start_iter: 10 }");
  auto mlp = [&](const std::string& body, const std::string& sched) {
    return with_sparsity(test::tiny_mlp_solver(dir.path().string(), 60, sched), "ip1", body);
  };
  CHECK_THAT(error_of(dir, mlp("policy: \"bogus\" target_sparsity: 0.5", prune)),
             Catch::Contains("ip1") && Catch::Contains("unknown sparsity policy 'bogus'"));
  for (const char* t : {"1.0", "-0.1"}) {
    INFO("target_sparsity " << t);
    CHECK_THAT(error_of(dir, mlp(std::string("policy: \"magnitude\" target_sparsity: ") + t, prune)),
               Catch::Contains("ip1") && Catch::Contains("target_sparsity must be in [0, 1)"));
  }
  CHECK_THAT(error_of(dir, mlp("policy: \"magnitude\" target_sparsity: 0.5 granularity: KERNEL", prune)),
             Catch::Contains("ip1") && Catch::Contains("KERNEL"));
  CHECK_THAT(error_of(dir, mlp("policy: \"magnitude\" target_sparsity: 0.5",
                               schedule("phase { mode: DENSE start_iter: 0 } phase { mode: PRUNE start_iter: 60 }"))),
             Catch::Contains("ip1") && Catch::Contains("never fires"));
  CHECK_THAT(error_of(dir, mlp("policy: \"magnitude\" target_sparsity: 0.5",
                               schedule("phase { mode: PRUNE start_iter: 0 layer: \"ip2\" }"))),
             Catch::Contains("ip2") && Catch::Contains("no sparsity policy"));
  CHECK_THAT(error_of(dir, mlp("policy: \"magnitude\" target_sparsity: 0.5 quality: 1.0", prune)),
             Catch::Contains("ip1") && Catch::Contains("exactly one of target_sparsity and quality"));
  CHECK_THAT(error_of(dir, mlp("policy: \"ese\" target_sparsity: 0.5 num_partitions: 5", prune)),
             Catch::Contains("ip1") && Catch::Contains("M = 32") && Catch::Contains("N = 5"));
  CHECK_THAT(error_of(dir, mlp("policy: \"magnitude\" target_sparsity: 0.5", "")), Catch::Contains("no schedule"));
  CHECK_THAT(error_of(dir, test::tiny_mlp_solver(dir.path().string(), 60, prune)),
             Catch::Contains("no layer has a sparsity_param"));
  // The same config with a schedule that fires is accepted.
  CHECK(error_of(dir, mlp("policy: \"magnitude\" target_sparsity: 0.5", prune)).empty());
}

TEST_CASE("the first convolution stays dense unless forced", "[sparsity][controller]") {
  TempDir dir;
  test::write_learnable_idx(dir, 64, 20);
  set_num_threads(1);
  for (bool force : {false, true}) {
    INFO("force " << force);
    std::string text = test::tiny_conv_solver(dir.path().string(), 4, schedule("phase { mode: PRUNE start_iter: 0 }"));
    text = with_sparsity(text, "conv1",
                         std::string("policy: \"magnitude\" target_sparsity: 0.5") + (force ? " force: true" : ""));
    text = with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.5");
    LoadedConfig c = load(dir, text);
    Solver s(c.solver, c.net_locations, cpu_ctx(7), dir.file("conv"));
    install_sparsity(s);
    s.solve();
    const Tensor& w = *s.train_net().layer_by_name("conv1")->blobs()[0];
    int64_t zeros = 0;
    for (int64_t i = 0; i < w.count(); ++i) zeros += w.data()[i] == 0.0f;
    const auto& pols = install_sparsity(s).policies();
    if (force) {
      REQUIRE(pols.size() == 2);
      CHECK(pols[0]->layer_name() == "conv1");
      CHECK(zeros == w.count() / 2);
    } else {
      REQUIRE(pols.size() == 1);
      CHECK(pols[0]->layer_name() == "ip1");
      CHECK(zeros == 0);
    }
  }
}

TEST_CASE("report lines name fired count, sparsity and target", "[sparsity][controller]") {
  TempDir dir;
  test::write_learnable_idx(dir, 64, 20);
  set_num_threads(1);
  std::string text = test::tiny_mlp_solver(dir.path().string(), 3, schedule("phase { mode: PRUNE start_iter: 0 }"));
  text = with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.5");
  text = with_sparsity(text, "ip2", "policy: \"magnitude\" quality: 0.5");
  LoadedConfig c = load(dir, text);
  Solver s(c.solver, c.net_locations, cpu_ctx(7), dir.file("report"));
  install_sparsity(s);
  s.solve();
  auto lines = install_sparsity(s).status_lines();
  REQUIRE(lines.size() == 2);
  // report() (the display log) returns only lines that changed since its previous call.
  CHECK(install_sparsity(s).report().size() <= 2);
  CHECK(install_sparsity(s).report().empty());
  CHECK(install_sparsity(s).status_lines() == lines);
  CHECK_THAT(lines[0], Catch::Contains("ip1") && Catch::Contains("fired 1 times") && Catch::Contains("sparsity 50.00%") &&
                           Catch::Contains("target 50.00%"));
  CHECK_THAT(lines[1], Catch::Contains("ip2") && Catch::Contains("fired") && Catch::Contains("sparsity") &&
                           Catch::Contains("target"));
  // Quality mode: the threshold 0.5 * std(W) of uniform (xavier) weights prunes about 29% of them.
  const auto& q = *install_sparsity(s).policies()[1];
  CHECK(q.current_target() > 0.15f);
  CHECK(q.current_target() < 0.45f);
  CHECK(q.sparsity() == Approx(q.current_target()).margin(1.0 / 128));
  CHECK(install_sparsity(s).describe().size() == 3);  // one phase, two policies
}

TEST_CASE("CHANNEL pruning makes the layer skip its pruned inputs and gives the same outputs", "[sparsity][controller]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  std::string text =
      test::tiny_mlp_solver(dir.path().string(), 60, schedule("phase { mode: PRUNE start_iter: 0 }"));
  LoadedConfig c = load(dir, with_sparsity(text, "ip2", "policy: \"magnitude\" target_sparsity: 0.5 granularity: CHANNEL"));
  Solver s(c.solver, c.net_locations, cpu_ctx(7), dir.file("channel"));
  install_sparsity(s);
  s.solve();
  Layer& ip2 = *s.train_net().layer_by_name("ip2");
  const std::vector<int> kept = ip2.active_inputs();
  REQUIRE(kept.size() == 16);  // 32 inputs, half of the columns pruned
  for (int k : kept) {
    bool column_live = false;
    for (int m = 0; m < 4; ++m) column_live = column_live || ip2.blobs()[0]->data()[m * 32 + k] != 0.0f;
    CHECK(column_live);
  }
  CHECK(s.test_net()->layer_by_name("ip2")->active_inputs() == kept);
  // The reduced GEMM gives the dense result of the masked weights.
  Context ctx = cpu_ctx(7);
  ctx.phase = TEST;
  auto* data = dynamic_cast<DataLayer*>(s.test_net()->layers()[0].get());
  REQUIRE(data != nullptr);
  data->seek(0);
  s.test_net()->forward(ctx);
  const Tensor& scores = s.test_net()->blob("ip2");
  std::vector<float> reduced(scores.data(), scores.data() + scores.count());
  s.test_net()->layer_by_name("ip2")->set_active_inputs({});
  data->seek(0);  // the same batch again
  s.test_net()->forward(ctx);
  // Tolerance (support/tolerance.hpp): 32 products plus the bias per score.
  const Layer& test_ip2 = *s.test_net()->layer_by_name("ip2");
  const Tensor& h = s.test_net()->blob(test_ip2.param().bottom(0));
  const float* w = test_ip2.blobs()[0]->data();
  const float* b = test_ip2.blobs()[1]->data();
  const int outputs = test_ip2.blobs()[0]->shape(0), inputs = test_ip2.blobs()[0]->shape(1);
  REQUIRE(scores.count() == h.count() / inputs * outputs);
  std::vector<double> tol(size_t(scores.count()));
  for (int64_t i = 0; i < scores.count(); ++i) {
    const int64_t n = i / outputs, o = i % outputs;
    test::ReductionBound bound;
    bound.add(b[o]);
    for (int k = 0; k < inputs; ++k) bound.add(double(w[o * inputs + k]) * h.data()[n * inputs + k]);
    tol[size_t(i)] = bound.tolerance();
  }
  test::check_within("ip2", scores.count(), scores.data(), reduced, tol);
  CHECK(s.losses().back() < s.losses().front());
}
