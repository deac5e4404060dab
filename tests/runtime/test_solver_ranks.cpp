// The Solver's data-parallel paths (Solver::set_communicator) without MPI: rank 0 of two whose peer
// is a mirror (it holds exactly rank 0's values, so a sum over the ranks is 2x, exact in floats),
// optionally one whose fingerprints differ (replicas that diverged). MPI end to end: tests/mpi/.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>

#include "datasets/data_layer.hpp"
#include "runtime/communicator.hpp"
#include "runtime/error.hpp"
#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"
#include "support/learnable_dataset.hpp"
#include "support/solver_configs.hpp"

using namespace dsg;
using test::TempDir;

namespace {

class MirrorPeer final : public Communicator {
 public:
  bool diverged = false;  // the peer's fingerprints (8-byte allgathers) differ from rank 0's
  int allreduces = 0, broadcasts = 0;
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string describe() const override { return "rank 0 of 2 with a mirror peer"; }
  void allreduce_sum(float* data, int64_t n, const Device&) override {
    ++allreduces;
    for (int64_t i = 0; i < n; ++i) data[i] += data[i];
  }
  void allgather(const void* in, void* out, int64_t bytes) override {
    std::memcpy(out, in, size_t(bytes));
    std::memcpy(static_cast<char*>(out) + bytes, in, size_t(bytes));
    if (diverged && bytes == 8) static_cast<unsigned char*>(out)[bytes] ^= 1;
  }
  void broadcast(void*, int64_t, int) override { ++broadcasts; }
  void barrier() override {}
};

std::string mlp(const TempDir& dir, int iters, const std::string& extra = "") {
  return test::tiny_mlp_solver(dir.path().string(), iters, "snapshot: 10\n" + extra);
}

// The dataset and the MLP config of `iters` iterations every case here trains.
struct Setup {
  TempDir dir;
  LoadedConfig c;
  explicit Setup(int iters) {
    test::write_learnable_idx(dir);
    set_num_threads(1);
    c = test::load_config(dir, mlp(dir, iters));
  }
};

}  // namespace

TEST_CASE("a rank trains on its shard: the configured batch is the global batch", "[solver][ranks]") {
  Setup setup(20);
  const TempDir& dir = setup.dir;
  const LoadedConfig& c = setup.c;
  Solver solver(c.solver, c.net_locations, test::cpu_ctx(7), dir.file("r"));
  CHECK(solver.samples_per_iter() == 16);
  MirrorPeer peer;
  solver.set_communicator(peer);
  CHECK(solver.samples_per_iter() == 16);  // two ranks x 8
  REQUIRE(solver.gradient_exchange() != nullptr);
  CHECK(solver.gradient_exchange()->describe() == "dense allreduce");
  solver.solve();
  CHECK(solver.train_net().blob("data").shape()[0] == 8);
  CHECK(peer.allreduces >= 20 * 2);  // at least the gradients and the loss of every iteration
  CHECK(std::filesystem::exists(dir.file("r_iter_20.dsgmodel")));
}

TEST_CASE("with a mirror peer the exchange is exact: it equals training on the shard alone", "[solver][ranks]") {
  // sum over two equal ranks = 2x, then / 2 = x exactly (power-of-two scaling), so the losses must
  // be bitwise those of one process reading shard 0 of 2 with no exchange.
  Setup setup(30);
  const TempDir& dir = setup.dir;
  const LoadedConfig& c = setup.c;
  Solver two(c.solver, c.net_locations, test::cpu_ctx(7), dir.file("two"));
  MirrorPeer peer;
  two.set_communicator(peer);
  two.solve();
  Solver alone(c.solver, c.net_locations, test::cpu_ctx(7), dir.file("alone"));
  for (auto& layer : alone.train_net().layers())
    if (auto* data = dynamic_cast<DataLayer*>(layer.get())) data->set_shard(0, 2);
  for (auto& layer : alone.test_net()->layers())
    if (auto* data = dynamic_cast<DataLayer*>(layer.get())) data->set_shard(0, 2);
  alone.solve();
  REQUIRE(two.losses().size() == alone.losses().size());
  for (size_t i = 0; i < two.losses().size(); ++i) {
    INFO("iteration " << i);
    CHECK(two.losses()[i] == alone.losses()[i]);
  }
}

TEST_CASE("diverged replicas stop the run at the snapshot, writing nothing", "[solver][ranks]") {
  Setup setup(20);
  const TempDir& dir = setup.dir;
  const LoadedConfig& c = setup.c;
  Solver solver(c.solver, c.net_locations, test::cpu_ctx(7), dir.file("d"));
  MirrorPeer peer;
  solver.set_communicator(peer);
  solver.on_iteration = [&](const IterationReport& r) {
    if (r.iter == 15) peer.diverged = true;  // after the first snapshot (iteration 10)
  };
  try {
    solver.solve();
    FAIL("the mismatch was not detected");
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK(what.find("replicas differ") != std::string::npos);
    CHECK(what.find("rank 1:") != std::string::npos);
    CHECK(what.find("the last good snapshot is " + dir.file("d_iter_10.dsgmodel")) != std::string::npos);
  }
  CHECK(std::filesystem::exists(dir.file("d_iter_10.dsgmodel")));
  CHECK_FALSE(std::filesystem::exists(dir.file("d_iter_20.dsgmodel")));
}

TEST_CASE("--check-replicas compares the weights every N iterations", "[solver][ranks]") {
  Setup setup(20);
  const TempDir& dir = setup.dir;
  const LoadedConfig& c = setup.c;
  Solver solver(c.solver, c.net_locations, test::cpu_ctx(7), dir.file("c"));
  MirrorPeer peer;
  peer.diverged = true;
  solver.set_communicator(peer);
  solver.set_replica_check(3);
  try {
    solver.solve();
    FAIL("the mismatch was not detected");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("the weights after iteration 2") != std::string::npos);
  }
  CHECK(solver.iter() == 3);
}

TEST_CASE("sharding refuses an uneven batch and late set-up", "[solver][ranks]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  LoadedConfig c = test::load_config(dir, mlp(dir, 5));
  Solver solver(c.solver, c.net_locations, test::cpu_ctx(7), dir.file("u"));
  struct ThreeRanks final : public Communicator {
    int rank() const override { return 1; }
    int size() const override { return 3; }
    std::string describe() const override { return "3"; }
    void allreduce_sum(float*, int64_t, const Device&) override {}
    void allgather(const void*, void*, int64_t) override {}
    void broadcast(void*, int64_t, int) override {}
    void barrier() override {}
  } three;
  CHECK_THROWS_WITH(solver.set_communicator(three), Catch::Contains("batch_size 16 does not split evenly over 3 ranks"));
  LocalCommunicator one;
  CHECK_THROWS_WITH(solver.set_gradient_exchange(nullptr), Catch::Contains("needs more than one rank"));
  solver.set_communicator(one);
  CHECK(solver.gradient_exchange() == nullptr);
}
