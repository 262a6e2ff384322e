// net::Server: serves framed CBOR requests (docs/protocol.md) on one endpoint.
//
//   net::Server server(net::Endpoint::parse("vsock://ANY:5000"));
//   server.handle("echo", [](const net::Request& req, net::RequestContext&) {
//     return net::Response::success(req.body);
//   });
//   server.start();            // listens, then serves on background threads
//   ...
//   server.stop();             // graceful: stop accepting, finish in-flight, close
//
// Design: one event-loop thread (epoll, non-blocking sockets) reads and decodes frames for
// every connection; a small pool of workers runs handlers. Requests on one connection run
// concurrently and their responses go out as they complete, matched by id (pipelining).
// A worker writes its response straight to the socket when nothing is queued before it, so
// the common path costs no extra wake-up of the event loop. An op may also have a fast path
// (handle with a FastPath) that the event loop runs itself, in arrival order, for cheap
// requests: no hand-off to a worker, and the answers to one read's requests go out in one write.
//
// One bad peer never affects the others: malformed or wrongly typed messages get an error
// response; an oversize frame gets a connection-level error (id 0) and that connection is
// closed; a peer that stops reading its replies stops being read (backpressure), and is dropped
// when its queued output passes a limit or when the replies queued for all connections pass
// a total (the largest holder goes first); idle connections and frames that trickle in too
// slowly (slowloris) are closed by timeouts. At max_connections, peers that already closed are
// reaped before a new connection is refused, and each event-loop turn accepts a bounded number
// of connections, so a connect/close flood cannot starve established clients.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/frame.h"
#include "shield_nitro/net/message.h"

namespace shield_nitro::net {

struct ServerOptions {
  size_t workers = 0;                          // handler threads; 0 = one per CPU (at least 2)
  size_t max_frame = kDefaultMaxFrame;         // larger frames: error (id 0) and close
  size_t max_connections = 4096;               // further accepts are closed at once
  size_t max_in_flight_per_connection = 256;   // at this many, reading that connection pauses
  size_t output_pause_bytes = size_t{1} << 20;    // unsent replies at which reading a peer pauses
  size_t output_buffer_limit = size_t{64} << 20;  // unsent replies of one peer before dropping it
  size_t total_output_limit = size_t{256} << 20;  // unsent replies of all peers: past it, drop the largest
  size_t stream_buffer_limit = size_t{8} << 20;   // queued continuation bytes before pausing reads
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(10)};  // nothing in flight or sent
  std::chrono::milliseconds read_timeout{std::chrono::seconds(30)};  // to finish a started frame
  std::chrono::milliseconds drain_timeout{std::chrono::seconds(10)}; // stop(): wait for in-flight
  ListenOptions listen;
  // Request bodies' byte strings point into the received frame instead of being copied
  // (cbor::decode_borrowed): handlers read them with bytes_view(), as_bytes() refuses them.
  // The frame stays alive as long as any copy of the body (stream parts likewise).
  bool borrow_bytes = false;
};

// What a handler knows about the connection its request came on.
class RequestContext {
 public:
  virtual ~RequestContext() = default;
  // Unique per server for its lifetime; lets a service bind sessions to a connection.
  virtual uint64_t connection_id() const = 0;
  // True when the request opened a stream ("more": true).
  virtual bool streaming() const = 0;
  // The body of the next continuation frame of this stream, waiting for it to arrive, or
  // nullopt after the last one. Throws Error(kIo) if the peer disconnects and
  // Error(kTimeout) if nothing arrives within the server's idle timeout.
  virtual std::optional<cbor::Value> next_part() = 0;
  // Per-connection state owned by the service (e.g. a channel session). Dropped (so its
  // destructor can zeroize keys) when the connection closes. Thread-safe.
  virtual std::shared_ptr<void> connection_state() const = 0;
  virtual void set_connection_state(std::shared_ptr<void> state) = 0;
};

// Runs on a worker thread. Throwing shield_nitro::Error becomes an error response with that
// code; any other exception becomes "internal". Several may run at once, also for one
// connection, so handlers must be thread-safe.
using Handler = std::function<Response(const Request&, RequestContext&)>;

