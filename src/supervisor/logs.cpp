#include "shield_nitro/supervisor/logs.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/net/fd.h"

namespace shield_nitro::supervisor {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Beyond a destination's queue, room kept for the supervisor's events.
constexpr size_t kEventReserve = 64 << 10;

int64_t now_ms() { return system_clock().now_ms(); }

}  // namespace

namespace {
std::string output_line(int64_t unix_ms, const char* source, std::string_view stream, std::string_view line) {
  host_link::LogRecord r;
  r.time = host_link::format_log_time(unix_ms);
  r.source = source;
  r.stream = std::string(stream);
  r.line = std::string(line);
  return host_link::format_log_record(r) + "\n";
}
}  // namespace

std::string app_log_line(int64_t unix_ms, std::string_view stream, std::string_view line) {
  return output_line(unix_ms, "app", stream, line);
}

std::string supervisor_log_line(int64_t unix_ms, std::string_view line) {
  return output_line(unix_ms, "supervisor", "stderr", line);
}

std::string event_log_line(int64_t unix_ms, std::string_view event, std::string_view text, const EventFields& fields) {
  host_link::LogRecord r;
  r.time = host_link::format_log_time(unix_ms);
  r.source = "supervisor";
  r.stream = "event";
  r.event = std::string(event);
  r.line = std::string(text);
  r.fields = fields;
  return host_link::format_log_record(r) + "\n";
}

// One destination: a bounded queue and the thread that writes it out.
class LogRouter::Sink {
 public:
  using Problem = std::function<void(const std::string&)>;

  // The console: a borrowed blocking fd.
  Sink(size_t capacity, int fd) : capacity_(capacity), borrowed_fd_(fd), active_(fd >= 0) {
    if (active_) thread_ = std::thread([this] { run(); });
  }
  // The host: connected by open() on this thread.
  Sink(size_t capacity, OpenHost open, std::chrono::milliseconds reconnect_every, Problem problem)
      : capacity_(capacity), open_(std::move(open)), reconnect_every_(reconnect_every), problem_(std::move(problem)) {}

  ~Sink() { finish(); }

