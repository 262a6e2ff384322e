// The supervisor's log pipeline: the app's stdout/stderr lines and the supervisor's own events,
// as JSON lines (host_link::format_log_record, the host link's "logs" op, docs/host-agent.md):
//   {"time":"2026-12-06T08:00:00.123Z","source":"app","stream":"stdout","line":"..."}
//   {"time":...,"source":"supervisor","stream":"event","event":"app_exited","line":"...","status":3}
//
// Every record goes to two destinations, each with its own thread and its own bounded queue of
// `buffer_bytes`: the console (the supervisor's stderr; only a debug-mode enclave's console can be
// read) and, once add_host() is called, the host agent. Adding a record never blocks (the app's
// pipes are read by the thread that adds them, so the app never waits on a slow destination):
// when a destination's queue is full the line is dropped and counted there, and the next record
// that fits is preceded by a "logs_dropped" event with the count. Events have a reserve beyond
// the queue (64 KiB), so app_exited is not lost to a flood of app lines.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/host_link/host_link.h"

namespace shield_nitro::supervisor {

// Fields of an event: integers or text (what the host agent's parser accepts).
using EventFields = std::map<std::string, host_link::LogField>;

// One record as a JSON line (ending in '\n'; at most host_link::kMaxLineBytes: a longer text is
// cut). Bytes that are not UTF-8 are replaced (U+FFFD).
std::string app_log_line(int64_t unix_ms, std::string_view stream, std::string_view line);
// A line the supervisor's own code wrote to its stderr (a library's log line): source
// "supervisor", stream "stderr".
std::string supervisor_log_line(int64_t unix_ms, std::string_view line);
// An event: fields are added beside time/source/stream/event/line (never replacing them).
std::string event_log_line(int64_t unix_ms, std::string_view event, std::string_view text, const EventFields& fields = {});

struct LogOptions {
  size_t buffer_bytes = size_t{1024} << 10;  // per destination (runtime config logs.buffer_kib)
  int console_fd = 2;                        // borrowed; -1: no console
  // How long close() waits for queued records to go out before it gives up on a destination.
  std::chrono::milliseconds flush_timeout{std::chrono::seconds(5)};
  // After the host connection fails (or cannot be made), the next attempt waits this long.
  std::chrono::milliseconds reconnect_every{std::chrono::seconds(2)};
};

// Counters of one destination, for tests and the supervisor's final event.
struct LogSinkStats {
  uint64_t written = 0;  // records written out
  uint64_t dropped = 0;  // records dropped because the queue was full
};

// The two destinations and their queues (see above). Thread-safe: the process core adds app
// lines, other threads add events.
class LogRouter {
 public:
  explicit LogRouter(LogOptions options = {});
  ~LogRouter();  // close(options.flush_timeout)
  LogRouter(const LogRouter&) = delete;
  LogRouter& operator=(const LogRouter&) = delete;

  // Starts the host destination. open() runs on that destination's thread and returns a
  // connected stream (the host link's "logs" op); it may throw Error. It is called again after
  // a failure, at most every reconnect_every; records wait (bounded) meanwhile. Call once.
  using OpenHost = std::function<UniqueFd()>;
  void add_host(OpenHost open);

  // One line of the app's output (stream "stdout" or "stderr"). Never blocks.
  void app_line(std::string_view stream, std::string_view line);
  // One line of the supervisor's own stderr (see supervisor_log_line). Never blocks.
  void supervisor_line(std::string_view line);
  // One supervisor event. Never blocks. Returns the JSON line (tests, and the caller's own use).
  std::string event(std::string_view name, std::string_view text, const EventFields& fields = {});

  // Waits until every queued record went out, or timeout; then stops the destinations.
  // Idempotent; later records are dropped silently.
  void close(std::chrono::milliseconds timeout);

  // Each destination's counters so far.
  LogSinkStats console_stats() const;
  LogSinkStats host_stats() const;

 private:
  class Sink;
  void push(std::string json, bool is_event);
  LogOptions options_;
  std::mutex open_mu_;
  OpenHost open_host_;
  std::unique_ptr<Sink> console_;
  std::unique_ptr<Sink> host_;
};

}  // namespace shield_nitro::supervisor
