// Communicator: what the engine needs of the processes it trains with (data parallelism, DESIGN.md
// "Many processes"). MPI implements it (distributed/mpi_communicator.hpp), with NCCL for device
// buffers; a single process uses LocalCommunicator, which does nothing.
//
// Contract, for every implementation:
// - Collectives are called by every rank in the same order with the same sizes.
// - allreduce_sum leaves the same bits on every rank (each element is reduced once, by one rank,
//   and copied to the others), so replicas that apply the same update stay bitwise identical.
// - A rank that died or stopped answering makes every collective throw dsg::Error within the
//   communicator's timeout on the others: never a hang.
// - Byte counters count this rank's payload (the buffer it contributes), not the wire traffic of
//   the algorithm; they make dense and compressed exchange comparable.
#pragma once
#include <cstdint>
#include <string>

#include "runtime/device.hpp"

namespace dsg {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "MPI, 2 ranks on 2 hosts", for the start-up line.
  virtual std::string describe() const = 0;
  // Sums `n` floats of `data` over all ranks in place. `data` lives on `device` (a CUDA pointer
  // goes through NCCL where the build has it).
  virtual void allreduce_sum(float* data, int64_t n, const Device& device) = 0;
  // Every rank contributes `bytes` bytes; `out` (size() * bytes) receives them in rank order. Host memory.
  virtual void allgather(const void* in, void* out, int64_t bytes) = 0;
  // Copies rank `root`'s `bytes` bytes at `data` to every rank. Host memory.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends the whole job after an error on this rank (MPI_Abort): the other ranks may be blocked in
  // a collective this rank will never join. A single process just returns.
  virtual void abort(int status) { (void)status; }

  uint64_t bytes_sent() const { return bytes_sent_; }

 protected:
  void count_sent(uint64_t bytes) { bytes_sent_ += bytes; }

 private:
  uint64_t bytes_sent_ = 0;
};

// One process: every collective is the identity.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "1 rank"; }
  void allreduce_sum(float*, int64_t, const Device&) override {}
  void allgather(const void* in, void* out, int64_t bytes) override;
  void broadcast(void*, int64_t, int) override {}
  void barrier() override {}
};

// A 64-bit FNV-1a hash of `bytes` bytes, continuing from `seed` (replica fingerprints).
uint64_t fingerprint_bytes(const void* data, size_t bytes, uint64_t seed = 0xcbf29ce484222325ull);

}  // namespace dsg
