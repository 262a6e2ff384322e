#include "shield_nitro/net/relay.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>

namespace shield_nitro::net {
namespace {

constexpr size_t kRelayBuffer = 64 * 1024;

// One direction of a relay: bytes read from `from`, buffered, written to `to`.
struct Direction {
  int from = -1;
  int to = -1;
  RelayDirection which = RelayDirection::kUp;
  const std::function<void(RelayDirection, ByteView)>* tap = nullptr;
  uint8_t buf[kRelayBuffer];
  const uint8_t* data = buf;  // buf, or the caller's initial bytes until they are written
  size_t len = 0, off = 0;
  uint64_t total = 0;
  bool eof = false;     // `from` sent FIN
  bool shut = false;    // we sent FIN to `to`
  bool failed = false;

  bool wants_read() const { return !eof && !failed && len == 0; }
  bool wants_write() const { return len > off && !failed; }
  bool done() const { return shut || failed; }

  void preload(ByteView initial) {
    if (initial.empty()) return;
    if (*tap) (*tap)(which, initial);
    data = initial.data();
    len = initial.size();
    total += initial.size();
  }

  void on_readable() {
    ssize_t n = ::recv(from, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n < 0) {
      failed = true;
      return;
    }
    if (n == 0) {
      eof = true;
      finish_if_drained();
      return;
    }
    if (*tap) (*tap)(which, ByteView(buf, static_cast<size_t>(n)));
    data = buf;
    len = static_cast<size_t>(n);
    off = 0;
    total += static_cast<uint64_t>(n);
    // Write at once: the other side is nearly always ready, and a poll round trip per chunk
    // costs a syscall and a wake-up on the request path.
    on_writable();
  }

  void on_writable() {
    ssize_t n = ::send(to, data + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
      failed = true;
      return;
    }
    off += static_cast<size_t>(n);
    if (off == len) {
      off = len = 0;
      data = buf;
    }
    finish_if_drained();
  }

  // Half-close: once the source's FIN is seen and everything it sent is written, pass it on.
  void finish_if_drained() {
    if (eof && len == 0 && !shut) {
      ::shutdown(to, SHUT_WR);
      shut = true;
    }
  }
};

short events_for(const Direction& reader_side, const Direction& writer_side) {
  short e = 0;
  if (reader_side.wants_read()) e |= POLLIN;
  if (writer_side.wants_write()) e |= POLLOUT;
  return e;
}

}  // namespace

const char* relay_end_name(RelayResult::End end) {
  switch (end) {
    case RelayResult::End::kClosed: return "closed";
    case RelayResult::End::kReset: return "reset";
    case RelayResult::End::kStopped: return "stopped";
  }
  return "?";
}

RelayResult relay(int client, int target, const RelayOptions& options) {
  // 2 × 64 KiB: on the heap, not on a relay thread's stack.
  auto up = std::make_unique<Direction>();
  auto down = std::make_unique<Direction>();
  up->from = down->to = client;
  up->to = down->from = target;
  up->which = RelayDirection::kUp;
  down->which = RelayDirection::kDown;
  up->tap = down->tap = &options.tap;
  up->preload(options.initial_up);
  down->preload(options.initial_down);

  RelayResult result;
  bool stopped = false;
  while (!(up->done() && down->done())) {
    if (up->failed || down->failed) break;
    pollfd p[3] = {{client, events_for(*up, *down), 0}, {target, events_for(*down, *up), 0}, {options.stop_fd, POLLIN, 0}};
    int rc = ::poll(p, options.stop_fd >= 0 ? 3 : 2, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || (options.stop_fd >= 0 && (p[2].revents & POLLIN))) {
      stopped = true;
      break;
    }
    // POLLHUP/POLLERR without POLLIN: let read/write find out what happened.
    short bad = POLLHUP | POLLERR;
    if (p[0].revents & (POLLIN | bad) && up->wants_read()) up->on_readable();
    if (p[1].revents & (POLLIN | bad) && down->wants_read()) down->on_readable();
    if (p[1].revents & (POLLOUT | bad) && up->wants_write()) up->on_writable();
    if (p[0].revents & (POLLOUT | bad) && down->wants_write()) down->on_writable();
    if ((p[0].revents & POLLNVAL) || (p[1].revents & POLLNVAL)) {
      up->failed = true;
      break;
    }
    // A hang-up after its FIN means the peer closed both halves: nothing can reach it any more.
    if ((p[0].revents & POLLHUP) && up->eof) down->shut = true;
    if ((p[1].revents & POLLHUP) && down->eof) up->shut = true;
  }
  result.up = up->total;
  result.down = down->total;
  result.end = (up->failed || down->failed) ? RelayResult::End::kReset
               : stopped                    ? RelayResult::End::kStopped
                                            : RelayResult::End::kClosed;
  return result;
}

}  // namespace shield_nitro::net
