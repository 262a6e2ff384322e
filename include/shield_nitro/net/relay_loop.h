// net::RelayLoop: many relays on one thread (epoll), for forwarders that carry many short
// requests (ingress). Same semantics as net::relay (half-close propagated, byte counts, how it
// ended), without a thread and a wake-up chain per connection.
//
//   net::RelayLoop loop("ingress 5000");
//   loop.add(std::move(client), std::move(target), [](const net::RelayResult& r) { log(r); });
//   ...; loop.stop();   // open relays end as kStopped
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/net/relay.h"

namespace shield_nitro::net {

class RelayLoop {
 public:
  // Called on the loop's thread once a relay has ended (both sockets already closed); must not
  // block.
  using Done = std::function<void(const RelayResult&)>;

  // Starts the loop's thread (named `name` for top and perf, cut to 15 bytes). Throws Error(kIo)
  // if epoll or eventfd cannot be created.
  explicit RelayLoop(const std::string& name);
  ~RelayLoop();  // stop()
  RelayLoop(const RelayLoop&) = delete;
  RelayLoop& operator=(const RelayLoop&) = delete;

  // Relays between client and target from now on (both made non-blocking; the loop owns and
  // closes them). Thread-safe. After stop(), the sockets are closed at once and done gets kStopped.
  void add(UniqueFd client, UniqueFd target, Done done);
  // Ends every open relay (kStopped) and joins the thread. Idempotent.
  void stop();
  // Relays open now.
  size_t active() const;
  // Bytes every RelayLoop of the process has moved with splice(2) instead of copying them
  // (a direction switches once one of its reads fills the 64 KiB buffer), counted when a relay
  // ends. For tests and benchmarks.
  static uint64_t spliced_bytes();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shield_nitro::net
