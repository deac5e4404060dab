// What dsgtrain writes besides its log, from the Solver's reports (runtime/solver.hpp):
//   OUTPUT/metrics.jsonl  one JSON object per line:
//     {"kind": "train", "iteration", "epoch", "loss" (smoothed), "lr", "images_per_sec",
//      "layers": {"<layer>": {"sparsity": S, "bits": B}, ...}}    at every display interval
//        ("layers" lists the layers a sparsity policy or quantizer drives; each key only when
//        reported: sparsity with a policy, bits with a quantizer, 32 until it quantizes);
//     {"kind": "test", "iteration", "epoch", "train_loss", "test_loss", "<output>": value...,
//      "images_per_sec", ["exchange_bytes_per_iter"], [train_macs_dense, train_macs, search_ops,
//      inference_macs_dense, inference_macs, activation_bytes, activation_zvc_bytes]}  per test;
//     non-finite numbers are written as null.
//   --tensorboard DIR     TensorBoard events (apps/tensorboard_events.hpp), step = iteration:
//     train/loss, train/lr, train/images_per_sec, sparsity/<layer>, bits/<layer> per display;
//     test/<output> and test/total_loss (the weighted loss), cost/train_macs(_dense), cost/inference_macs(_dense) per test;
//     histograms weights/<layer>/<blob index> of every learnable blob per test.
// Only rank 0 writes them (dsgtrain constructs this on rank 0 only).
#pragma once
#include <fstream>
#include <memory>
#include <string>

#include "apps/tensorboard_events.hpp"
#include "runtime/solver.hpp"

namespace dsg::apps {

std::string metrics_row(const DisplayReport& r);
std::string metrics_row(const TestReport& r);

class TrainingOutputs {
 public:
  // Opens `metrics_path` (appending when `append`, a resumed run) and, when `tensorboard_dir` is
  // not empty, a new event file there; installs solver.on_display and solver.on_test. `solver`
  // outlives this object.
  TrainingOutputs(Solver& solver, const std::string& metrics_path, bool append, const std::string& tensorboard_dir);
  // The event file ("" without --tensorboard).
  std::string events_path() const { return events_ ? events_->path() : ""; }

 private:
  void display(const DisplayReport& r);
  void test(const TestReport& r);

  Solver& solver_;
  std::string metrics_path_;
  std::ofstream metrics_;
  std::unique_ptr<EventFileWriter> events_;
};

}  // namespace dsg::apps
