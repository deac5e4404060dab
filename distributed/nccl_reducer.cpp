#include "distributed/nccl_reducer.hpp"

#include "runtime/error.hpp"

#ifdef DSG_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include <dlfcn.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>
#endif

namespace dsg {

#ifdef DSG_WITH_NCCL

namespace {

// NCCL is opened on first use, not linked (like cuBLAS, runtime/cuda_blas.cu): linking would map
// the library into every process, CPU runs included. Search order: $DSG_NCCL_LIB, the loader's
// path (libnccl.so.2), the CUDA toolkit's lib64.
struct NcclApi {
  decltype(&::ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&::ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&::ncclReduceScatter) reduce_scatter = nullptr;
  decltype(&::ncclAllGather) all_gather = nullptr;
  decltype(&::ncclCommGetAsyncError) get_async_error = nullptr;
  decltype(&::ncclCommAbort) comm_abort = nullptr;
  decltype(&::ncclCommDestroy) comm_destroy = nullptr;
  decltype(&::ncclGetErrorString) error_string = nullptr;
};

const NcclApi& nccl() {
  static const NcclApi api = [] {
    std::string tried;
    void* lib = nullptr;
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("DSG_NCCL_LIB")) candidates.push_back(env);
    candidates.push_back("libnccl.so.2");
    candidates.push_back("/usr/local/cuda/lib64/libnccl.so.2");
    for (const auto& c : candidates) {
      lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
      tried += (tried.empty() ? "" : ", ") + c;
    }
    if (!lib) throw Error("cannot open NCCL (tried " + tried + ")", "set DSG_NCCL_LIB to libnccl.so.2");
    NcclApi a;
    auto bind = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (!fn) throw Error(std::string("NCCL library lacks ") + name);
    };
    bind(a.get_unique_id, "ncclGetUniqueId");
    bind(a.comm_init_rank, "ncclCommInitRank");
    bind(a.reduce_scatter, "ncclReduceScatter");
    bind(a.all_gather, "ncclAllGather");
    bind(a.get_async_error, "ncclCommGetAsyncError");
    bind(a.comm_abort, "ncclCommAbort");
    bind(a.comm_destroy, "ncclCommDestroy");
    bind(a.error_string, "ncclGetErrorString");
    return a;
  }();
  return api;
}

void check_cuda(cudaError_t code, const char* what) {
  if (code != cudaSuccess) throw Error(std::string("NCCL reducer: ") + what + ": " + cudaGetErrorString(code));
}

void check_nccl(ncclResult_t code, const char* what) {
  if (code != ncclSuccess && code != ncclInProgress)
    throw Error(std::string("NCCL ") + what + " failed: " + nccl().error_string(code));
}

}  // namespace

struct NcclReducer::State {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int rank = 0, ranks = 1, device = 0;
  double timeout = 60;
  float* scratch = nullptr;  // the padded buffer when n is not a multiple of the rank count
  int64_t scratch_count = 0;

  // Waits for the stream's work; aborts the communicator on a peer's failure or the deadline.
  void wait(const char* what) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
    for (;;) {
      cudaError_t done = cudaStreamQuery(stream);
      if (done == cudaSuccess) return;
      if (done != cudaErrorNotReady) check_cuda(done, what);
      ncclResult_t async = ncclSuccess;
      nccl().get_async_error(comm, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        nccl().comm_abort(comm);
        comm = nullptr;
        throw Error(std::string("NCCL ") + what + " failed on rank " + std::to_string(rank) + ": " +
                    nccl().error_string(async) + " (a rank died or cannot be reached)");
      }
      if (Clock::now() > deadline) {
        nccl().comm_abort(comm);
        comm = nullptr;
        throw Error(strfmt("rank %d of %d: no answer from the other ranks within %g s in the NCCL %s (a rank died, "
                           "stopped answering or cannot be reached)",
                           rank, ranks, timeout, what),
                    "check the other ranks' output; --comm-timeout sets the limit");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
};

bool nccl_built() { return true; }

NcclReducer::NcclReducer(int rank, int ranks, int device, double timeout_seconds,
                         const std::function<void(void*, int64_t)>& broadcast)
    : state_(new State) {
  state_->rank = rank;
  state_->ranks = ranks;
  state_->device = device;
  state_->timeout = timeout_seconds;
  try {
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    ncclUniqueId id;
    if (rank == 0) check_nccl(nccl().get_unique_id(&id), "ncclGetUniqueId");
    broadcast(&id, sizeof(id));
    check_nccl(nccl().comm_init_rank(&state_->comm, ranks, id, rank), "ncclCommInitRank");
    check_cuda(cudaStreamCreateWithFlags(&state_->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  } catch (...) {
    if (state_->comm) nccl().comm_abort(state_->comm);
    delete state_;
    throw;
  }
}

NcclReducer::~NcclReducer() {
  if (state_->scratch) cudaFree(state_->scratch);
  if (state_->stream) cudaStreamDestroy(state_->stream);
  if (state_->comm) nccl().comm_destroy(state_->comm);
  delete state_;
}

void NcclReducer::allreduce_sum(float* data, int64_t n) {
  State& s = *state_;
  if (!s.comm) throw Error("the NCCL communicator was aborted after an earlier failure");
  if (n == 0 || s.ranks == 1) return;
  // The layers' work on the default stream must finish before the exchange reads the gradients.
  check_cuda(cudaDeviceSynchronize(), "synchronising before the allreduce");
  const int64_t block = (n + s.ranks - 1) / s.ranks;
  const int64_t padded = block * s.ranks;
  float* buffer = data;
  if (padded != n) {
    if (s.scratch_count < padded) {
      if (s.scratch) cudaFree(s.scratch);
      s.scratch = nullptr;
      check_cuda(cudaMalloc(&s.scratch, size_t(padded) * sizeof(float)), "cudaMalloc");
      s.scratch_count = padded;
    }
    buffer = s.scratch;
    check_cuda(cudaMemcpyAsync(buffer, data, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, s.stream), "copy");
    check_cuda(cudaMemsetAsync(buffer + n, 0, size_t(padded - n) * sizeof(float), s.stream), "memset");
  }
  float* mine = buffer + int64_t(s.rank) * block;
  check_nccl(nccl().reduce_scatter(buffer, mine, size_t(block), ncclFloat, ncclSum, s.comm, s.stream), "reduce-scatter");
  check_nccl(nccl().all_gather(mine, buffer, size_t(block), ncclFloat, s.comm, s.stream), "allgather");
  if (buffer != data)
    check_cuda(cudaMemcpyAsync(data, buffer, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, s.stream), "copy");
  s.wait("gradient allreduce");
}

#else  // no NCCL in this build

struct NcclReducer::State {};

bool nccl_built() { return false; }

NcclReducer::NcclReducer(int, int, int, double, const std::function<void(void*, int64_t)>&) {
  throw Error("this build has no NCCL (it is looked for beside the CUDA toolkit)");
}

NcclReducer::~NcclReducer() = default;

void NcclReducer::allreduce_sum(float*, int64_t) { throw Error("this build has no NCCL"); }

#endif

}  // namespace dsg
