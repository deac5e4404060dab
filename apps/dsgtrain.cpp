// dsgtrain: trains a net from a solver prototxt.
//   [mpirun -np R] dsgtrain CONFIG [--epochs E | --iterations N] [--threads T] [--device cpu|cuda[:N]]
//            [--seed S] [--data DIR] [--output DIR] [--resume FILE | --weights FILE] [--check-transfers] [--profile]
//            [--comm-timeout S] [--check-replicas N] [--tensorboard DIR]
// Under mpirun every rank trains on its share of each global batch (distributed/ranks.hpp,
// Solver::set_communicator); rank 0 logs, writes metrics and snapshots, the others log only
// errors. An error on any rank ends the whole job (Communicator::abort).
// --weights (or the solver's `weights:`, relative to the solver file) starts from pretrained weights
// copied by layer name (apps/pretrained.hpp; every rank reads the file); --resume continues a run.
// --device host-device-code (a test aid) runs the layers' device code on the host
// (Context::device_code_on_host), so a whole run exercises the device path on a CPU machine.
// --check-transfers makes every layer's forward / backward and the solver update throw if they
// copy anything between host and device (runtime/context.hpp).
// Logs in Caffe's line format on stderr; a progress line on a terminal; OUTPUT/metrics.jsonl with
// one JSON object per display interval and per test, and TensorBoard events with --tensorboard DIR
// (apps/training_outputs.hpp). Exit codes: apps/tool_main.hpp (0 ok, 1 runtime error, 2 usage
// error with the usage printed); --version prints the version; the command line is checked by
// apps/tool_cli.hpp (--epochs / --iterations > 0, --threads >= 1, a warning above the core count).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "apps/fast_blas.hpp"
#include "apps/pretrained.hpp"
#include "apps/tool_cli.hpp"
#include "apps/tool_main.hpp"
#include "apps/training_outputs.hpp"
#include "datasets/data_paths.hpp"
#include "distributed/dgc_exchange.hpp"
#include "distributed/ranks.hpp"
#include "runtime/config.hpp"
#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/math.hpp"
#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"
#include "sparsity/controller.hpp"

namespace fs = std::filesystem;
using namespace dsg;

