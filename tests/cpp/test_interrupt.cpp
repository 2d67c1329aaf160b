// Interruption of parallel loops and CPU launches: no new chunk starts once the caller's callback says stop.
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "jit/cpu/cpu_kernel.h"
#include "jit/thread_pool.h"

using namespace keops;

TEST_CASE("parallel_for: interrupted stops the loop, on any number of threads") {
  const int old = num_threads();
  for (int threads : {1, 2, 4}) {
    set_num_threads(threads);
    std::atomic<int> ran{0}, polls{0};
    auto body = [&](int64_t) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      ++ran;
    };
    auto caller = std::this_thread::get_id();
    CHECK_THROWS_AS(parallel_for(10000, body, [&] {
      CHECK(std::this_thread::get_id() == caller);  // polled on the calling thread only
      return ++polls == 3;
    }), Interrupted);
    CHECK(polls == 3);
    CHECK(ran < 1000);  // ~150 ms of work, not 50 s
    // The callback's own exception is rethrown, once the workers stopped.
    CHECK_THROWS_AS(parallel_for(10000, body, [] () -> bool { throw std::range_error("stop"); }), std::range_error);
    // The pool works normally afterwards.
    std::vector<int> hits(100, 0);
    parallel_for(100, [&](int64_t c) { ++hits[c]; }, [] { return false; });
    CHECK(hits == std::vector<int>(100, 1));
  }
  set_num_threads(old);
}

TEST_CASE("CpuKernel::run: a long launch is interrupted between tasks and chunks of j") {
  auto k = get_cpu_kernel({"Sum_Reduction(Exp(-SqDist(x,y))*b, 0)", {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"}, "float32"});
  const int64_t n = 50000;  // 2.5e9 pairs: seconds of work
  std::vector<float> x(3 * n, 0.5f), y(3 * n, 0.5f), b(n, 1.0f), out(n, 0.0f);
  Launch L{{reinterpret_cast<uintptr_t>(x.data()), reinterpret_cast<uintptr_t>(y.data()), reinterpret_cast<uintptr_t>(b.data())},
           n, n, {reinterpret_cast<uintptr_t>(out.data())}};
  L.interrupted = [] { return true; };
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(k->run(L), Interrupted);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  L.interrupted = [] { return false; };
  L.nx = L.ny = 1000;
  k->run(L);
  CHECK(out[0] == Approx(1000.0f));
  CHECK(out[999] == Approx(1000.0f));
}
