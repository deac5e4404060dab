#include "runtime/solver.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "runtime/batch_source.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/lr_policy.hpp"
#include "runtime/model_file.hpp"
#include "runtime/ops.hpp"

namespace dsg {

using Clock = std::chrono::steady_clock;

Solver::Solver(const SolverParameter& param, const ConfigLocations& locations, const Context& ctx,
               std::string snapshot_prefix)
    : param_(param), ctx_(ctx), prefix_(std::move(snapshot_prefix)) {
  std::mt19937_64 rng(ctx.seed);
  train_net_ = std::make_unique<Net>(param_.net_param(), TRAIN, rng, locations.layer);
  if (param_.test_iter_size() > 0) {
    test_net_ = std::make_unique<Net>(param_.net_param(), TEST, rng, locations.layer);
    test_net_->share_params_from(*train_net_);
  }
  rule_ = update_rule_registry().create(param_.type(), param_);
  rule_->init(train_net_->learnable_params(), ctx_.device);
  for (auto& l : train_net_->layers())
    if (auto* d = dynamic_cast<BatchSource*>(l.get())) train_data_.push_back(d);
  if (test_net_)
    for (auto& l : test_net_->layers())
      if (auto* d = dynamic_cast<BatchSource*>(l.get())) test_data_.push_back(d);
  for (const auto& p : train_net_->learnable_params())
    if (p.tensor->count() == 0) throw Error("layer '" + p.layer + "' has an empty parameter");
}

void Solver::set_max_iter(int max_iter) {
  if (!hooks_.empty()) throw Error("set_max_iter after training hooks were installed (they resolve schedules against it)");
  param_.set_max_iter(max_iter);
}

void Solver::set_communicator(Communicator& comm) {
  if (!hooks_.empty()) throw Error("set_communicator after training hooks were installed");
  if (iter_ != 0) throw Error("set_communicator after training started or resumed");
  if (comm_->size() > 1) throw Error("set_communicator called twice");
  if (comm.size() == 1) {
    comm_ = &comm;
    return;
  }
  if (train_data_.empty())
    throw Error(strfmt("data-parallel training over %d ranks needs a Data layer in the TRAIN net (each rank trains "
                       "on its share of every batch)",
                       comm.size()));
  // Every source must split evenly before any is sharded (an error leaves the Solver as it was).
  for (const auto* sources : {&train_data_, &test_data_})
    for (auto* d : *sources)
      if (d->batch_size() % comm.size() != 0)
        throw Error(strfmt("batch_size %d does not split evenly over %d ranks", d->batch_size(), comm.size()),
                    strfmt("use a batch_size divisible by %d (it is the global batch; each rank takes batch_size / "
                           "ranks)",
                           comm.size()));
  for (auto* d : train_data_) d->set_shard(comm.rank(), comm.size());
  for (auto* d : test_data_) d->set_shard(comm.rank(), comm.size());
  comm_ = &comm;
  exchange_ = std::make_unique<DenseExchange>(*train_net_, comm);
}

void Solver::set_gradient_exchange(std::unique_ptr<GradientExchange> exchange) {
  if (comm_->size() == 1) throw Error("a gradient exchange needs more than one rank (run under mpirun -np N)");
  exchange_ = std::move(exchange);
}

void Solver::add_hooks(std::unique_ptr<TrainingHooks> hooks) {
  hooks->set_device(ctx_.device);
  hooks_.push_back(std::move(hooks));
}

int64_t Solver::train_set_size() const { return train_data_.empty() ? 0 : train_data_.front()->dataset_size(); }

int64_t Solver::samples_per_iter() const {
  int64_t batch = train_data_.empty() ? 1 : train_data_.front()->batch_size();
  return batch * param_.iter_size() * comm_->size();
}

float Solver::smoothed_loss() const {
  if (window_.empty()) return NAN;
  double s = 0;
  for (float v : window_) s += v;
  return float(s / window_.size());
}

double Solver::epoch() const {
  int64_t n = train_set_size();
  return n ? double(iter_) * samples_per_iter() / n : 0.0;
}

void Solver::apply_update(float rate) {
  auto& params = train_net_->learnable_params();
  const Device& dev = ctx_.device;
  const DeviceOps& ops = ops_for(dev);
  // Normalise over iter_size.
  if (param_.iter_size() > 1)
    ops.scale(int64_t(train_net_->arena_size()), 1.0f / param_.iter_size(), train_net_->arena_diff(dev));
  // Data parallelism: from here on every rank holds the same gradient.
  if (exchange_) exchange_->exchange(iter_, dev);
  if (exchange_ && exchange_->applies_momentum()) {
    // The exchange folded clipping, decay and momentum into the direction (DGC's momentum
    // correction): a plain step.
    for (const auto& p : params) {
      if (p.lr_mult == 0) continue;
      Tensor& t = *p.tensor;
      ops.axpy(t.count(), -rate * p.lr_mult, t.diff(dev), t.mutable_data(dev));
      ops.fill(t.count(), 0.0f, t.mutable_diff(dev));
    }
    diffs_clean_ = true;
    average_state_blobs();
    return;
  }
  // Clip by the global L2 norm.
  if (param_.clip_gradients() > 0) {
    double sumsq = 0;
    if (dev.type == DeviceType::CPU) {
      for (const auto& p : params) sumsq += ops.sumsq(p.tensor->count(), p.tensor->diff(dev));
    } else {
      // On a device every reduction is a read back to the host: pack the gradients into one
      // device buffer so that clipping costs one scalar read per iteration.
      int64_t total = 0;
      for (const auto& p : params) total += p.tensor->count();
      clip_scratch_.resize(size_t(total));
      float* packed = clip_scratch_.mutable_on(dev);
      int64_t offset = 0;
      for (const auto& p : params) {
        ops.copy(p.tensor->count(), p.tensor->diff(dev), packed + offset);
        offset += p.tensor->count();
      }
      sumsq = ops.sumsq(total, packed);
    }
    double norm = std::sqrt(sumsq);
    if (norm > param_.clip_gradients()) {
      float s = float(param_.clip_gradients() / norm);
      for (const auto& p : params) ops.scale(p.tensor->count(), s, p.tensor->mutable_diff(dev));
    }
  }
  const bool l1 = param_.regularization_type() == "L1";
  for (size_t i = 0; i < params.size(); ++i) {
    const LearnableParam& p = params[i];
    if (p.lr_mult == 0) continue;
    Tensor& t = *p.tensor;
    float decay = param_.weight_decay() * p.decay_mult;
    if (!l1 && rule_->fused_l2_update(i, t, rate * p.lr_mult, decay)) continue;  // leaves g = 0
    if (decay != 0) {
      if (l1) ops.l1_decay(t.count(), decay, t.data(dev), t.mutable_diff(dev));
      else ops.l2_decay(t.count(), decay, t.data(dev), t.mutable_diff(dev));
    }
    rule_->compute_step(i, t, rate * p.lr_mult, iter_);
    ops.axpy(t.count(), -1.0f, t.diff(dev), t.mutable_data(dev));  // w -= step
    ops.fill(t.count(), 0.0f, t.mutable_diff(dev));
  }
  // Every learnable diff is zero now; parameters that do not learn never receive gradients.
  diffs_clean_ = true;
  average_state_blobs();
}

void Solver::average_state_blobs() {
  if (comm_->size() == 1) return;
  for (Tensor* t : train_net_->state_blobs()) allreduce_mean(*comm_, t->mutable_data(ctx_.device), t->count(), ctx_.device);
}

TestReport Solver::test() {
  if (!test_net_) throw Error("the solver has no test_iter, so there is no TEST net");
  for (auto* d : test_data_) d->seek(0);
  Context ctx = ctx_;
  ctx.phase = TEST;
  ctx.iteration = iter_;
  ctx.check_transfers = false;  // the check watches training passes
  const auto& names = test_net_->output_names();
  std::vector<double> sums(names.size(), 0.0);
  std::vector<int64_t> counts(names.size(), 0);
  double loss = 0;
  const int n = param_.test_iter(0);
  const DeviceOps& ops = ops_for(ctx.device);
  for (int i = 0; i < n; ++i) {
    loss += test_net_->forward(ctx);
    for (size_t k = 0; k < names.size(); ++k) {
      const Tensor& t = test_net_->blob(names[k]);
      if (t.count() != 1) continue;
      sums[k] += ops.sum(1, t.data(ctx.device));  // a scalar read, not a copy of the buffer
      counts[k]++;
    }
  }
  if (comm_->size() > 1) {  // every rank tested its share of each batch: average over the ranks
    std::vector<float> packed(names.size() + 1);
    packed[0] = float(loss);
    for (size_t k = 0; k < names.size(); ++k) packed[k + 1] = float(sums[k]);
    comm_->allreduce_sum(packed.data(), int64_t(packed.size()), Device::cpu());
    loss = double(packed[0]) / comm_->size();
    for (size_t k = 0; k < names.size(); ++k) sums[k] = double(packed[k + 1]) / comm_->size();
  }
  TestReport report{};
  report.iter = iter_;
  report.epoch = epoch();
  report.loss = float(loss / n);
  for (size_t k = 0; k < names.size(); ++k)
    if (counts[k]) report.outputs.emplace_back(names[k], float(sums[k] / counts[k]));
  report.train_loss = smoothed_loss();
  log_info(strfmt("Iteration %d, Testing net (#0)", iter_));
  for (size_t k = 0; k < report.outputs.size(); ++k)
    log_info(strfmt("    Test net output #%zu: %s = %g", k, report.outputs[k].first.c_str(), report.outputs[k].second));
  return report;
}

void Solver::solve() {
  const int max_iter = param_.max_iter();
  log_info(strfmt("Solving %s (%s, %d iterations, %lld samples/iteration)", train_net_->name().c_str(),
                  param_.type().c_str(), max_iter, static_cast<long long>(samples_per_iter())));
  const int average = std::max(1, param_.average_loss());
  auto window_start = Clock::now();
  int window_iter = iter_;
  double window_overhead = overhead_seconds_;
  auto test_start = Clock::now();
  int test_iter_start = iter_;
  auto run_test = [&] {
    auto begin = Clock::now();
    double secs = std::chrono::duration<double>(begin - test_start).count();
    const bool trained = iter_ > 0 && !losses_.empty();
    NetCost cost = trained ? measure_net_cost(*train_net_) : NetCost{};
    TestReport r = test();
    r.train_cost = cost;
    // Not "Iteration N, ...": Caffe's parse_log.sh counts every such line as an iteration.
    if (trained) log_info(strfmt("Train net cost at iteration %d: ", iter_) + describe_net_cost(cost));
    overhead_seconds_ += std::chrono::duration<double>(Clock::now() - begin).count();
    r.images_per_sec = secs > 0 ? double(iter_ - test_iter_start) * samples_per_iter() / secs : 0;
    r.exchange_bytes_per_iter = iter_ > test_iter_start ? double(exchange_bytes_) / (iter_ - test_iter_start) : 0;
    exchange_bytes_ = 0;
    if (on_test) on_test(r);
    test_start = Clock::now();
    test_iter_start = iter_;
  };
  // The parameters move to the device once, here, not inside the first pass.
  if (ctx_.device.type != DeviceType::CPU) train_net_->to_device(ctx_.device);
  const int first_iter = iter_;
  while (iter_ < max_iter) {
    bool changed = false;
    for (auto& h : hooks_) {
      h->begin_iteration(iter_);
      changed = h->changed_structure() || changed;
    }
    if (changed && comm_->size() > 1) broadcast_state();  // masks and codebooks: rank 0's
    // The transfer check watches the steady state: not the first iteration of a run (first uses
    // of layer state) nor one after a hook changed things on the host (a prune step).
    const bool check_transfers = ctx_.check_transfers && iter_ > first_iter && !changed;
    if (test_net_ && param_.test_interval() > 0 && iter_ % param_.test_interval() == 0 &&
        (iter_ > 0 || param_.test_initialization()))
      run_test();
    if (!diffs_clean_) train_net_->zero_param_diffs(ctx_.device);
    diffs_clean_ = false;
    double loss = 0;
    for (int k = 0; k < param_.iter_size(); ++k) {
      Context ctx = ctx_;
      ctx.phase = TRAIN;
      ctx.iteration = int64_t(iter_) * param_.iter_size() + k;
      ctx.check_transfers = check_transfers;
      loss += train_net_->forward_backward(ctx);
    }
    loss /= param_.iter_size();
    if (comm_->size() > 1) {  // the loss of the global batch; every rank stops together on NaN
      float global = float(loss);
      comm_->allreduce_sum(&global, 1, Device::cpu());
      loss = double(global) / comm_->size();
    }
    if (!std::isfinite(loss)) {
      std::string kept = last_snapshot_.empty() ? std::string("no snapshot was written yet")
                                                : "the last good snapshot is " + last_snapshot_;
      throw Error(strfmt("training diverged: loss is %g at iteration %d; stopped without saving the diverged "
                         "weights (%s)",
                         loss, iter_, kept.c_str()),
                  "lower base_lr or add clip_gradients");
    }
    losses_.push_back(float(loss));
    window_.push_back(float(loss));
    if (int(window_.size()) > average) window_.pop_front();
    const float smoothed = smoothed_loss();
    float rate = learning_rate(param_, iter_);
    for (const auto& h : hooks_) rate *= h->lr_mult(iter_);
    if (param_.display() > 0 && iter_ % param_.display() == 0) {
      double secs = std::chrono::duration<double>(Clock::now() - window_start).count();
      double ips = secs > 0 ? (iter_ - window_iter) / secs : 0;
      const double train_secs = secs - (overhead_seconds_ - window_overhead);
      DisplayReport report{iter_, epoch(), smoothed, rate,
                           train_secs > 0 ? double(iter_ - window_iter) * samples_per_iter() / train_secs : 0.0,
                           {}, {}};
      // Caffe's lines as both of its log parsers read them (tools/extra/parse_log.sh takes the
      // loss as the 9th field of "Iteration N, loss = X" and counts every other line that holds
      // "Iteration " after the first test as a test; parse_log.py files the train outputs under
      // the last "lr = "): the loss, the rate, the throughput (no "Iteration "), the outputs.
      log_info(strfmt("Iteration %d, loss = %g", iter_, smoothed));
      log_info(strfmt("Iteration %d, lr = %g", iter_, rate));
      log_info(strfmt("    %.4g iter/s, %.3fs/%d iters", ips, secs, iter_ - window_iter));
      int k = 0;
      for (const auto& name : train_net_->output_names()) {
        const Tensor& t = train_net_->blob(name);
        if (t.count() != 1) continue;
        const float value = float(ops_for(ctx_.device).sum(1, t.data(ctx_.device)));
        log_info(strfmt("    Train net output #%d: %s = %g", k++, name.c_str(), value));
        report.outputs.emplace_back(name, value);
      }
      for (const auto& h : hooks_) {
        for (const auto& line : h->report()) log_info(line);
        for (auto& stats : h->layer_stats()) report.layers.push_back(std::move(stats));
      }
      if (exchange_)
        for (const auto& line : exchange_->report()) log_info(line);
      if (on_display) on_display(report);
      window_start = Clock::now();
      window_iter = iter_;
      window_overhead = overhead_seconds_;
    }
    for (auto& h : hooks_) h->before_update(rate);
    if (check_transfers) {
      const TransferStats before = transfer_stats();
      apply_update(rate);
      const TransferStats now = transfer_stats();
      if (now.to_device_count != before.to_device_count || now.to_host_count != before.to_host_count)
        throw Error(strfmt("transfer check: the %s update of iteration %d copied between host and device: %llu to "
                           "the device, %llu to the host",
                           param_.type().c_str(), iter_,
                           static_cast<unsigned long long>(now.to_device_count - before.to_device_count),
                           static_cast<unsigned long long>(now.to_host_count - before.to_host_count)));
    } else {
      apply_update(rate);
    }
    for (auto& h : hooks_) h->after_update();
    ++iter_;
    const uint64_t sent = exchange_ ? exchange_->last_bytes() : 0;
    exchange_bytes_ += sent;
    if (replica_check_every_ > 0 && comm_->size() > 1 && iter_ % replica_check_every_ == 0) {
      const float* w = train_net_->arena_data();
      const uint64_t fp = fingerprint_bytes(w, train_net_->arena_size() * sizeof(float));
      compare_fingerprints(fp, strfmt("the weights after iteration %d", iter_ - 1));
    }
    if (on_iteration) {
      double secs = std::chrono::duration<double>(Clock::now() - test_start).count();
      double ips = secs > 0 ? double(iter_ - test_iter_start) * samples_per_iter() / secs : 0;
      on_iteration({iter_, max_iter, float(loss), smoothed, rate, epoch(), ips, sent,
                    exchange_ ? exchange_->dense_bytes() : 0});
    }
    if (param_.snapshot() > 0 && iter_ % param_.snapshot() == 0) {
      auto begin = Clock::now();
      snapshot();
      overhead_seconds_ += std::chrono::duration<double>(Clock::now() - begin).count();
    }
  }
  if (param_.snapshot_after_train() && (param_.snapshot() == 0 || iter_ % param_.snapshot() != 0)) snapshot();
  if (test_net_ && param_.test_interval() > 0) run_test();  // always report the final model
  log_info("Optimization Done.");
}

ModelFile Solver::snapshot_model() const {
  ModelFile model;
  *model.mutable_net() = param_.net_param();
  *model.mutable_solver() = param_;
  train_net_->params_to_proto(&model);
  record_source_shapes(*train_net_, &model);
  if (test_net_) record_source_shapes(*test_net_, &model);
  SolverState* state = model.mutable_solver_state();
  state->set_iter(iter_);
  state->set_type(param_.type());
  rule_->save(state);
  for (float v : window_) state->add_smoothed_loss(v);
  for (const auto& h : hooks_) h->save(&model);
  model.set_created_by("dsgtrain");
  return model;
}

std::string Solver::snapshot() {
  ModelFile model = snapshot_model();
  if (comm_->size() > 1) check_replicas(model, "the snapshot");
  if (exchange_) exchange_->save(&model);  // collective: gathers every rank's local state
  std::string path = prefix_ + "_iter_" + std::to_string(iter_) + ".dsgmodel";
  if (comm_->rank() == 0) {
    auto dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    write_model_file(path, model);
    log_info("Snapshotting to binary proto file " + path);
  }
  last_snapshot_ = path;
  return path;
}

void Solver::compare_fingerprints(uint64_t fingerprint, const std::string& what) {
  const int n = comm_->size();
  std::vector<uint64_t> all(size_t(n), 0);
  comm_->allgather(&fingerprint, all.data(), sizeof(uint64_t));
  bool same = true;
  for (uint64_t f : all) same = same && f == all[0];
  if (same) return;
  std::string list;
  for (int r = 0; r < n; ++r)
    list += strfmt("%srank %d: %016llx", r ? ", " : "", r, static_cast<unsigned long long>(all[size_t(r)]));
  throw Error(strfmt("the ranks' replicas differ in %s at iteration %d (fingerprints %s); stopped without writing "
                     "(%s)",
                     what.c_str(), iter_, list.c_str(),
                     last_snapshot_.empty() ? "no snapshot was written yet"
                                            : ("the last good snapshot is " + last_snapshot_).c_str()),
              "every rank must run the same build, config and thread count; report this with the log");
}

void Solver::check_replicas(const ModelFile& model, const std::string& when) {
  std::string bytes;
  model.SerializeToString(&bytes);  // no maps in the schema: the encoding is deterministic
  compare_fingerprints(fingerprint_bytes(bytes.data(), bytes.size()),
                       when + " (weights, solver history and sparsity state)");
}

void Solver::broadcast_bytes(std::string* bytes) {
  uint64_t size = bytes->size();
  comm_->broadcast(&size, sizeof(size), 0);
  bytes->resize(size_t(size));
  if (size) comm_->broadcast(&(*bytes)[0], int64_t(size), 0);
}

void Solver::broadcast_state() {
  std::string bytes;
  if (comm_->rank() == 0) {
    ModelFile model;
    train_net_->params_to_proto(&model);
    for (const auto& h : hooks_) h->save(&model);
    model.SerializeToString(&bytes);
  }
  broadcast_bytes(&bytes);
  if (comm_->rank() == 0) return;
  ModelFile model;
  if (!model.ParseFromString(bytes)) throw Error("the state broadcast from rank 0 could not be decoded");
  train_net_->params_from_proto(model);
  for (auto& h : hooks_) h->load(model, iter_);
}

void Solver::restore(const std::string& path) {
  ModelFile model;
  if (comm_->size() == 1) {
    model = read_model_file(path);
  } else {  // rank 0 reads the file (no shared file system needed); every rank gets its content
    std::string bytes, failure;
    if (comm_->rank() == 0) {
      try {
        read_model_file(path).SerializeToString(&bytes);
      } catch (const Error& e) {
        failure = e.what();
      }
      if (!failure.empty()) bytes = "\x01" + failure;  // a marker no serialized ModelFile starts with
    }
    broadcast_bytes(&bytes);
    if (!bytes.empty() && bytes[0] == '\x01') throw Error(bytes.substr(1));
    if (!model.ParseFromString(bytes)) throw Error("the snapshot broadcast from rank 0 could not be decoded");
  }
  train_net_->params_from_proto(model);
  if (!model.has_solver_state()) throw Error("'" + path + "' holds weights but no solver state; cannot resume from it");
  const SolverState& state = model.solver_state();
  if (state.type() != param_.type())
    throw Error("'" + path + "' was written by a " + state.type() + " solver but the config uses " + param_.type());
  rule_->load(state);
  iter_ = state.iter();
  for (auto& h : hooks_) h->load(model, iter_);
  if (exchange_) exchange_->load(model);
  window_.assign(state.smoothed_loss().begin(), state.smoothed_loss().end());
  for (auto* d : train_data_) d->seek(int64_t(iter_) * param_.iter_size());
  last_snapshot_ = path;
  log_info(strfmt("Resumed from %s at iteration %d", path.c_str(), iter_));
}

}  // namespace dsg
