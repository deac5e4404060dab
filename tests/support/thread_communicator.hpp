// ThreadCommunicator: an in-process Communicator (runtime/communicator.hpp) for tests. N ranks run
// as N std::threads sharing one ThreadGroup; every collective is a rendezvous of all N:
//   1. each rank publishes its buffer pointer, 2. barrier, 3. each rank reads the others' buffers
//   into its own output, 4. barrier (nobody changes a buffer still being read).
// allreduce_sum adds the ranks' values in rank order (r = 0, 1, ...) on every rank, so every rank
// gets identical bits, as the contract requires. Host memory only.
//
//   ThreadGroup group(2);
//   run_ranks(group, [&](Communicator& comm) { ... });   // rethrows the first rank's exception
#pragma once
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/communicator.hpp"
#include "runtime/error.hpp"

namespace dsg {
namespace test {

// Shared state of the ranks: a reusable (generation-counting) barrier and one slot per rank.
class ThreadGroup {
 public:
  explicit ThreadGroup(int ranks) : ranks_(ranks), slots_(size_t(ranks), nullptr) {}
  int ranks() const { return ranks_; }
  void barrier() {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t gen = generation_;
    if (++arrived_ == ranks_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
  }
  void publish(int rank, const void* p) { slots_[size_t(rank)] = p; }  // ordered by the barrier
  const void* slot(int rank) const { return slots_[size_t(rank)]; }

 private:
  int ranks_;
  std::vector<const void*> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_.ranks(); }
  std::string describe() const override { return std::to_string(size()) + " thread ranks"; }

  void allreduce_sum(float* data, int64_t n, const Device& device) override {
    if (device.type != DeviceType::CPU) throw Error("ThreadCommunicator: host buffers only");
    std::vector<float> mine(data, data + n);
    group_.publish(rank_, mine.data());
    group_.barrier();
    for (int64_t i = 0; i < n; ++i) {
      float sum = 0.0f;
      for (int r = 0; r < size(); ++r) sum += static_cast<const float*>(group_.slot(r))[i];
      data[i] = sum;
    }
    group_.barrier();
    count_sent(uint64_t(n) * sizeof(float));
  }
  void allgather(const void* in, void* out, int64_t bytes) override {
    group_.publish(rank_, in);
    group_.barrier();
    for (int r = 0; r < size(); ++r)
      std::memcpy(static_cast<char*>(out) + r * bytes, group_.slot(r), size_t(bytes));
    group_.barrier();
    count_sent(uint64_t(bytes));
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    std::vector<char> copy;
    if (rank_ == root) copy.assign(static_cast<char*>(data), static_cast<char*>(data) + bytes);
    group_.publish(rank_, copy.data());
    group_.barrier();
    if (rank_ != root) std::memcpy(data, group_.slot(root), size_t(bytes));
    group_.barrier();
    if (rank_ == root) count_sent(uint64_t(bytes));
  }
  void barrier() override { group_.barrier(); }

 private:
  ThreadGroup& group_;
  int rank_;
};

// Runs body(comm) on group.ranks() threads, one rank each; rethrows the lowest rank's exception.
// A rank that throws before a collective would leave the others waiting: bodies must only throw
// where every rank throws (or after the last collective).
inline void run_ranks(ThreadGroup& group, const std::function<void(Communicator&)>& body) {
  std::vector<std::exception_ptr> errors(size_t(group.ranks()));
  std::vector<std::thread> threads;
  for (int r = 0; r < group.ranks(); ++r)
    threads.emplace_back([&, r] {
      ThreadCommunicator comm(group, r);
      try {
        body(comm);
      } catch (...) {
        errors[size_t(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace test
}  // namespace dsg
