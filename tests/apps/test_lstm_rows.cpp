// configs/lstm_rows.prototxt (Fashion-MNIST read row by row by an LSTM): it loads, builds the
// expected shapes, and trains on small synthetic 28x28 IDX files given like --data.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "datasets/data_paths.hpp"
#include "datasets/synthetic_data.hpp"
#include "runtime/config.hpp"
#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"
#include "sparsity/controller.hpp"

using namespace dsg;

namespace {

const std::string kConfig = std::string(DSG_SOURCE_DIR) + "/configs/lstm_rows.prototxt";


}  // namespace

TEST_CASE("lstm_rows: the config loads as the rows LSTM classifier", "[configs][lstm_rows]") {
  LoadedConfig c = load_solver_config(kConfig);
  CHECK(c.solver.type() == "Adam");
  CHECK(c.solver.max_iter() == 3 * 938);
  const NetParameter& net = c.solver.net_param();
  std::vector<std::string> types;
  for (const auto& l : net.layer()) types.push_back(l.type());
  CHECK(types == std::vector<std::string>{"Data", "Data", "ImageToSequence", "LSTM", "Slice", "Silence", "Flatten",
                                          "InnerProduct", "Accuracy", "SoftmaxWithLoss"});
  for (const auto& l : net.layer()) {
    if (l.type() == "Data") CHECK(l.data_param().batch_size() == (l.include(0).phase() == TRAIN ? 64u : 100u));
    if (l.type() == "LSTM") CHECK(l.recurrent_param().num_output() == 128);
  }
}

TEST_CASE("lstm_rows: shapes and a few training iterations on synthetic IDX data", "[configs][lstm_rows]") {
  test::TempDir dir;
  test::write_striped_idx(dir, 640, 200);
  LoadedConfig c = load_solver_config(kConfig);
  resolve_data_sources(*c.solver.mutable_net_param(), c.config_dir, dir.path().string());
  c.solver.set_max_iter(40);
  c.solver.set_test_iter(0, 2);
  c.solver.set_test_interval(40);
  c.solver.set_display(0);
  set_num_threads(1);
  Context ctx;
  ctx.seed = 1;
  Solver solver(c.solver, c.net_locations, ctx, dir.file("lstm_rows"));
  install_sparsity(solver);
  CHECK(solver.train_set_size() == 640);

  Net& net = solver.train_net();
  CHECK(net.blob("data").shape() == std::vector<int>{64, 1, 28, 28});
  CHECK(net.blob("x").shape() == std::vector<int>{28, 64, 28});
  CHECK(net.blob("cont").shape() == std::vector<int>{28, 64});
  CHECK(net.blob("h").shape() == std::vector<int>{28, 64, 128});
  CHECK(net.blob("h_early").shape() == std::vector<int>{27, 64, 128});
  CHECK(net.blob("h_last").shape() == std::vector<int>{1, 64, 128});
  CHECK(net.blob("feat").shape() == std::vector<int>{64, 128});
  CHECK(net.blob("ip").shape() == std::vector<int>{64, 10});
  const Layer* lstm = net.layer_by_name("lstm");
  REQUIRE(lstm);
  REQUIRE(lstm->blobs().size() == 3);
  CHECK(lstm->blobs()[0]->shape() == std::vector<int>{512, 28});
  CHECK(lstm->blobs()[2]->shape() == std::vector<int>{512, 128});

  float accuracy = -1;
  solver.on_test = [&](const TestReport& r) {
    for (const auto& kv : r.outputs)
      if (kv.first == "accuracy") accuracy = kv.second;
  };
  solver.solve();
  const auto& losses = solver.losses();
  REQUIRE(losses.size() == 40);
  for (float l : losses) CHECK(std::isfinite(l));
  float first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += losses[size_t(i)], last += losses[losses.size() - 1 - size_t(i)];
  CHECK(last < 0.5f * first);  // the stripes are easy: the loss falls well within 40 steps
  CHECK(accuracy > 0.5f);      // 10 classes: chance is 0.1
}
