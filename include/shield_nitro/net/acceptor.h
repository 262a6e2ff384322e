// net::Acceptor: listens on one endpoint and runs a handler on its own thread for each accepted
// connection, at most max_connections at once. The accept loop of net::Proxy, the ingress
// forwarders and the egress proxy (module relay).
//
//   net::Acceptor a({.listen = ep, .name = "ingress"},
//                   [](uint64_t id, UniqueFd conn, int stop_fd) { ... });   // on its own thread
//   a.start(); ...; a.stop();   // stop_fd becomes readable; stop() joins every handler
//
// Connections are few and long-lived (a relay each), so a thread per connection is the simple
// and fast shape. A connection past the cap goes to `overflow` on the accept thread (which
// must not block: e.g. one short non-blocking write of a refusal), then is closed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "shield_nitro/net/endpoint.h"

namespace shield_nitro::net {

struct AcceptorOptions {
  Endpoint listen;
  ListenOptions listen_options;
  size_t max_connections = 512;
  std::string name = "acceptor";  // prefix of its log lines ("<name>: conn 7 refused: ...")
};

class Acceptor {
 public:
  // Runs on the connection's thread; owns conn. stop_fd becomes readable when stop() begins:
  // a handler blocked on the connection polls it too and returns promptly. Exceptions thrown by
  // the handler are logged (one line) and the connection closed.
  using Handler = std::function<void(uint64_t id, UniqueFd conn, int stop_fd)>;
  // A connection refused by the cap (see above); when unset it is logged and closed.
  using Overflow = std::function<void(uint64_t id, UniqueFd conn)>;

  Acceptor(AcceptorOptions options, Handler handler, Overflow overflow = {});
  ~Acceptor();  // stop()
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Listens and starts accepting. Throws Error(kIo) naming the endpoint and the reason if it
  // cannot listen; nothing is left running then (stop() and the destructor have nothing to do).
  void start();
  // Stops accepting, signals stop_fd, joins every handler, removes a unix socket file. Idempotent.
  void stop();
  // The listening address after start() (the real port for tcp://...:0).
  const Endpoint& endpoint() const;
  // Between a successful start() and stop().
  bool running() const;
  // Connections accepted so far (including those refused by the cap).
  uint64_t accepted() const;
  // Handlers running now.
  size_t active() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shield_nitro::net
