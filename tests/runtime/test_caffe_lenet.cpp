// Caffe's own LeNet solver and train/test net (examples/mnist), written in Caffe's syntax with only
// the data layers pointed at IDX files, load and train.
#include <catch2/catch.hpp>

#include <filesystem>

#include "datasets/synthetic_data.hpp"
#include "runtime/config.hpp"
#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"

using namespace dsg;

TEST_CASE("Caffe's LeNet solver and net load and train on Fashion-MNIST", "[caffe][train]") {
  std::string solver_path = std::string(DSG_SOURCE_DIR) + "/tests/data/caffe_lenet/lenet_solver.prototxt";
  LoadedConfig c = load_solver_config(solver_path);
  CHECK(c.solver.net_param().name() == "LeNet");
  CHECK(c.solver.net_param().layer_size() == 11);
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    WARN("SKIPPED: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  set_num_threads(2);
  test::TempDir dir;
  c.solver.set_max_iter(300);
  c.solver.set_test_interval(300);
  Context ctx;
  ctx.seed = 1;
  Solver solver(c.solver, c.net_locations, ctx, dir.file("lenet"));
  float accuracy = 0;
  solver.on_test = [&](const TestReport& r) {
    for (auto& kv : r.outputs)
      if (kv.first == "accuracy") accuracy = kv.second;
  };
  solver.solve();
  // 300 iterations (1/3 epoch) of LeNet on Fashion-MNIST: well above chance.
  CHECK(accuracy > 0.75f);
}