  void activate() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (active_ || closing_) return;
      active_ = true;
    }
    thread_ = std::thread([this] { run(); });
  }

  void push(const std::string& json, bool is_event) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!active_ || closing_) return;
    if (bytes_ + json.size() > capacity_ + (is_event ? kEventReserve : 0)) {
      ++dropped_pending_;
      ++stats_.dropped;
      return;
    }
    if (dropped_pending_ > 0) queue_drop_notice_locked();
    bytes_ += json.size();
    queue_.push_back(json);
    cv_.notify_one();
  }

  void begin_close(std::chrono::milliseconds timeout) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return;
    closing_ = true;
    deadline_ = SteadyClock::now() + timeout;
    cv_.notify_one();
  }

  void finish() {
    begin_close(std::chrono::milliseconds(0));
    if (thread_.joinable()) thread_.join();
  }

  LogSinkStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  void queue_drop_notice_locked() {
    std::string notice = event_log_line(now_ms(), "logs_dropped",
                                        std::to_string(dropped_pending_) + " log lines dropped: the log buffer was full",
                                        {{"count", static_cast<int64_t>(dropped_pending_)}});
    dropped_pending_ = 0;
    bytes_ += notice.size();
    queue_.push_back(std::move(notice));
  }

  bool host() const { return static_cast<bool>(open_); }
  int fd() const { return host() ? host_fd_.get() : borrowed_fd_; }

  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (dropped_pending_ > 0 && queue_.empty()) queue_drop_notice_locked();
      bool past_deadline = closing_ && SteadyClock::now() >= deadline_;
      if (closing_ && (queue_.empty() || past_deadline)) return;
      if (host() && !host_fd_) {
        // Closing: one last attempt at once, and no waiting for a host that is not there.
        if (closing_ && last_try_done_) return;
        if (closing_) last_try_done_ = true;
        if (closing_ || SteadyClock::now() >= next_attempt_) {
          lock.unlock();
          connect();
          lock.lock();
          continue;
        }
        cv_.wait_until(lock, closing_ ? std::min(next_attempt_, deadline_) : next_attempt_);
        continue;
      }
      if (queue_.empty()) {
        cv_.wait(lock, [&] { return !queue_.empty() || closing_ || dropped_pending_ > 0; });
        continue;
      }
      std::deque<std::string> batch;
      batch.swap(queue_);
      bytes_ = 0;
      lock.unlock();
      size_t written = write_batch(batch);
      lock.lock();
      stats_.written += written;
      if (written < batch.size()) {
        // The rest is lost (host gone, or the close deadline passed): counted, and reported to
        // the host when it is back.
        stats_.dropped += batch.size() - written;
        dropped_pending_ += batch.size() - written;
      }
    }
  }

  void connect() {
    try {
      UniqueFd fd = open_();
      net::set_nonblocking(fd.get(), true);
      host_fd_ = std::move(fd);
      if (failed_) problem_("logs: the host link is back; log lines go to the host agent again");
      failed_ = false;
    } catch (const std::exception& e) {
      if (!failed_) problem_(std::string("logs: cannot reach the host agent (") + e.what() + "); lines wait, bounded, and it is retried");
      failed_ = true;
      next_attempt_ = SteadyClock::now() + reconnect_every_;
    }
  }

  // Writes the records in order; returns how many went out whole.
  size_t write_batch(const std::deque<std::string>& batch) {
    size_t n = 0;
    for (const auto& rec : batch) {
      if (!write_record(rec)) {
        if (host()) {
          if (!failed_) problem_("logs: the host link failed while writing; reconnecting");
          failed_ = true;
          host_fd_.reset();
          std::lock_guard<std::mutex> lock(mu_);
          next_attempt_ = SteadyClock::now() + reconnect_every_;
        }
        break;
      }
      ++n;
    }
    return n;
  }

  bool past_close_deadline() {
    std::lock_guard<std::mutex> lock(mu_);
    return closing_ && SteadyClock::now() >= deadline_;
  }

  bool write_record(const std::string& rec) {
    size_t off = 0;
    while (off < rec.size()) {
      ssize_t w = host() ? ::send(fd(), rec.data() + off, rec.size() - off, MSG_NOSIGNAL)
                         : ::write(fd(), rec.data() + off, rec.size() - off);
      if (w > 0) {
        off += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // A host that does not read stalls only this thread; the queue fills and drops.
        if (past_close_deadline()) return false;
        pollfd p{fd(), POLLOUT, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      return false;
    }
    return true;
  }

  const size_t capacity_;
  const int borrowed_fd_ = -1;
  const OpenHost open_;
  const std::chrono::milliseconds reconnect_every_{0};
  const Problem problem_;
  UniqueFd host_fd_;  // the sink thread's alone
  bool failed_ = false;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  size_t bytes_ = 0;
  uint64_t dropped_pending_ = 0;
  LogSinkStats stats_;
  bool active_ = false;
  bool closing_ = false;
  bool last_try_done_ = false;
  SteadyClock::time_point deadline_{};
  SteadyClock::time_point next_attempt_{};
  std::thread thread_;
};

LogRouter::LogRouter(LogOptions options) : options_(options) {
  console_ = std::make_unique<Sink>(options_.buffer_bytes, options_.console_fd);
  host_ = std::make_unique<Sink>(
      options_.buffer_bytes,
      [this]() -> UniqueFd {
        std::lock_guard<std::mutex> lock(open_mu_);
        return open_host_();
      },
      options_.reconnect_every,
      [this](const std::string& why) { console_->push(event_log_line(now_ms(), "logs_host", why), true); });
}

LogRouter::~LogRouter() { close(options_.flush_timeout); }

void LogRouter::add_host(OpenHost open) {
  {
    std::lock_guard<std::mutex> lock(open_mu_);
    open_host_ = std::move(open);
  }
  host_->activate();
}

void LogRouter::push(std::string json, bool is_event) {
  console_->push(json, is_event);
  host_->push(json, is_event);
}

void LogRouter::app_line(std::string_view stream, std::string_view line) { push(app_log_line(now_ms(), stream, line), false); }

void LogRouter::supervisor_line(std::string_view line) { push(supervisor_log_line(now_ms(), line), false); }

std::string LogRouter::event(std::string_view name, std::string_view text, const EventFields& fields) {
  std::string line = event_log_line(now_ms(), name, text, fields);
  push(line, true);
  return line;
}

void LogRouter::close(std::chrono::milliseconds timeout) {
  // The host first: what it has to say about the link still reaches the console.
  auto start = SteadyClock::now();
  host_->begin_close(timeout);
  host_->finish();
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(start + timeout - SteadyClock::now());
  console_->begin_close(std::max(left, std::min(timeout, std::chrono::milliseconds(1000))));
  console_->finish();
}

LogSinkStats LogRouter::console_stats() const { return console_->stats(); }
LogSinkStats LogRouter::host_stats() const { return host_->stats(); }

}  // namespace shield_nitro::supervisor
