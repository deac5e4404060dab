#include "runtime/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/math.hpp"

namespace dsg {
namespace {

class ThreadPool {
 public:
  ~ThreadPool() { resize(1); }

  void resize(int threads) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      stop_ = true;
      ++generation_;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    threads_ = std::max(1, threads);
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
  }

  int threads() const { return threads_; }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    int64_t chunks = std::min<int64_t>(threads_, std::max<int64_t>(1, n / std::max<int64_t>(1, grain)));
    if (chunks <= 1 || workers_.empty()) {
      fn(0, n);
      return;
    }
    std::unique_lock<std::mutex> run_lock(run_mutex_);  // one parallel region at a time
    {
      std::unique_lock<std::mutex> lock(mutex_);
      job_ = &fn;
      job_n_ = n;
      job_chunks_ = chunks;
      pending_ = static_cast<int>(chunks) - 1;
      ++generation_;
    }
    wake_.notify_all();
    fn(0, chunk_end(0));
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  int64_t chunk_end(int64_t c) const { return job_n_ * (c + 1) / job_chunks_; }

  void worker(int index) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int64_t, int64_t)>* job;
      int64_t begin, end;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        if (!job_ || index >= job_chunks_) continue;
        job = job_;
        begin = job_n_ * index / job_chunks_;
        end = chunk_end(index);
      }
      (*job)(begin, end);
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  int threads_ = 1;
  std::mutex mutex_, run_mutex_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunks_ = 1;
  int pending_ = 0;
};

ThreadPool& pool() {
  static ThreadPool p;
  return p;
}

}  // namespace

void set_num_threads(int threads) {
  threads = std::max(1, threads);
  if (threads != pool().threads()) pool().resize(threads);
  set_blas_threads(threads);
}

int num_threads() { return pool().threads(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  pool().run(n, grain, fn);
}

}  // namespace dsg
