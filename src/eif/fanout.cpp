#include "fanout.h"

namespace shield_nitro::eif {

ChunkFanOut::ChunkFanOut(std::vector<Consumer> consumers, size_t pool_size, size_t chunk_size)
    : consumers_(std::move(consumers)), queues_(consumers_.size()) {
  for (size_t i = 0; i < pool_size; ++i) {
    pool_.push_back(std::make_unique<Chunk>());
    pool_.back()->buf.resize(chunk_size);
    free_.push_back(pool_.back().get());
  }
  for (size_t i = 0; i < consumers_.size(); ++i) threads_.emplace_back([this, i] { run(i); });
}

ChunkFanOut::~ChunkFanOut() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

Chunk& ChunkFanOut::acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !free_.empty() || error_; });
  if (error_) std::rethrow_exception(error_);
  Chunk* c = free_.front();
  free_.pop_front();
  c->len = 0;
  c->flags = 0;
  return *c;
}

void ChunkFanOut::publish(Chunk& c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    c.pending = static_cast<int>(queues_.size());
    for (auto& q : queues_) q.push_back(&c);
  }
  cv_.notify_all();
}

void ChunkFanOut::run(size_t index) {
  for (;;) {
    Chunk* c = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !queues_[index].empty() || closing_; });
      if (queues_[index].empty()) return;
      c = queues_[index].front();
      queues_[index].pop_front();
    }
    bool failed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      failed = static_cast<bool>(error_);
    }
    if (!failed) {
      try {
        consumers_[index](*c);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--c->pending == 0) free_.push_back(c);
    }
    cv_.notify_all();
  }
}

void ChunkFanOut::finish() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return free_.size() == pool_.size(); });
    closing_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  if (error_) std::rethrow_exception(error_);
}

}  // namespace shield_nitro::eif
