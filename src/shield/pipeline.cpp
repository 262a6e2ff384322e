#include "pipeline.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::shield::detail {
namespace {

constexpr unsigned kMaxThreads = 64;
constexpr unsigned kSlotsPerThread = 3;

struct Slot {
  SecureBytes in, out;  // plaintext passes through one of them: keep both zeroized
  ByteView in_view;     // the record: in, or the source's own memory
  size_t out_len = 0;
  uint64_t index = 0;
  bool last = false;
  bool done = false;
  std::exception_ptr error;
};

// Reads one record, looking one byte past it to learn whether it is the last. Records of a
// MemorySource are lent in place instead of copied.
class RecordReader {
 public:
  RecordReader(Source& in, size_t record) : in_(in), memory_(dynamic_cast<MemorySource*>(&in)), record_(record) {}
  bool lends() const { return memory_ != nullptr; }
  void next(Slot& s) {
    if (memory_) {
      s.in_view = memory_->remaining().first(std::min(record_, memory_->remaining().size()));
      memory_->consume(s.in_view.size());
      s.last = memory_->remaining().empty();
      return;
    }
    size_t n = 0;
    if (have_carry_) s.in.data()[n++] = carry_;
    n += in_.read(s.in.data() + n, record_ - n);
    s.in_view = {s.in.data(), n};
    have_carry_ = n == record_ && in_.read(&carry_, 1) == 1;
    s.last = !have_carry_;
  }

 private:
  Source& in_;
  MemorySource* memory_;
  size_t record_;
  bool have_carry_ = false;
  uint8_t carry_ = 0;
};

void run_one(const RecordJob& job, Slot& s) {
  try {
    s.out_len = job.fn(s.index, s.last, s.in_view, s.out.data());
  } catch (...) {
    s.error = std::current_exception();
  }
}

// Worker threads that take slots from a queue and mark them done.
class Workers {
 public:
  Workers(const RecordJob& job, unsigned n) : job_(job) {
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Workers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void submit(Slot& s) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      s.done = false;
      queue_.push_back(&s);
    }
    work_cv_.notify_one();
  }
  // Waits for s; meanwhile the caller runs queued records itself, so the pipeline's own
  // thread works instead of sleeping (run_records starts one worker fewer for that).
  void wait(Slot& s) {
    std::unique_lock<std::mutex> lock(mu_);
    while (!s.done) {
      if (queue_.empty()) done_cv_.wait(lock);
      else run_front(lock);
    }
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      run_front(lock);
    }
  }

  // Takes the oldest queued slot and runs it with the lock released (held on entry and exit).
  void run_front(std::unique_lock<std::mutex>& lock) {
    Slot* s = queue_.front();
    queue_.pop_front();
    lock.unlock();
    run_one(job_, *s);
    lock.lock();
    s->done = true;
    done_cv_.notify_all();
  }

  const RecordJob& job_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Slot*> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

unsigned resolve_threads(unsigned requested) {
  unsigned n = requested ? requested : std::thread::hardware_concurrency();
  return std::clamp(n, 1u, kMaxThreads);
}

void run_records(Source& in, Sink& out, const RecordJob& job, unsigned threads, const ProgressFn& progress) {
  threads = resolve_threads(threads);
  // One thread: work inline on a single slot; more: a few slots per worker.
  const size_t depth = threads == 1 ? 1 : size_t{threads} * kSlotsPerThread;
  RecordReader reader(in, job.in_record);
  std::vector<Slot> slots(depth);
  for (Slot& s : slots) {
    if (!reader.lends()) s.in = SecureBytes(job.in_record);
    s.out = SecureBytes(job.out_capacity);
  }
  std::unique_ptr<Workers> workers;
  if (threads > 1) workers = std::make_unique<Workers>(job, threads - 1);  // + the caller, in wait()

  uint64_t next = 0, written = 0;
  bool reading = true;
  while (reading || written < next) {
    while (reading && next - written < depth) {
      Slot& s = slots[next % depth];
      reader.next(s);
      s.index = next++;
      s.error = nullptr;
      reading = !s.last;
      if (workers) {
        workers->submit(s);
      } else {
        run_one(job, s);
      }
    }
    Slot& s = slots[written % depth];
    if (workers) workers->wait(s);
    if (s.error) std::rethrow_exception(s.error);  // ~Workers joins the rest
    out.write({s.out.data(), s.out_len});
    if (progress) progress(s.in_view.size());
    ++written;
  }
}

void parallel_for(uint64_t n, unsigned threads, const std::function<void(uint64_t)>& fn) {
  threads = static_cast<unsigned>(std::min<uint64_t>(resolve_threads(threads), n));
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first;
  uint64_t first_index = n;
  std::mutex mu;
  auto body = [&] {
    for (uint64_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < n;) {
      try {
        fn(i);
      } catch (...) {
        // The lowest failing index wins, as in the sequential path: every index below a
        // failure was already taken, so its outcome is known before the threads join.
        std::lock_guard<std::mutex> lock(mu);
        if (i < first_index) {
          first = std::current_exception();
          first_index = i;
        }
        failed = true;
      }
    }
  };
  std::vector<std::thread> helpers;
  for (unsigned t = 1; t < threads; ++t) helpers.emplace_back(body);
  body();
  for (auto& t : helpers) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace shield_nitro::shield::detail
