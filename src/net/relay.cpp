#include "shield_nitro/net/relay.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>

#include "relay_direction.h"

namespace shield_nitro::net {
namespace {

using detail::Direction;

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
  // 2 × 64 KiB: on the heap, not on a relay thread's stack; new, not make_unique, whose
  // value-initialization would zero them.
  std::unique_ptr<Direction> up(new Direction);
  std::unique_ptr<Direction> down(new Direction);
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