// What an op's fast path decided about one request (see Server::handle with a FastPath).
struct FastOutcome {
  std::optional<Response> response;               // answered at once, from the event loop
  std::function<Response(RequestContext&)> rest;  // else, if set: runs on a worker instead of the handler

  // The answer, sent at once from the event loop.
  static FastOutcome answer(Response r) { return {std::move(r), {}}; }
  // The op's handler runs on a worker, as if there were no fast path.
  static FastOutcome defer() { return {}; }
  // The fast path did the in-order part (e.g. accepted a sealed record); `rest` finishes on a
  // worker. It must not refer to the request's borrowed bytes (they are gone by then).
  static FastOutcome finish_on_worker(std::function<Response(RequestContext&)> rest) { return {std::nullopt, std::move(rest)}; }
};
// Runs on the event-loop thread, for every request of its op that is not a stream, in the
// order the connection's frames arrived, before any worker sees the request. It must not block
// and should cost about what a small AEAD does: every connection waits while it runs. With
// borrow_bytes, the request's byte strings are valid only during the call. Throwing
// shield_nitro::Error answers with that error.
using FastPath = std::function<FastOutcome(const Request&, RequestContext&)>;

struct ServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_open = 0;
  uint64_t connections_dropped = 0;  // closed by a limit, a timeout or a protocol error
  uint64_t requests = 0;             // requests dispatched to handlers
  uint64_t error_responses = 0;      // responses with "ok": false (protocol or handler)
  uint64_t connections_refused = 0;  // accepted and closed at once at max_connections
  uint64_t requests_in_flight = 0;   // dispatched, not yet answered
  uint64_t connections_paused_for_output = 0;  // open, not read: unsent replies >= output_pause_bytes
  uint64_t buffered_output_bytes = 0;          // unsent replies queued in the server, all connections
  uint64_t peak_buffered_output_bytes = 0;     // the most buffered_output_bytes has been
};

class Server {
 public:
  explicit Server(Endpoint endpoint, ServerOptions options = {});
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Registers the handler for one op. Call before start(); a name registered twice throws.
  void handle(const std::string& op, Handler handler);
  // The same with a fast path: answers of the fast path cost no hand-off to a worker, and the
  // answers to one read's requests go out in one write.
  void handle(const std::string& op, Handler handler, FastPath fast);
  // Marks op's requests as carrying a secret in clear (e.g. credentials pushed outside a
  // channel). For them only, the server leaves no copy behind: the connection's receive buffer
  // is zeroed (wherever the frame's bytes passed) as soon as the frame is decoded, and the
  // server's copy of the frame and the decoded body's strings once the handler has returned,
  // before the answer goes out. What the handler copies is its own to wipe (e.g. SecureBytes).
  // Covers the request's own frame, not a stream's continuation frames; other ops pay nothing.
  // Call after handle(op, ...) and before start(); Error(kUsage) otherwise.
  void mark_sensitive(const std::string& op);
  // Called (on the event-loop thread) after a connection closed, for any reason.
  void on_disconnect(std::function<void(uint64_t connection_id)> callback);

  // Listens (throws Error(kIo) if it cannot) and starts the threads.
  void start();
  // Graceful shutdown: stops accepting, answers new requests with an "io" error, waits up to
  // drain_timeout for in-flight requests and their output, then closes everything. Idempotent.
  // Not async-signal-safe: from a signal, use wait_for_termination_signal() instead.
  void stop();

  // The listening address after start() (with the real port for tcp://...:0).
  const Endpoint& endpoint() const;
  ServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Blocks SIGINT and SIGTERM in the calling thread and waits for one of them; returns its
// number. Call it from main() before starting threads (they inherit the mask), e.g.
//   server.start(); wait_for_termination_signal(); server.stop();
int wait_for_termination_signal();
// Blocks SIGINT/SIGTERM (and ignores SIGPIPE) in the calling thread; call first thing in main
// when wait_for_termination_signal() is used after threads start.
void block_termination_signals();

}  // namespace shield_nitro::net
