// net::relay: the one byte pump between two connected stream sockets, used by net::Proxy (the
// vsock-proxy shape), the ingress forwarders and both ends of the egress tunnel (module relay).
//
//   net::RelayOptions o;
//   o.stop_fd = stop_eventfd;                     // readable: give up at once
//   o.tap = [&](net::RelayDirection d, ByteView b) { record(d, b); };
//   net::RelayResult r = net::relay(client.get(), target.get(), o);
//
// Half-close is propagated: when one side shuts down its writing half, the relay writes out what
// it still holds from that side and then shuts down the writing half towards the other side,
// while the other direction keeps flowing. It returns once both directions have ended (or one
// failed, or stop_fd became readable). It never closes the descriptors (the caller owns them);
// they may be blocking or not (every call uses MSG_DONTWAIT). No exceptions for the peers'
// behaviour: a reset is a result, not an error.
#pragma once

#include <cstdint>
#include <functional>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::net {

enum class RelayDirection {
  kUp,    // client → target
  kDown,  // target → client
};

struct RelayOptions {
  // When readable (an eventfd, a pipe), the relay stops and returns kStopped. -1: none.
  int stop_fd = -1;
  // Bytes already read from the client (e.g. after a proxy request's head): sent to the target
  // first, and counted and tapped as up.
  ByteView initial_up;
  // Bytes already read from the target: sent to the client first (counted and tapped as down).
  ByteView initial_down;
  // Sees every relayed byte, in order per direction, before it is written on (recording, audit).
  std::function<void(RelayDirection, ByteView)> tap;
};

struct RelayResult {
  enum class End {
    kClosed,   // both sides sent their FIN and everything was passed on
    kReset,    // a read or write failed (a peer reset or vanished)
    kStopped,  // stop_fd became readable
  };
  End end = End::kClosed;
  uint64_t up = 0;    // bytes client → target
  uint64_t down = 0;  // bytes target → client
};

// Relays until both directions end (see above). Blocks the calling thread.
RelayResult relay(int client, int target, const RelayOptions& options = {});

// "closed", "reset" or "stopped", for log lines.
const char* relay_end_name(RelayResult::End end);

}  // namespace shield_nitro::net