namespace {

struct Options {
  std::string config;
  double epochs = 0;
  int iterations = 0;
  int threads = 0;
  std::string device = "cpu";
  int64_t seed = -1;
  bool seed_given = false;
  std::string data_dir, output_dir, resume, weights, tensorboard_dir;
  bool profile = false;
  bool check_transfers = false;
  double comm_timeout = 30;
  int check_replicas = 0;
};

std::string format_eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  long s = long(seconds + 0.5);
  return s >= 3600 ? strfmt("%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60) : strfmt("%02ld:%02ld", s / 60, s % 60);
}

// --profile: per-layer wall-clock of the training passes (milliseconds per pass, tests excluded).
void log_layer_times(const Net& net) {
  double total_f = 0, total_b = 0;
  log_info("Layer times of the training net (ms per iteration: forward, backward):");
  for (size_t i = 0; i < net.layers().size(); ++i) {
    const Net::LayerTime& t = net.layer_times()[i];
    const double f = t.forwards ? 1e3 * t.forward_s / double(t.forwards) : 0.0;
    const double b = t.backwards ? 1e3 * t.backward_s / double(t.backwards) : 0.0;
    total_f += f;
    total_b += b;
    log_info(strfmt("    %-24s %-16s forward %9.3f ms  backward %9.3f ms", net.layers()[i]->name().c_str(),
                    net.layers()[i]->type(), f, b));
  }
  log_info(strfmt("    %-24s %-16s forward %9.3f ms  backward %9.3f ms", "total", "", total_f, total_b));
}

int run(const Options& opt, Communicator& comm) {
  const bool lead = comm.rank() == 0;  // rank 0 logs, writes metrics and snapshots
  if (!lead) set_log_errors_only();
  LoadedConfig config = load_solver_config(opt.config);
  SolverParameter& solver_param = config.solver;
  resolve_data_sources(*solver_param.mutable_net_param(), config.config_dir, opt.data_dir);

  Context ctx;
  if (opt.device == "host-device-code") {
    ctx.device = Device::cpu();
    ctx.device_code_on_host = true;
  } else {
    ctx.device = parse_device(opt.device);
  }
  ctx.check_transfers = opt.check_transfers;
  if (ctx.device.type == DeviceType::CUDA) {
    std::string reason;
    const int gpus = cuda_device_count(&reason);
    if (gpus == 0) throw Error("--device " + opt.device + ": " + reason, "use --device cpu");
    // Under mpirun, plain "cuda" gives each rank on a machine its own GPU (local rank modulo GPUs).
    if (comm.size() > 1 && opt.device == "cuda") ctx.device = Device::cuda(launched_local_rank() % gpus);
  }
  uint64_t seed;
  if (opt.seed_given) seed = uint64_t(opt.seed);
  else if (solver_param.random_seed() >= 0) seed = uint64_t(solver_param.random_seed());
  else seed = uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  comm.broadcast(&seed, sizeof(seed), 0);  // every rank draws the same patterns
  ctx.seed = seed;
  solver_param.set_random_seed(int64_t(seed));

  // By default the ranks on one machine share its cores.
  int threads = opt.threads > 0 ? opt.threads
                                : std::max(1, int(std::max(1u, std::thread::hardware_concurrency())) / launched_local_ranks());
  set_num_threads(threads);
  if (lead && opt.threads > 0) apps::warn_thread_count("dsgtrain", threads, launched_local_ranks());

  std::string stem = fs::path(opt.config).stem().string();
  fs::path output = opt.output_dir.empty() ? fs::path("out") / stem : fs::path(opt.output_dir);
  if (lead) fs::create_directories(output);
  std::string prefix = solver_param.has_snapshot_prefix() ? solver_param.snapshot_prefix() : stem;
  if (!fs::path(prefix).is_absolute()) prefix = (output / fs::path(prefix).filename()).string();

  log_info(strfmt("dsgtrain: config %s, %s, device %s%s%s, %d thread(s)%s, %s, seed %llu (pass --seed %llu to reproduce)",
                  opt.config.c_str(), comm.describe().c_str(), ctx.device.name().c_str(),
                  ctx.device_code_on_host ? " (device code on the host)" : "",
                  ctx.check_transfers ? ", transfer check on" : "", threads, comm.size() > 1 ? " per rank" : "",
                  apps::blas_kernel_note().c_str(), static_cast<unsigned long long>(seed),
                  static_cast<unsigned long long>(seed)));
  Solver solver(solver_param, config.net_locations, ctx, prefix);
  solver.set_communicator(comm);  // shards the data layers when there are several ranks
  const auto method = solver_param.gradient_exchange().method();
  if (comm.size() > 1) {
    if (method == GradientExchangeParameter::DGC)
      solver.set_gradient_exchange(std::make_unique<DgcExchange>(solver.train_net(), comm, solver_param, ctx.device));
    log_info(strfmt("Data parallel: %s; global batch %lld (%lld per rank); gradient exchange: %s",
                    comm.describe().c_str(), static_cast<long long>(solver.samples_per_iter() / solver_param.iter_size()),
                    static_cast<long long>(solver.samples_per_iter() / solver_param.iter_size() / comm.size()),
                    solver.gradient_exchange()->describe().c_str()));
  } else if (method != GradientExchangeParameter::DENSE) {
    log_warn("gradient_exchange " + GradientExchangeParameter::Method_Name(method) +
             " applies to several ranks (mpirun -np N); one process exchanges nothing");
  }
  solver.set_replica_check(opt.check_replicas);
  // Caffe's semantics: --weights replaces the solver's weights:, a resumed snapshot replaces both.
  std::vector<std::string> weights;
  if (!opt.weights.empty()) weights = {opt.weights};
  else
    for (const std::string& w : solver_param.weights())
      weights.push_back(fs::path(w).is_absolute() || config.config_dir.empty() ? w : (fs::path(config.config_dir) / w).string());
  if (opt.resume.empty()) apps::load_pretrained(solver.train_net(), weights);

  if (opt.epochs > 0 || opt.iterations > 0) {
    int64_t max_iter = opt.iterations;
    if (opt.epochs > 0) {
      int64_t n = solver.train_set_size();
      if (n == 0) throw Error("--epochs needs a Data layer in the TRAIN net to know the epoch size");
      max_iter = int64_t(std::ceil(opt.epochs * double(n) / double(solver.samples_per_iter())));
    }
    solver.set_max_iter(int(max_iter));
  }
  SparsityController& sparsity = install_sparsity(solver);  // the sparsity controller joins the loop as training hooks
  // Every layer must have an implementation for every mode it runs in on this device, including the
  // structured modes the sparsity schedule switches on later: refuse before training starts.
  // (On the CPU, the layers' own checks at their first pass decide, as before.)
  if (ctx.runs_device_code()) {
    check_device_support(solver.train_net(), ctx, sparsity.planned_modes(solver.train_net()));
    if (solver.test_net()) check_device_support(*solver.test_net(), ctx, sparsity.planned_modes(*solver.test_net()));
  }
  if (!opt.resume.empty()) solver.restore(opt.resume);
  log_info(strfmt("Training for %d iterations (%.3g epochs of %lld samples); snapshots: %s_iter_N.dsgmodel",
                  solver.param().max_iter(),
                  solver.train_set_size() ? double(solver.param().max_iter()) * solver.samples_per_iter() /
                                                solver.train_set_size()
                                          : 0.0,
                  static_cast<long long>(solver.train_set_size()), prefix.c_str()));

  std::string metrics_path = (output / "metrics.jsonl").string();
  std::unique_ptr<apps::TrainingOutputs> outputs;  // metrics.jsonl and --tensorboard events (rank 0)
  if (lead) {
    outputs = std::make_unique<apps::TrainingOutputs>(solver, metrics_path, !opt.resume.empty(), opt.tensorboard_dir);
    if (!opt.tensorboard_dir.empty()) log_info("TensorBoard events: " + outputs->events_path());
  }

  const bool tty = lead && ::isatty(STDERR_FILENO);
  auto start = std::chrono::steady_clock::now();
  auto last_draw = start;
  const int start_iter = solver.iter();
  if (tty) {
    solver.on_iteration = [&](const IterationReport& r) {
      auto now = std::chrono::steady_clock::now();
      if (r.iter != r.max_iter && now - last_draw < std::chrono::milliseconds(200)) return;
      last_draw = now;
      double secs = std::chrono::duration<double>(now - start).count();
      double per_iter = r.iter > start_iter ? secs / (r.iter - start_iter) : NAN;
      double ips = secs > 0 ? double(r.iter - start_iter) * solver.samples_per_iter() / secs : 0;
      std::fprintf(stderr, "\r\033[K  iter %d/%d  epoch %.2f  loss %.4f  %.0f img/s  ETA %s", r.iter, r.max_iter,
                   r.epoch, r.smoothed_loss, ips, format_eta(per_iter * (r.max_iter - r.iter)).c_str());
      std::fflush(stderr);
      set_progress_line_active(true);
    };
  }
  if (opt.profile) solver.train_net().set_profiling(true);
  solver.solve();
  if (tty) set_progress_line_active(false);
  if (opt.profile) log_layer_times(solver.train_net());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() -
                solver.overhead_seconds();
  log_info(strfmt("Trained %d iterations in %.2f s of training (%.0f images/s%s, tests and snapshots excluded); "
                  "metrics: %s; model: %s",
                  solver.iter() - start_iter, secs, secs > 0 ? double(solver.iter() - start_iter) * solver.samples_per_iter() / secs : 0.0,
                  comm.size() > 1 ? strfmt(" over %d ranks", comm.size()).c_str() : "",
                  metrics_path.c_str(), solver.last_snapshot().c_str()));
  if (GradientExchange* exchange = solver.gradient_exchange())
    log_info(strfmt("Gradient exchange (%s): %llu bytes sent per rank and iteration (dense: %llu, %.1fx less)",
                    exchange->describe().c_str(), static_cast<unsigned long long>(exchange->last_bytes()),
                    static_cast<unsigned long long>(exchange->dense_bytes()),
                    exchange->last_bytes() ? double(exchange->dense_bytes()) / double(exchange->last_bytes()) : 0.0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  dsg::apps::select_fast_blas_kernels(argv);
  CLI::App app{"dsgtrain: train a sparse or dense network from a solver prototxt"};
  Options opt;
  app.add_option("config", opt.config, "solver prototxt (with net: or net_param)")->required();
  auto* epochs = app.add_option("--epochs", opt.epochs, "train for E epochs (overrides max_iter)")
                     ->check(dsg::apps::positive());
  auto* iterations = app.add_option("--iterations", opt.iterations, "train for N iterations (overrides max_iter)")
                         ->check(dsg::apps::positive());
  epochs->excludes(iterations);
  app.add_option("--threads", opt.threads, "CPU threads (default: all cores)")->check(dsg::apps::thread_count());
  app.add_option("--device", opt.device,
                 "cpu or cuda[:N]; host-device-code (a test aid) runs the device code on the host");
  app.add_flag("--check-transfers", opt.check_transfers,
               "debug: fail naming the layer whose forward / backward (or the update) copies between host and device");
  app.add_option("--seed", opt.seed, "random seed (overrides random_seed)");
  app.add_option("--data", opt.data_dir, "directory holding the data files named in the config");
  app.add_option("--output", opt.output_dir, "directory for snapshots and metrics.jsonl (default out/<config>)");
  auto* resume = app.add_option("--resume", opt.resume, "continue from a .dsgmodel snapshot");
  app.add_option("--weights", opt.weights,
                 "start from pretrained weights copied by layer name (.dsgmodel, .dsgz, .caffemodel or ONNX; "
                 "overrides the solver's weights:)")
      ->excludes(resume);
  app.add_option("--tensorboard", opt.tensorboard_dir,
                 "also write TensorBoard event files (losses, lr, accuracy, sparsity, MACs, weight histograms) to DIR");
  app.add_flag("--profile", opt.profile, "log each layer's forward / backward time per training iteration at the end");
  app.add_option("--comm-timeout", opt.comm_timeout,
                 "under mpirun: seconds to wait for the other ranks before ending the job (default 30)")
      ->check(CLI::PositiveNumber);
  app.add_option("--check-replicas", opt.check_replicas,
                 "under mpirun (debug): compare the ranks' weights every N iterations, not only at snapshots")
      ->check(CLI::NonNegativeNumber);
  if (auto status = dsg::apps::parse_command_line(app, "dsgtrain", argc, argv)) return *status;
  opt.seed_given = app.count("--seed") > 0;
  std::unique_ptr<Communicator> comm;
  int status = dsg::apps::run_reporting_errors("dsgtrain", [&] {
    // A collective that waits past --comm-timeout: report and end this process; mpirun then ends
    // the job (the other ranks may be blocked in MPI, which cannot be interrupted).
    comm = connect_ranks(opt.comm_timeout, [](const std::string& message) {
      std::fprintf(stderr, "dsgtrain: error: %s (hint: check the other ranks' output; --comm-timeout sets the limit)\n",
                   message.c_str());
      std::fflush(stderr);
      std::_Exit(1);
    });
    return run(opt, *comm);
  });
  // An error on one rank of several: the others may wait in a collective this rank will never
  // join, so the whole job ends here (mpirun reports it).
  if (status != 0 && comm && comm->size() > 1) comm->abort(status);
  return status;
}
