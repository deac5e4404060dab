// MpiCommunicator: the Communicator (runtime/communicator.hpp) over MPI (Open MPI from Debian:
// openmpi-bin, libopenmpi-dev), for `mpirun -np N dsgtrain ...` on one machine or several.
//
// Collectives are MPI's blocking, tuned ones (measured on LeNet-5's 1.7 MB of gradients, 2 ranks:
// MPI_Allreduce 0.42-0.55 ms, the non-blocking MPI_Iallreduce polled with MPI_Test 0.86-0.95 ms).
// A watchdog thread bounds them: when a collective has waited `timeout_seconds` (a rank died,
// stopped answering, or the network is gone), it calls the `stuck` handler with a message; the
// tool reports it and ends the process, and mpirun then ends the job. MPI errors become dsg::Error.
//
// allreduce_sum leaves the same bits on every rank: with two ranks MPI_Allreduce computes a + b
// on one and b + a on the other, equal because IEEE addition is commutative; with more ranks it
// is a reduce-scatter followed by an allgather (every element summed by one rank, then copied).
// Device (CUDA) buffers go through NCCL when this build has it (distributed/nccl_reducer.hpp),
// else through a host copy.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/communicator.hpp"

namespace dsg {

class NcclReducer;

class MpiCommunicator final : public Communicator {
 public:
  using StuckHandler = std::function<void(const std::string& message)>;
  // Initialises MPI (MPI_Init_thread, FUNNELED: only the calling thread uses MPI). `stuck` runs
  // on the watchdog thread and must not return into MPI (the tool prints and exits).
  MpiCommunicator(double timeout_seconds, StuckHandler stuck);
  ~MpiCommunicator() override;  // MPI_Finalize

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return description_; }
  void allreduce_sum(float* data, int64_t n, const Device& device) override;
  void allgather(const void* in, void* out, int64_t bytes) override;
  void broadcast(void* data, int64_t bytes, int root) override;
  void barrier() override;
  void abort(int status) override;
  double timeout_seconds() const { return timeout_; }

 private:
  // Marks this rank as waiting in collective `what` until the guard ends (for the watchdog).
  class Waiting;
  void host_allreduce_sum(float* data, int64_t n);
  void watch();

  int rank_ = 0, size_ = 1;
  double timeout_;
  StuckHandler stuck_;
  std::string description_;
  std::string scratch_;  // the padded buffer of host_allreduce_sum
  std::unique_ptr<NcclReducer> nccl_;
  // Watchdog state: when the current collective began (steady-clock ns, 0 = none) and its name.
  std::atomic<int64_t> waiting_since_{0};
  std::atomic<const char*> waiting_in_{""};
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool stop_watch_ = false;
  std::thread watchdog_;
};

}  // namespace dsg
