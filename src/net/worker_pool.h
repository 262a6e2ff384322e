// Internal: a fixed set of threads running posted tasks in FIFO order.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace shield_nitro::net::detail {

class WorkerPool {
 public:
  using Task = std::function<void()>;

  void start(size_t threads);
  // Queues tasks; wakes one thread per task (at most all of them).
  void post(std::vector<Task>& tasks);
  // Runs what is queued, then joins. Idempotent.
  void stop();
  ~WorkerPool() { stop(); }

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace shield_nitro::net::detail
