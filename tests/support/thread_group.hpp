// tests/support/thread_group.hpp: helper threads that are always stopped and
// joined, also when an ASSERT leaves the test early (destroying a joinable
// std::thread would terminate the process).
#pragma once

#include <atomic>
#include <thread>
#include <utility>
#include <vector>

namespace evq::test {

class ThreadGroup {
 public:
  // `stop` is set before joining; the threads are expected to watch it.
  explicit ThreadGroup(std::atomic<bool>& stop) : stop_(stop) {}
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;
  ~ThreadGroup() { join(); }

  template <class F>
  void spawn(F&& f) {
    threads_.emplace_back(std::forward<F>(f));
  }
  // Waits for the threads to finish on their own (stop is not set).
  void wait() {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  // Sets stop, then joins.
  void join() {
    stop_ = true;
    wait();
  }

 private:
  std::atomic<bool>& stop_;
  std::vector<std::thread> threads_;
};

}  // namespace evq::test
