// Persistent worker threads with dynamic chunk scheduling (an atomic counter), so a launch costs no thread creation.
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace keops {

namespace {

// Read once: hardware_concurrency() reads /sys on every call (~10 us), which small launches would pay each time.
int default_threads() {
  static const int n = [] {
    for (const char* var : {"PYKEOPS_NUM_THREADS", "OMP_NUM_THREADS"})
      if (const char* v = std::getenv(var)) {
        int n = std::atoi(v);
        if (n > 0) return n;
      }
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return n;
}

std::atomic<int> g_threads{0};

class Pool {
 public:
  void run(int n_threads, int64_t n_chunks, const std::function<void(int64_t)>& body, const std::function<bool()>& interrupted) {
    std::lock_guard<std::mutex> launch(launch_mutex_);  // one parallel loop at a time
    // The caller works too, unless it has to poll `interrupted` (then it only waits, and one more worker runs).
    const int helpers = std::min<int64_t>(interrupted ? n_threads : n_threads - 1, interrupted ? n_chunks : n_chunks - 1);
    ensure_workers(helpers);
    std::atomic<int64_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto fail = [&](std::exception_ptr e) {
      std::lock_guard<std::mutex> g(error_mutex);
      if (!error) error = e;
    };
    auto work = [&] {
      for (int64_t c; (c = next.fetch_add(1)) < n_chunks;) {
        try {
          body(c);
        } catch (...) {
          fail(std::current_exception());
        }
      }
    };
    {
      std::lock_guard<std::mutex> g(mutex_);
      job_ = work;
      pending_ = helpers;
      wanted_ = helpers;
      ++generation_;
    }
    wake_.notify_all();
    bool stopped = false;
    if (!interrupted) work();
    std::unique_lock<std::mutex> g(mutex_);
    auto done = [&] { return pending_ == 0; };
    if (!interrupted) finished_.wait(g, done);
    while (!finished_.wait_for(g, std::chrono::milliseconds(50), done)) {
      if (stopped) continue;
      g.unlock();
      try {
        stopped = interrupted();
      } catch (...) {
        fail(std::current_exception());
        stopped = true;
      }
      if (stopped) next.store(n_chunks);  // no new chunk starts
      g.lock();
    }
    job_ = nullptr;
    if (error) std::rethrow_exception(error);
    if (stopped) throw Interrupted("interrupted");
  }

 private:
  void ensure_workers(int n) {
    while ((int)workers_.size() < n) {
      int index = static_cast<int>(workers_.size());
      workers_.emplace_back([this, index] { loop(index); });
      workers_.back().detach();  // workers live as long as the process
    }
  }
  void loop(int index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> g(mutex_);
    for (;;) {
      wake_.wait(g, [&] { return generation_ != seen; });
      seen = generation_;
      if (index >= wanted_) continue;
      auto job = job_;
      g.unlock();
      job();
      g.lock();
      if (--pending_ == 0) finished_.notify_one();
    }
  }

  std::mutex launch_mutex_, mutex_;
  std::condition_variable wake_, finished_;
  std::vector<std::thread> workers_;
  std::function<void()> job_;
  uint64_t generation_ = 0;
  int pending_ = 0, wanted_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: detached workers wait on it
  return *p;
}

}  // namespace

int num_threads() {
  int n = g_threads.load();
  return n > 0 ? n : default_threads();
}

void set_num_threads(int n) { g_threads.store(n > 0 ? n : 0); }

void parallel_for(int64_t n_chunks, const std::function<void(int64_t)>& body, const std::function<bool()>& interrupted) {
  if (n_chunks <= 0) return;
  int n = num_threads();
  if (!interrupted && (n <= 1 || n_chunks == 1)) {
    for (int64_t c = 0; c < n_chunks; ++c) body(c);
    return;
  }
  pool().run(n, n_chunks, body, interrupted);
}

}  // namespace keops
