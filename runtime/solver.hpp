// Solver: the training loop (Caffe's Solver::Step): forward/backward over iter_size batches,
// gradient normalisation, clipping and L1/L2 regularisation, the update rule, periodic tests,
// atomic snapshots and resume. Plug-ins join the loop through TrainingHooks
// (runtime/training_hooks.hpp); data layers are reached through BatchSource. Observers receive
// progress, display-interval and test results (dsgtrain prints progress lines and writes
// metrics.jsonl and TensorBoard events from them).
//
// Data parallelism (set_communicator): every rank runs a Solver on the same config; each trains on
// its share of every global batch, the gradients are combined by a GradientExchange (dense
// allreduce unless another is set), so every rank applies the same update. Tests are split over
// the ranks too and their outputs averaged; only rank 0 writes snapshots, and every snapshot first
// checks that all ranks hold identical weights, solver history and sparsity state. When a hook
// changes structure on the host (a prune or quantize step), rank 0's weights and plug-in state
// are broadcast, so masks and codebooks are identical by construction.
#pragma once
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "runtime/communicator.hpp"
#include "runtime/config.hpp"
#include "runtime/device_array.hpp"
#include "runtime/gradient_exchange.hpp"
#include "runtime/net.hpp"
#include "runtime/net_cost.hpp"
#include "runtime/training_hooks.hpp"
#include "runtime/update_rule.hpp"

namespace dsg {

class BatchSource;

struct IterationReport {
  int iter;              // iterations completed
  int max_iter;
  float loss;            // loss of this iteration
  float smoothed_loss;   // mean over the last average_loss iterations
  float lr;
  double epoch;          // samples seen / train-set size
  double images_per_sec; // since the previous report (all ranks together)
  uint64_t exchange_bytes;       // gradient bytes this rank sent this iteration (0: one process)
  uint64_t dense_exchange_bytes; // what a dense exchange sends
};

// What the display interval logs (display > 0), at iteration `iter` before its update.
struct DisplayReport {
  int iter;
  double epoch;
  float loss;                                          // smoothed over average_loss iterations
  float lr;                                            // the rate this iteration's update uses
  double images_per_sec;                               // since the previous display, tests and snapshots excluded
  std::vector<std::pair<std::string, float>> outputs;  // train net outputs of this iteration
  std::vector<LayerStats> layers;                      // from the hooks (TrainingHooks::layer_stats), in order
};

struct TestReport {
  int iter;
  double epoch;
  std::vector<std::pair<std::string, float>> outputs;  // test net outputs, averaged over test_iter
  float loss;                                          // weighted sum of loss outputs
  float train_loss;                                    // smoothed train loss at this point
  double images_per_sec;                               // training throughput since the last test (all ranks)
  double exchange_bytes_per_iter;                      // gradient bytes per rank and iteration since the last test
  NetCost train_cost;                                  // of the last training pass (runtime/net_cost.hpp)
};

class Solver {
 public:
  Solver(const SolverParameter& param, const ConfigLocations& locations, const Context& ctx,
         std::string snapshot_prefix);

  // Trains until max_iter. Throws dsg::Error when the loss stops being finite (the last good
  // snapshot stays in place and is named in the message).
  void solve();
  // Writes <prefix>_iter_<N>.dsgmodel (rank 0; a collective under data parallelism: every rank
  // calls it, and the ranks' states are compared first); returns its path.
  std::string snapshot();
  // Loads weights and solver state written by snapshot() and positions the data streams.
  void restore(const std::string& path);
  // Runs the TEST net over test_iter batches from the start of the test set.
  TestReport test();

  Net& train_net() { return *train_net_; }
  Net* test_net() { return test_net_.get(); }
  int iter() const { return iter_; }
  const SolverParameter& param() const { return param_; }
  // Changes max_iter; only before hooks are installed (they may resolve schedules against it).
  void set_max_iter(int max_iter);
  // Data parallelism: trains as rank comm.rank() of comm.size() (see the top of this file). Call
  // before hooks are installed and before restore(); shards the data layers. `comm` outlives the
  // Solver.
  void set_communicator(Communicator& comm);
  Communicator& communicator() { return *comm_; }
  // Replaces the dense allreduce (distributed/dgc_exchange.hpp); after set_communicator.
  void set_gradient_exchange(std::unique_ptr<GradientExchange> exchange);
  GradientExchange* gradient_exchange() { return exchange_.get(); }
  // Debug / tests: compare a fingerprint of the weights across ranks every `every` iterations
  // (0: only at snapshots); a mismatch throws on every rank.
  void set_replica_check(int every) { replica_check_every_ = every; }
  // Installs plug-in hooks, called in installation order (see runtime/training_hooks.hpp).
  void add_hooks(std::unique_ptr<TrainingHooks> hooks);
  const std::vector<std::unique_ptr<TrainingHooks>>& hooks() const { return hooks_; }
  // Training samples per epoch (from the TRAIN net's data layer), 0 when unknown.
  int64_t train_set_size() const;
  // Samples per iteration over all ranks (batch * iter_size * ranks).
  int64_t samples_per_iter() const;
  // Per-iteration losses of this run, in order (used by determinism tests).
  const std::vector<float>& losses() const { return losses_; }
  const std::string& last_snapshot() const { return last_snapshot_; }
  // Wall-clock seconds spent in test passes and snapshots during solve() (excluded from throughput).
  double overhead_seconds() const { return overhead_seconds_; }

  std::function<void(const IterationReport&)> on_iteration;
  std::function<void(const TestReport&)> on_test;
  std::function<void(const DisplayReport&)> on_display;

 private:
  void apply_update(float rate);
  // Builds the snapshot's content (weights, solver state, plug-in state).
  ModelFile snapshot_model() const;
  // Data parallelism: fingerprints of `model` (without per-rank state) compared across ranks;
  // throws on every rank when they differ.
  void check_replicas(const ModelFile& model, const std::string& when);
  void compare_fingerprints(uint64_t fingerprint, const std::string& what);
  // Rank 0's weights and plug-in state to every rank (after a prune or quantize step).
  void broadcast_state();
  // Broadcasts rank 0's `bytes` (its size first).
  void broadcast_bytes(std::string* bytes);
  // Averages the non-learnable blobs (BatchNorm's running statistics) over the ranks.
  void average_state_blobs();
  double epoch() const;
  float smoothed_loss() const;

  SolverParameter param_;
  Context ctx_;
  std::string prefix_;
  std::unique_ptr<Net> train_net_, test_net_;
  std::unique_ptr<UpdateRule> rule_;
  std::vector<std::unique_ptr<TrainingHooks>> hooks_;
  std::vector<BatchSource*> train_data_, test_data_;
  int iter_ = 0;
  std::deque<float> window_;
  std::vector<float> losses_;
  std::string last_snapshot_;
  double overhead_seconds_ = 0;
  bool diffs_clean_ = false;  // all parameter diffs are zero (the update leaves them so)
  DeviceArray<float> clip_scratch_;  // the packed gradients for clipping on a device
  LocalCommunicator local_comm_;
  Communicator* comm_ = &local_comm_;
  std::unique_ptr<GradientExchange> exchange_;  // null: one process
  int replica_check_every_ = 0;
  uint64_t exchange_bytes_ = 0;  // gradient bytes sent since the last test
};

}  // namespace dsg
