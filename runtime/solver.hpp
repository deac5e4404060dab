// Solver: the training loop (Caffe's Solver::Step): forward/backward over iter_size batches,
// gradient normalisation, clipping and L1/L2 regularisation, the update rule, periodic tests,
// atomic snapshots and resume. Plug-ins join the loop through TrainingHooks
// (runtime/training_hooks.hpp); data layers are reached through BatchSource. Observers receive
// progress and test results (dsgtrain prints progress lines and writes metrics.jsonl from them).
#pragma once
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "runtime/config.hpp"
#include "runtime/device_array.hpp"
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
  double images_per_sec; // since the previous report
};

struct TestReport {
  int iter;
  double epoch;
  std::vector<std::pair<std::string, float>> outputs;  // test net outputs, averaged over test_iter
  float loss;                                          // weighted sum of loss outputs
  float train_loss;                                    // smoothed train loss at this point
  double images_per_sec;                               // training throughput since the last test
  NetCost train_cost;                                  // of the last training pass (runtime/net_cost.hpp)
};

class Solver {
 public:
  Solver(const SolverParameter& param, const ConfigLocations& locations, const Context& ctx,
         std::string snapshot_prefix);

  // Trains until max_iter. Throws dsg::Error when the loss stops being finite (the last good
  // snapshot stays in place and is named in the message).
  void solve();
  // Writes <prefix>_iter_<N>.dsgmodel; returns its path.
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
  // Installs plug-in hooks, called in installation order (see runtime/training_hooks.hpp).
  void add_hooks(std::unique_ptr<TrainingHooks> hooks);
  const std::vector<std::unique_ptr<TrainingHooks>>& hooks() const { return hooks_; }
  // Training samples per epoch (from the TRAIN net's data layer), 0 when unknown.
  int64_t train_set_size() const;
  int64_t samples_per_iter() const;
  // Per-iteration losses of this run, in order (used by determinism tests).
  const std::vector<float>& losses() const { return losses_; }
  const std::string& last_snapshot() const { return last_snapshot_; }
  // Wall-clock seconds spent in test passes and snapshots during solve() (excluded from throughput).
  double overhead_seconds() const { return overhead_seconds_; }

  std::function<void(const IterationReport&)> on_iteration;
  std::function<void(const TestReport&)> on_test;

 private:
  void apply_update(float rate);
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
  bool diffs_clean_ = false;
  DeviceArray<float> clip_scratch_;  // the packed gradients for clipping on a device  // all parameter diffs are zero (the update leaves them so)
};

}  // namespace dsg
