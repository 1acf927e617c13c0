// The engine's thread pool (parallel.h): a generation counter announces a task, workers
// spin for a few microseconds and then sleep on a condition variable; the caller runs
// slice 0 itself and waits the same way for the others.
#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "models/engine/engine.h"
#include "models/engine/parallel.h"

namespace ph {

void blas_single_threaded();  // linear.cpp

namespace {

// Spin (cheaply, with pause) up to ~30 µs for `ready`; long enough to catch the next
// task of a tight sequence, short enough not to hold a core another job needs.
template <class Ready>
bool spin_until(Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(30);
  for (int i = 1;; ++i) {
    if (ready()) return true;
    _mm_pause();
    if (i % 64 == 0 && std::chrono::steady_clock::now() > deadline) return ready();
  }
}

thread_local bool in_task = false;  // inside parallel_run on this thread

class Pool {
 public:
  ~Pool() { resize(1); }

  int size() const { return size_; }

  void resize(int n) {
    if (n == size_) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stop_ = false;
    size_ = n;
    // A worker starts from the current generation: a task announced before the thread
    // first runs must still count as new to it.
    const uint64_t now = generation_.load(std::memory_order_acquire);
    for (int t = 1; t < n; ++t) workers_.emplace_back([this, t, now] { worker(t, now); });
  }

  void run(const std::function<void(int)>& task) {
    if (size_ == 1 || in_task) {  // nested or single: same slices, one after the other
      for (int t = 0; t < size_; ++t) task(t);
      return;
    }
    std::lock_guard<std::mutex> one_at_a_time(run_mutex_);  // callers on other threads
    task_ = &task;
    pending_.store(size_ - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    work_cv_.notify_all();
    in_task = true;
    task(0);
    in_task = false;
    auto done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(done)) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_cv_.wait(lock, done);
    }
  }

 private:
  void worker(int t, uint64_t seen) {
    in_task = true;
    for (;;) {
      auto announced = [&] { return generation_.load(std::memory_order_acquire) != seen || stop_; };
      if (!spin_until(announced)) {
        std::unique_lock<std::mutex> lock(mutex_);
        work_cv_.wait(lock, announced);
      }
      if (stop_) return;
      seen = generation_.load(std::memory_order_acquire);
      (*task_)(t);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);  // the caller may be going to sleep
        done_cv_.notify_one();
      }
    }
  }

  int size_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_, run_mutex_;
  std::condition_variable work_cv_, done_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int)>* task_ = nullptr;
};

Pool& pool() {
  static Pool p;
  return p;
}

std::mutex& config_mutex() {
  static std::mutex m;
  return m;
}

Pool& configured_pool() {
  static bool once = [] {
    blas_single_threaded();
    const unsigned hw = std::thread::hardware_concurrency();
    pool().resize(hw > 0 ? (int)hw : 1);
    return true;
  }();
  (void)once;
  return pool();
}

}  // namespace

int num_threads() {
  return configured_pool().size();
}

void parallel_run(const std::function<void(int)>& task) {
  configured_pool().run(task);
}

void set_num_threads(int threads) {
  std::lock_guard<std::mutex> lock(config_mutex());
  Pool& p = configured_pool();
  if (threads > 0) p.resize(threads);
}

}  // namespace ph
