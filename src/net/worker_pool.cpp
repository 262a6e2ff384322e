#include "worker_pool.h"

#include <pthread.h>

namespace shield_nitro::net::detail {

void WorkerPool::start(size_t threads) {
  for (size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { run(); });
    ::pthread_setname_np(threads_.back().native_handle(), "sn-net-worker");  // for perf and top
  }
}

void WorkerPool::post(std::vector<Task>& tasks) {
  if (tasks.empty()) return;
  size_t n = tasks.size();
  {
    std::lock_guard lock(mu_);
    for (auto& t : tasks) queue_.push_back(std::move(t));
  }
  tasks.clear();
  if (n >= threads_.size()) cv_.notify_all();
  else
    for (size_t i = 0; i < n; ++i) cv_.notify_one();
}

void WorkerPool::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void WorkerPool::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;
    Task task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    task = nullptr;
    lock.lock();
  }
}

}  // namespace shield_nitro::net::detail
