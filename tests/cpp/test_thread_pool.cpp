// The thread pool: every chunk runs once, on any number of threads; errors reach the caller; sizes are respected.
#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "jit/thread_pool.h"

using namespace keops;

namespace {

struct Threads {  // restores the default thread count when the test ends
  explicit Threads(int n) { set_num_threads(n); }
  ~Threads() { set_num_threads(0); }
};

}  // namespace

TEST_CASE("parallel_for: every chunk runs exactly once, for 1, 2 and 7 threads") {
  for (int threads : {1, 2, 7}) {
    Threads t(threads);
    CHECK(num_threads() == threads);
    for (int64_t n : {0, 1, 5, 1000}) {
      std::vector<std::atomic<int>> runs(n);
      parallel_for(n, [&](int64_t c) { runs[c].fetch_add(1); });
      for (int64_t c = 0; c < n; ++c) {
        INFO("threads " << threads << ", n " << n << ", chunk " << c);
        CHECK(runs[c].load() == 1);
      }
    }
  }
}

TEST_CASE("parallel_for: uses at most num_threads() threads, the caller's included") {
  Threads t(2);
  std::mutex m;
  std::set<std::thread::id> ids;
  parallel_for(200, [&](int64_t) {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    std::lock_guard<std::mutex> g(m);
    ids.insert(std::this_thread::get_id());
  });
  CHECK(ids.size() >= 1);
  CHECK(ids.size() <= 2);
}

TEST_CASE("parallel_for: the first exception of a body is rethrown, and the pool still works after it") {
  Threads t(3);
  std::atomic<int> ran{0};
  CHECK_THROWS_WITH(parallel_for(100, [&](int64_t c) {
    ran.fetch_add(1);
    if (c == 10) throw std::runtime_error("chunk 10 failed");
  }), "chunk 10 failed");
  CHECK(ran.load() >= 1);
  std::atomic<int64_t> sum{0};
  parallel_for(100, [&](int64_t c) { sum.fetch_add(c); });
  CHECK(sum.load() == 4950);
}

TEST_CASE("parallel_for: an interrupted callback that never fires changes nothing") {
  Threads t(2);
  std::atomic<int64_t> sum{0};
  parallel_for(1000, [&](int64_t c) { sum.fetch_add(c); }, [] { return false; });
  CHECK(sum.load() == 999 * 1000 / 2);
}

TEST_CASE("parallel_for: an exception thrown by the interrupted callback reaches the caller") {
  Threads t(2);
  CHECK_THROWS_WITH(parallel_for(4, [](int64_t) { std::this_thread::sleep_for(std::chrono::milliseconds(200)); },
                                 []() -> bool { throw std::runtime_error("signal handler failed"); }),
                    "signal handler failed");
}

TEST_CASE("set_num_threads: n <= 0 restores the default, which is at least 1") {
  set_num_threads(3);
  CHECK(num_threads() == 3);
  set_num_threads(0);
  const int fallback = num_threads();
  CHECK(fallback >= 1);
  set_num_threads(-5);
  CHECK(num_threads() == fallback);
}
