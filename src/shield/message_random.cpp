#include "message_random.h"

#include <openssl/crypto.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

namespace shield_nitro::shield::detail {
namespace {

std::atomic<uint64_t> fork_generation{0};

void after_fork_in_child() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

class BufferedRandom final : public Random {
 public:
  BufferedRandom() {
    static std::once_flag registered;
    std::call_once(registered, [] { ::pthread_atfork(nullptr, nullptr, after_fork_in_child); });
  }
  ~BufferedRandom() override { OPENSSL_cleanse(buf_, sizeof buf_); }

  void fill(std::span<uint8_t> out) override {
    if (out.size() > sizeof buf_ / 4) {  // large requests skip the buffer
      os_random().fill(out);
      return;
    }
    if (generation_ != fork_generation.load(std::memory_order_relaxed) || avail_ < out.size()) refill();
    uint8_t* src = buf_ + sizeof buf_ - avail_;
    std::memcpy(out.data(), src, out.size());
    OPENSSL_cleanse(src, out.size());
    avail_ -= out.size();
  }

 private:
  void refill() {
    os_random().fill(buf_);
    avail_ = sizeof buf_;
    generation_ = fork_generation.load(std::memory_order_relaxed);
  }

  uint8_t buf_[4096];
  size_t avail_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace

Random& message_random() {
  thread_local BufferedRandom rng;
  return rng;
}

}  // namespace shield_nitro::shield::detail
