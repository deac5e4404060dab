// NcclReducer: sums CUDA device buffers over the ranks with NCCL (MPI exchanges only NCCL's
// unique id, through the `broadcast` callback). Built when CMake finds NCCL beside the CUDA
// toolkit (DSG_WITH_NCCL); otherwise nccl_built() is false and MpiCommunicator copies device
// buffers through the host.
//
// Like the MPI path it is a reduce-scatter followed by an allgather (each element reduced by one
// rank, identical bits everywhere), on a stream of its own, synchronised before returning. Waits
// poll with a deadline: on timeout, or when NCCL reports an asynchronous error (a peer died), the
// communicator is aborted and dsg::Error is thrown.
#pragma once
#include <cstdint>
#include <functional>

namespace dsg {

bool nccl_built();

class NcclReducer {
 public:
  // `broadcast(id, bytes)` copies rank 0's bytes to every rank (MPI).
  NcclReducer(int rank, int ranks, int device, double timeout_seconds,
              const std::function<void(void*, int64_t)>& broadcast);
  ~NcclReducer();
  NcclReducer(const NcclReducer&) = delete;
  NcclReducer& operator=(const NcclReducer&) = delete;
  // `data`: n floats on this rank's device.
  void allreduce_sum(float* data, int64_t n);

 private:
  struct State;
  State* state_ = nullptr;
};

}  // namespace dsg
