// StreamAssembler: in-order reception of a container of announced size, decrypted by a pool of
// workers into one buffer fixed once the header is in (see stream.h). StreamDecryptor is the
// fallback when the size is unknown.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/reader.h"
#include "shield_nitro/shield/stream.h"
#include "stream_crypto.h"
#include "stream_header.h"

namespace shield_nitro::shield {

using detail::StreamCrypto;
using detail::StreamLayout;

namespace {

// A task is a run of consecutive records lying in one buffer, at most this long (or one
// record): small chunks are handed out in batches, so the queue's locking stays negligible.
constexpr uint64_t kRunBytes = uint64_t{1} << 20;

unsigned worker_count(unsigned requested) {
  return requested ? requested : std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

struct StreamAssembler::State {
  State(const Shield& sh, uint64_t t, uint64_t max, PlaintextDestination d, const AssemblerOptions& o)
      : shield(sh), total(t), max_plaintext(max), options(o), destination(std::move(d)), nworkers(worker_count(o.workers)) {}
  ~State() { abort(); }

  // Records first .. first + count - 1, lying back to back in bytes, which keep holds.
  struct Task {
    uint64_t first;
    uint64_t count;
    ByteView bytes;
    std::shared_ptr<const void> keep;
  };

  Shield shield;
  uint64_t total;
  uint64_t max_plaintext;
  AssemblerOptions options;
  PlaintextDestination destination;
  unsigned nworkers;

  // Receiving side (the thread calling push/finish).
  uint64_t received = 0;
  Bytes head;                        // header bytes until it parses
  std::shared_ptr<Bytes> partial;    // a record split between pieces
  std::unique_ptr<StreamCrypto> crypto;
  StreamLayout layout;
  SecureBytes own;                   // the plaintext, without a destination
  std::span<uint8_t> out;            // where the plaintext goes (own's or the destination's)
  uint64_t next = 0;                 // index of the next record to hand out
  uint64_t budget = 0;               // in-flight bytes allowed
  bool finished = false;
  std::exception_ptr failed;         // sticky: every later call throws it

  // Shared with the workers, under mu.
  std::mutex mu;
  std::condition_variable work_cv;   // a task was queued, or stop
  std::condition_variable space_cv;  // in_flight went down, or a worker failed
  std::deque<Task> queue;
  uint64_t in_flight = 0;            // bytes queued or being decrypted
  bool stop = false;
  std::exception_ptr worker_error;
  std::vector<std::thread> threads;

  // Header bytes still missing: up to the mode byte, then the rest of a 50/66-byte header.
  size_t header_wanted() const {
    if (head.size() <= detail::kStreamModeOffset) return detail::kStreamModeOffset + 1 - head.size();
    return detail::kStreamFixedHeader + (head[detail::kStreamModeOffset] == kVersionPassword ? 16 : 0) - head.size();
  }

  void start(detail::StreamHeader h) {
    // A size no stream with this header can have (its last record would be shorter than a
    // tag) is the sender's mistake, told as such rather than as a failed tag.
    const uint64_t record = uint64_t{h.chunk_size} + kTagSize;
    const uint64_t last = total < h.bytes.size() ? 0 : (total - h.bytes.size()) % record;  // 0: a full last record
    if (total < h.bytes.size() + kTagSize || (last != 0 && last < kTagSize))
      throw Error(Errc::kFormat, "announced size " + std::to_string(total) + " does not fit a stream of " +
                                     std::to_string(h.chunk_size) + "-byte chunks");
    StreamLayout l = StreamLayout::of_container(h.bytes.size(), h.chunk_size, total);
    if (l.plaintext_size() > max_plaintext)
      throw Error(Errc::kPolicy, "stream of " + std::to_string(l.plaintext_size()) + " plaintext bytes exceeds the limit of " +
                                     std::to_string(max_plaintext) + " bytes");
    crypto = StreamCrypto::for_decrypt(shield, std::move(h));
    layout = l;
    if (destination) {
      out = destination(l.plaintext_size());
      if (out.size() != l.plaintext_size())
        throw Error(Errc::kUsage, "stream assembler: the destination holds " + std::to_string(out.size()) + " bytes, the plaintext " +
                                      std::to_string(l.plaintext_size()));
    } else {
      own.resize_for_overwrite(l.plaintext_size());  // every chunk is written, or it is wiped
      out = own.span();
    }
    budget = std::max(options.max_in_flight_bytes, (uint64_t{nworkers} + 1) * record);
    threads.reserve(nworkers);
    for (unsigned i = 0; i < nworkers; ++i) threads.emplace_back([this] { work(); });
  }

  void work() {
    for (;;) {
      Task t;
      {
        std::unique_lock lock(mu);
        work_cv.wait(lock, [&] { return stop || !queue.empty(); });
        if (stop) return;
        t = std::move(queue.front());
        queue.pop_front();
      }
      try {
        ByteView rest = t.bytes;
        for (uint64_t i = t.first; i < t.first + t.count; ++i) {
          const auto n = static_cast<size_t>(layout.record_size(i));
          uint8_t none = 0;  // an empty stream has no buffer to point into
          uint8_t* dst = out.empty() ? &none : out.data() + i * layout.chunk_size;
          crypto->open(i, i + 1 == layout.count, rest.first(n), dst);
          rest = rest.subspan(n);
        }
      } catch (...) {
        std::lock_guard lock(mu);
        if (!worker_error) worker_error = std::current_exception();
        stop = true;
        queue.clear();
        work_cv.notify_all();
        space_cv.notify_all();
        return;
      }
      t.keep.reset();  // the frame goes back before more arrive
      std::lock_guard lock(mu);
      in_flight -= t.bytes.size();
      space_cv.notify_all();
    }
  }

  // Stops the workers (dropping queued records) and, unless the load succeeded, wipes every
  // byte they may have written.
  void abort() {
    {
      std::lock_guard lock(mu);
      stop = true;
      queue.clear();
    }
    work_cv.notify_all();
    for (auto& t : threads) t.join();
    threads.clear();
    if (!finished && !out.empty())
      secure_wipe(out.data(), static_cast<size_t>(std::min<uint64_t>(out.size(), next * layout.chunk_size)));
    partial.reset();
  }

  // Runs f; on any failure, here or earlier in a worker, the whole load fails for good.
  template <typename F>
  auto guarded(F&& f) {
    if (failed) std::rethrow_exception(failed);
    try {
      return f();
    } catch (...) {
      failed = std::current_exception();
      abort();
      finished = false;
      throw;
    }
  }

  void rethrow_worker_error_locked() {
    if (worker_error) std::rethrow_exception(worker_error);
  }

  // Hands a run of records to the workers, waiting while too much is in flight.
  void enqueue(Task t) {
    std::unique_lock lock(mu);
    space_cv.wait(lock, [&] { return worker_error || in_flight == 0 || in_flight + t.bytes.size() <= budget; });
    rethrow_worker_error_locked();
    in_flight += t.bytes.size();
    queue.push_back(std::move(t));
    work_cv.notify_one();
  }

  // Consumes header bytes; returns what follows the header.
  ByteView take_header(ByteView data) {
    while (!crypto && !data.empty()) {
      size_t n = std::min(header_wanted(), data.size());
      head.insert(head.end(), data.begin(), data.begin() + static_cast<long>(n));
      data = data.subspan(n);
      if (auto h = detail::parse_stream_header(head, options.max_chunk_size)) start(std::move(*h));
    }
    return data;
  }

  void take_records(ByteView data, const std::shared_ptr<const void>& keep) {
    while (!data.empty()) {
      const auto record = static_cast<size_t>(layout.record_size(next));
      if (!partial && data.size() >= record) {  // whole records in this piece
        uint64_t count = 0;
        size_t bytes = 0;
        while (next + count < layout.count) {
          const auto n = static_cast<size_t>(layout.record_size(next + count));
          if (bytes + n > data.size() || (count > 0 && bytes + n > kRunBytes)) break;
          bytes += n;
          ++count;
        }
        ByteView run = data.first(bytes);
        if (keep) {
          enqueue({next, count, run, keep});
        } else {
          auto copy = std::make_shared<Bytes>(run.begin(), run.end());
          ByteView view(*copy);
          enqueue({next, count, view, std::move(copy)});
        }
        next += count;
        data = data.subspan(bytes);
        continue;
      }
      if (!partial) {
        partial = std::make_shared<Bytes>();
        partial->reserve(record);
      }
      size_t n = std::min(record - partial->size(), data.size());
      partial->insert(partial->end(), data.begin(), data.begin() + static_cast<long>(n));
      data = data.subspan(n);
      if (partial->size() == record) {
        ByteView view(*partial);
        enqueue({next, 1, view, std::move(partial)});
        partial.reset();
        ++next;
      }
    }
  }

  void push(ByteView data, const std::shared_ptr<const void>& keep) {
    if (data.size() > total - received)
      throw Error(Errc::kFormat, "stream is longer than its announced " + std::to_string(total) + " bytes");
    {
      std::lock_guard lock(mu);
      rethrow_worker_error_locked();
    }
    received += data.size();
    take_records(take_header(data), keep);
  }

  SecureBytes finish() {
    if (received != total)
      throw Error(Errc::kFormat, "stream ended after " + std::to_string(received) + " of its announced " + std::to_string(total) +
                                     " bytes");
    if (!crypto) throw Error(Errc::kFormat, "stream header truncated after " + std::to_string(received) + " bytes");
    if (next != layout.count)  // unreachable when the sizes agree; kept as a guard
      throw Error(Errc::kAuth, "stream chunk " + std::to_string(next) + ": authentication failed: truncated, the stream ends before it");
    {
      std::unique_lock lock(mu);
      space_cv.wait(lock, [&] { return worker_error || in_flight == 0; });
      rethrow_worker_error_locked();
    }
    finished = true;
    abort();  // joins the idle workers; wipes nothing now
    return std::move(own);
  }
};

StreamAssembler::StreamAssembler(const Shield& shield, uint64_t container_size, uint64_t max_plaintext,
                                 const AssemblerOptions& options)
    : s_(std::make_unique<State>(shield, container_size, max_plaintext, nullptr, options)) {}

StreamAssembler::StreamAssembler(const Shield& shield, uint64_t container_size, uint64_t max_plaintext,
                                 PlaintextDestination destination, const AssemblerOptions& options)
    : s_(std::make_unique<State>(shield, container_size, max_plaintext, std::move(destination), options)) {
  if (!s_->destination) throw Error(Errc::kUsage, "stream assembler: empty plaintext destination");
}

StreamAssembler::~StreamAssembler() = default;

void StreamAssembler::push(ByteView data) {
  s_->guarded([&] { s_->push(data, nullptr); });
}

void StreamAssembler::push(ByteView data, std::shared_ptr<const void> keepalive) {
  if (!keepalive) throw Error(Errc::kUsage, "stream assembler: push without the owner of the bytes");
  s_->guarded([&] { s_->push(data, keepalive); });
}

SecureBytes StreamAssembler::finish() {
  if (s_->finished) throw Error(Errc::kUsage, "stream assembler: finish() called twice");
  return s_->guarded([&] { return s_->finish(); });
}

uint64_t StreamAssembler::plaintext_size() const { return s_->crypto ? s_->layout.plaintext_size() : 0; }

unsigned StreamAssembler::workers() const { return s_->nworkers; }

std::optional<StreamGeometry> peek_stream_geometry(ByteView prefix) {
  if (prefix.size() < detail::kStreamModeOffset + 5) return std::nullopt;
  if (!std::equal(detail::kStreamMagic.begin(), detail::kStreamMagic.end(), prefix.begin())) return std::nullopt;
  const uint8_t mode = prefix[detail::kStreamModeOffset];
  if (mode != kVersionPassword && mode != kVersionKey) return std::nullopt;
  return StreamGeometry{detail::kStreamFixedHeader + (mode == kVersionPassword ? 16 : 0), get_u32be(prefix.data() + 7)};
}

}  // namespace shield_nitro::shield
