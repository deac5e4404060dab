// Runs `dsgcompress --thin` as a user would: on a snapshot of a filter-pruned tiny conv net trained
// by the dsgtrain binary, then loads the thinned prototxt + weights into a plain Net and compares
// its scores with the masked model's; and its one-line errors.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "runtime/config.hpp"
#include "runtime/model_file.hpp"
#include "runtime/net.hpp"
#include "runtime/parallel.hpp"
#include "support/run_tool.hpp"
#include "support/net_tolerance.hpp"
#include "support/sparse_configs.hpp"
#include "support/tolerance.hpp"

using dsg::test::TempDir;
namespace fs = std::filesystem;

namespace {

using dsg::test::last_line;
using dsg::test::run_tool;

// Trains the tiny conv net for 30 iterations (FILTER pruning of conv1 and ip1 at iteration 10
// when `pruned`) and returns the final snapshot.
std::string train(const TempDir& dir, const std::string& name, bool pruned) {
  using dsg::test::with_sparsity;
  std::string text = dsg::test::tiny_conv_solver(
      dir.path().string(), 30,
      pruned ? dsg::test::schedule("phase { mode: DENSE start_iter: 0 } phase { mode: PRUNE start_iter: 10 }") : "");
  if (pruned) {
    text = with_sparsity(text, "conv1", "policy: \"magnitude\" granularity: FILTER target_sparsity: 0.5 force: true");
    text = with_sparsity(text, "ip1", "policy: \"magnitude\" granularity: FILTER target_sparsity: 0.5");
  }
  std::ofstream(dir.file(name + ".prototxt")) << text;
  auto r = run_tool("dsgtrain", dir.file(name + ".prototxt") + " --threads 1 --seed 5 --output " + dir.file(name));
  INFO(r.output);
  REQUIRE(r.status == 0);
  const std::string model = dir.file(name + "/" + name + "_iter_30.dsgmodel");
  REQUIRE(fs::exists(model));
  return model;
}

// The TEST net of `param` with `weights`, run on the first test batch; returns the ip2 scores.
std::vector<float> scores(const dsg::NetParameter& param, const dsg::ModelFile& weights) {
  std::mt19937_64 rng(0);
  dsg::Net net(param, dsg::TEST, rng);
  net.params_from_proto(weights);
  dsg::Context ctx;
  ctx.phase = dsg::TEST;
  net.forward(ctx);
  const dsg::Tensor& t = net.blob("ip2");
  return std::vector<float>(t.data(), t.data() + t.count());
}

int64_t weight_count(const dsg::ModelFile& m) {
  int64_t n = 0;
  for (const auto& p : m.param()) n += p.blob().data_size();
  return n;
}

}  // namespace

TEST_CASE("dsgcompress --thin writes a smaller plain model with the masked model's outputs", "[apps][dsgcompress]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir, 256, 50);
  dsg::set_num_threads(1);
  const std::string model = train(dir, "pruned", true);
  auto r = run_tool("dsgcompress", "--thin " + model + " -o " + dir.file("thin/tiny"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Catch::Contains("conv1") && Catch::Contains("4 -> 2") && Catch::Contains("32 -> 16") &&
                           Catch::Contains("2 layer(s) thinned"));
  REQUIRE(fs::exists(dir.file("thin/tiny.prototxt")));
  REQUIRE(fs::exists(dir.file("thin/tiny.dsgmodel")));

  // The prototxt loads as a plain solver config: no sparsity anywhere.
  dsg::LoadedConfig thin = dsg::load_solver_config(dir.file("thin/tiny.prototxt"));
  CHECK_FALSE(thin.solver.has_schedule());
  for (const auto& layer : thin.solver.net_param().layer()) {
    INFO(layer.name());
    CHECK_FALSE(layer.has_sparsity_param());
  }
  const dsg::ModelFile thin_weights = dsg::read_model_file(dir.file("thin/tiny.dsgmodel"));
  CHECK(thin_weights.policy_size() == 0);
  CHECK_FALSE(thin_weights.has_solver_state());

  const dsg::ModelFile masked = dsg::read_model_file(model);
  std::vector<float> want = scores(masked.net(), masked);
  std::vector<float> got = scores(thin.solver.net_param(), thin_weights);
  REQUIRE(got.size() == want.size());
  // Chain reduction lengths (support/net_tolerance.hpp; the data are pixels in [0, 1]):
  // conv1 (1 * 9 + 1) + ip1 (4 * 10 * 10 + 1) + ip2 (32 + 1), counted at their unthinned sizes.
  const auto mag = dsg::test::magnitude_net(masked.net(), masked);
  const dsg::Tensor& m = mag->blob("ip2");
  REQUIRE(m.count() == int64_t(want.size()));
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("score " << i);
    REQUIRE(std::fabs(got[i] - want[i]) <= dsg::test::reduction_tolerance(10 + 401 + 33, m.data()[i]));
  }
  // conv1 4 -> 2 filters (36 + 4 -> 18 + 2), ip1 32 x 400 -> 16 x 200, ip2 4 x 32 -> 4 x 16.
  CHECK(weight_count(thin_weights) == 18 + 2 + 16 * 200 + 16 + 4 * 16 + 4);
  CHECK(weight_count(thin_weights) < weight_count(masked) / 3);
  CHECK(fs::file_size(dir.file("thin/tiny.dsgmodel")) < fs::file_size(model) / 3);
}

TEST_CASE("dsgcompress errors are one line with a non-zero exit", "[apps][dsgcompress][errors]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir, 64, 50);
  auto check_error = [&](const std::string& args, int status, const std::string& expected) {
    auto r = run_tool("dsgcompress", args);
    INFO(r.output);
    CHECK(r.status == status);
    CHECK_THAT(last_line(r.output), Catch::StartsWith("dsgcompress: error: ") && Catch::Contains(expected));
  };
  const std::string dense = train(dir, "dense", false);
  check_error("--thin " + dense + " -o " + dir.file("x"), 1, "holds no structured sparsity");
  std::ofstream(dir.file("junk.dsgmodel")) << "garbage";
  check_error("--thin " + dir.file("junk.dsgmodel") + " -o " + dir.file("x"), 1, "not a DSG model file");
  check_error("--thin " + dir.file("absent.dsgmodel") + " -o " + dir.file("x"), 1, "cannot open model file");
  check_error("--thin --decode " + dense + " -o " + dir.file("x"), 2, "choose one of --thin, --decode and --format onnx");
  auto no_output = run_tool("dsgcompress", "--thin " + dense);
  CHECK(no_output.status != 0);
  CHECK_THAT(no_output.output, Catch::Contains("--output is required"));
  CHECK_FALSE(fs::exists(dir.file("x.prototxt")));
}
