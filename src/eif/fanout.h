// ChunkFanOut: hands each chunk, in order, to every consumer thread; a chunk returns to the
// fixed pool when all consumers are done with it, so memory is pool_size * chunk_size.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::eif {

struct Chunk {
  Bytes buf;
  size_t len = 0;
  unsigned flags = 0;
  int pending = 0;
  ByteView view() const { return {buf.data(), len}; }
};

class ChunkFanOut {
 public:
  using Consumer = std::function<void(const Chunk&)>;
  ChunkFanOut(std::vector<Consumer> consumers, size_t pool_size, size_t chunk_size);
  ~ChunkFanOut();
  Chunk& acquire();        // blocks for a free chunk; rethrows a consumer's error
  void publish(Chunk& c);  // hands c to every consumer
  void finish();           // waits for every chunk, joins, rethrows a consumer's error

 private:
  void run(size_t index);
  std::vector<Consumer> consumers_;
  std::vector<std::unique_ptr<Chunk>> pool_;
  std::deque<Chunk*> free_;
  std::vector<std::deque<Chunk*>> queues_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closing_ = false;
  std::exception_ptr error_;
};

}  // namespace shield_nitro::eif
