// The shipped configs load, and the CIFAR config trains when CIFAR-10 files are given with --data.
#include <catch2/catch.hpp>

#include <filesystem>

#include "datasets/data_paths.hpp"
#include "runtime/config.hpp"
#include "runtime/net_cost.hpp"
#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"
#include "sparsity/controller.hpp"
#include "support/learnable_dataset.hpp"

using namespace dsg;
namespace fs = std::filesystem;

TEST_CASE("every shipped config parses and validates", "[configs]") {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(std::string(DSG_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".prototxt") continue;
    INFO(entry.path());
    CHECK_NOTHROW(load_solver_config(entry.path().string()));
    ++count;
  }
  CHECK(count >= 3);
}

TEST_CASE("cifar10_quick trains on CIFAR-10 binary files given with --data", "[configs][cifar]") {
  test::TempDir dir;
  for (int b = 1; b <= 5; ++b) test::write_bytes(dir.file("data_batch_" + std::to_string(b) + ".bin"), test::cifar_records(b * 40, 40, 1));
  test::write_bytes(dir.file("test_batch.bin"), test::cifar_records(0, 100, 1));
  LoadedConfig c = load_solver_config(std::string(DSG_SOURCE_DIR) + "/configs/cifar10_quick.prototxt");
  resolve_data_sources(*c.solver.mutable_net_param(), c.config_dir, dir.path().string());
  c.solver.set_max_iter(3);
  c.solver.set_test_iter(0, 1);
  c.solver.set_test_interval(3);
  set_num_threads(1);
  Context ctx;
  ctx.seed = 1;
  Solver solver(c.solver, c.net_locations, ctx, dir.file("cifar"));
  install_sparsity(solver);
  CHECK(solver.train_set_size() == 200);
  CHECK(solver.train_net().blob("data").shape() == std::vector<int>{100, 3, 32, 32});
  solver.solve();
  REQUIRE(solver.losses().size() == 3);
  for (float l : solver.losses()) CHECK(std::isfinite(l));
}

TEST_CASE("vgg8_dsg trains on CIFAR-10 binary files with the Dynamic Sparse Graph", "[configs][cifar][dsg]") {
  test::TempDir dir;
  for (int b = 1; b <= 5; ++b) test::write_bytes(dir.file("data_batch_" + std::to_string(b) + ".bin"), test::cifar_records(b * 8, 8, 1));
  test::write_bytes(dir.file("test_batch.bin"), test::cifar_records(0, 8, 1));
  LoadedConfig c = load_solver_config(std::string(DSG_SOURCE_DIR) + "/configs/vgg8_dsg.prototxt");
  resolve_data_sources(*c.solver.mutable_net_param(), c.config_dir, dir.path().string());
  for (auto& layer : *c.solver.mutable_net_param()->mutable_layer())
    if (layer.type() == "Data") layer.mutable_data_param()->set_batch_size(4);
  c.solver.set_max_iter(2);
  c.solver.set_test_iter(0, 1);
  c.solver.set_test_interval(2);
  set_num_threads(1);
  Context ctx;
  ctx.seed = 1;
  Solver solver(c.solver, c.net_locations, ctx, dir.file("vgg8"));
  install_sparsity(solver);
  solver.solve();
  REQUIRE(solver.losses().size() == 2);
  for (float l : solver.losses()) CHECK(std::isfinite(l));
  const NetCost cost = measure_net_cost(solver.train_net());
  CHECK(cost.forward_macs < 0.3 * cost.dense_forward_macs);  // 20% kept in all but the classifier
  CHECK(cost.activation_zvc_bytes() < 0.5 * cost.activation_bytes());
}
