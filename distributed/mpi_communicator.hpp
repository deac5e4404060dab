// MpiCommunicator: the Communicator (runtime/communicator.hpp) over MPI (Open MPI from Debian:
// openmpi-bin, libopenmpi-dev), for `mpirun -np N dsgtrain ...` on one machine or several.
//
// Every collective is non-blocking (MPI-3) and waited for with a deadline: when the other ranks do
// not answer within `timeout_seconds` (a rank died, hangs, or the network is gone) it throws
// dsg::Error instead of hanging; the tool then calls abort(), which ends the whole job.
//
// allreduce_sum is a reduce-scatter followed by an allgather, so every element is summed by one
// rank and copied to the others: all ranks hold the same bits whatever the algorithm or rank
// count. Device (CUDA) buffers go through NCCL when this build has it (distributed/nccl_reducer.hpp),
// else through a host copy.
#pragma once
#include <memory>
#include <string>

#include "runtime/communicator.hpp"

namespace dsg {

class NcclReducer;

class MpiCommunicator final : public Communicator {
 public:
  // Initialises MPI (MPI_Init_thread, FUNNELED: only the calling thread uses MPI).
  explicit MpiCommunicator(double timeout_seconds);
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
  void host_allreduce_sum(float* data, int64_t n);
  // Waits for `request` until the deadline; throws naming `what` on error or timeout.
  void wait(void* request, const char* what);

  int rank_ = 0, size_ = 1;
  double timeout_;
  std::string description_;
  std::string scratch_;  // the padded buffer of host_allreduce_sum
  std::unique_ptr<NcclReducer> nccl_;
};

}  // namespace dsg
