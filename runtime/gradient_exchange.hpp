// GradientExchange: how the Solver combines the ranks' gradients in data-parallel training
// (DESIGN.md "Many processes"). The Solver calls exchange() once per iteration, after backward and
// the iter_size normalisation, before clipping, regularisation and the update rule; afterwards
// every rank holds the same gradient, so every rank applies the same update.
//
// DenseExchange (here) sums the parameter arena's diff over the ranks and averages it: the update
// equals one process training on the whole global batch. The compressed exchange (DGC,
// distributed/dgc_exchange.hpp) sends only the largest accumulated entries.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "runtime/communicator.hpp"
#include "runtime/device.hpp"

namespace dsg {

class Net;

// Replaces `n` floats of `data` (on `device`) by their mean over the ranks, the same bits on every rank.
void allreduce_mean(Communicator& comm, float* data, int64_t n, const Device& device);

class GradientExchange {
 public:
  virtual ~GradientExchange() = default;
  // "dense allreduce", "DGC 99.9%": for the start-up line and reports.
  virtual std::string describe() const = 0;
  // The learnable diffs of the net hold this rank's gradient (the mean over its share of the
  // global batch). Leaves in them what every rank applies, identical on all ranks.
  virtual void exchange(int iter, const Device& device) = 0;
  // Whether exchange() already applied clipping, weight decay and momentum (DGC's momentum
  // correction): the Solver then steps w -= lr * lr_mult * diff and skips its own.
  virtual bool applies_momentum() const { return false; }
  // Gradient bytes this rank sent in the last exchange, and what a dense exchange sends.
  virtual uint64_t last_bytes() const = 0;
  virtual uint64_t dense_bytes() const = 0;
  // Extra lines for the display-interval log.
  virtual std::vector<std::string> report() const { return {}; }
  // Local state in snapshots (collective: every rank calls them).
  virtual void save(ModelFile* model) const { (void)model; }
  virtual void load(const ModelFile& model) { (void)model; }
};

// Sums the whole arena diff over the ranks and divides by their number.
class DenseExchange final : public GradientExchange {
 public:
  DenseExchange(Net& net, Communicator& comm) : net_(net), comm_(comm) {}
  std::string describe() const override { return "dense allreduce"; }
  void exchange(int iter, const Device& device) override;
  uint64_t last_bytes() const override { return dense_bytes(); }
  uint64_t dense_bytes() const override;

 private:
  Net& net_;
  Communicator& comm_;
};

}  // namespace dsg
