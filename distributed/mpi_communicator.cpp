#include "distributed/mpi_communicator.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>
#include <vector>

#include "distributed/nccl_reducer.hpp"
#include "runtime/error.hpp"
#include "runtime/storage.hpp"

namespace dsg {

namespace {

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, size_t(length));
}

void check(int code, const char* what) {
  if (code != MPI_SUCCESS) throw Error(std::string("MPI ") + what + " failed: " + mpi_error(code));
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// MPI counts are ints: large buffers go in pieces of at most this many elements.
constexpr int64_t kMaxCount = int64_t(1) << 30;

}  // namespace

class MpiCommunicator::Waiting {
 public:
  Waiting(MpiCommunicator& c, const char* what) : c_(c) {
    c_.waiting_in_ = what;
    c_.waiting_since_ = now_ns();
  }
  ~Waiting() { c_.waiting_since_ = 0; }

 private:
  MpiCommunicator& c_;
};

MpiCommunicator::MpiCommunicator(double timeout_seconds, StuckHandler stuck)
    : timeout_(timeout_seconds), stuck_(std::move(stuck)) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "initialisation");
  }
  // Errors come back as codes (and become dsg::Error) instead of aborting inside MPI.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  watchdog_ = std::thread([this] { watch(); });
  char host[MPI_MAX_PROCESSOR_NAME] = {};
  int length = 0;
  MPI_Get_processor_name(host, &length);
  std::vector<char> hosts(size_t(size_) * MPI_MAX_PROCESSOR_NAME, '\0');
  allgather(host, hosts.data(), MPI_MAX_PROCESSOR_NAME);
  std::set<std::string> distinct;
  for (int r = 0; r < size_; ++r) distinct.insert(std::string(&hosts[size_t(r) * MPI_MAX_PROCESSOR_NAME]));
  description_ = strfmt("%d ranks on %zu host%s (MPI)", size_, distinct.size(), distinct.size() == 1 ? "" : "s");
}

MpiCommunicator::~MpiCommunicator() {
  nccl_.reset();
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    stop_watch_ = true;
  }
  watch_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void MpiCommunicator::watch() {
  std::unique_lock<std::mutex> lock(watch_mu_);
  const int64_t limit = int64_t(timeout_ * 1e9);
  while (!watch_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stop_watch_; })) {
    const int64_t since = waiting_since_.load();
    if (since == 0 || now_ns() - since < limit) continue;
    const std::string message =
        strfmt("rank %d of %d: no answer from the other ranks within %g s in %s (a rank died, stopped answering or "
               "cannot be reached)",
               rank_, size_, timeout_, waiting_in_.load());
    if (stuck_) stuck_(message);
    waiting_since_ = 0;  // report once per collective
  }
}

void MpiCommunicator::host_allreduce_sum(float* data, int64_t n) {
  if (size_ == 1 || n == 0) return;
  Waiting waiting(*this, "the gradient allreduce");
  if (size_ == 2) {  // a + b on one rank, b + a on the other: the same bits
    for (int64_t start = 0; start < n; start += kMaxCount)
      check(MPI_Allreduce(MPI_IN_PLACE, data + start, int(std::min(kMaxCount, n - start)), MPI_FLOAT, MPI_SUM,
                          MPI_COMM_WORLD),
            "allreduce");
    return;
  }
  // Reduce-scatter into equal blocks (the buffer padded to a multiple of the rank count), then
  // allgather the reduced blocks: one rank reduces each element, so every rank gets its bits.
  const int64_t block = (n + size_ - 1) / size_;
  if (block > kMaxCount) {  // enormous buffers: in pieces, each reduced the same way
    for (int64_t start = 0; start < n; start += kMaxCount * size_)
      host_allreduce_sum(data + start, std::min(n - start, kMaxCount * size_));
    return;
  }
  const int64_t padded = block * size_;
  float* buffer = data;
  if (padded != n) {
    scratch_.resize(size_t(padded) * sizeof(float));
    buffer = reinterpret_cast<float*>(&scratch_[0]);
    std::memcpy(buffer, data, size_t(n) * sizeof(float));
    std::fill(buffer + n, buffer + padded, 0.0f);
  }
  check(MPI_Reduce_scatter_block(MPI_IN_PLACE, buffer, int(block), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
        "allreduce (reduce-scatter)");
  // In place, the reduced block of this rank lands at the start of the buffer.
  if (rank_ != 0) std::memmove(buffer + rank_ * block, buffer, size_t(block) * sizeof(float));
  check(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, int(block), MPI_FLOAT, MPI_COMM_WORLD),
        "allreduce (allgather)");
  if (buffer != data) std::memcpy(data, buffer, size_t(n) * sizeof(float));
}

void MpiCommunicator::allreduce_sum(float* data, int64_t n, const Device& device) {
  count_sent(uint64_t(n) * sizeof(float));
  if (size_ == 1 || n == 0) return;
  if (device.type == DeviceType::CPU) {
    host_allreduce_sum(data, n);
    return;
  }
  if (!nccl_ && nccl_built()) {
    nccl_ = std::make_unique<NcclReducer>(rank_, size_, device.index, timeout_,
                                          [this](void* id, int64_t bytes) { broadcast(id, bytes, 0); });
  }
  if (nccl_) {
    nccl_->allreduce_sum(data, n);
    return;
  }
  // No NCCL in this build: through the host (two counted copies).
  std::vector<float> host(static_cast<size_t>(n));
  DeviceBackend& backend = device_backend();
  backend.copy_to_host(device.index, host.data(), data, size_t(n) * sizeof(float));
  record_transfer(false, size_t(n) * sizeof(float));
  host_allreduce_sum(host.data(), n);
  backend.copy_to_device(device.index, data, host.data(), size_t(n) * sizeof(float));
  record_transfer(true, size_t(n) * sizeof(float));
}

void MpiCommunicator::allgather(const void* in, void* out, int64_t bytes) {
  if (bytes > kMaxCount) throw Error(strfmt("allgather of %lld bytes per rank is too large", (long long)bytes));
  Waiting waiting(*this, "an allgather");
  check(MPI_Allgather(in, int(bytes), MPI_BYTE, out, int(bytes), MPI_BYTE, MPI_COMM_WORLD), "allgather");
  count_sent(uint64_t(bytes));
}

void MpiCommunicator::broadcast(void* data, int64_t bytes, int root) {
  Waiting waiting(*this, "a broadcast from rank 0");
  for (int64_t start = 0; start < bytes; start += kMaxCount) {
    const int64_t piece = std::min(kMaxCount, bytes - start);
    check(MPI_Bcast(static_cast<char*>(data) + start, int(piece), MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
  }
  if (rank_ == root) count_sent(uint64_t(bytes));
}

void MpiCommunicator::barrier() {
  Waiting waiting(*this, "a barrier");
  check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
}

void MpiCommunicator::abort(int status) { MPI_Abort(MPI_COMM_WORLD, status); }

}  // namespace dsg
