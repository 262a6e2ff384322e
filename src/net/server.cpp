#include "shield_nitro/net/server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "sockaddr.h"
#include "worker_pool.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::net {
namespace {

using detail::errno_text;

constexpr uint64_t kListenTag = 0;
constexpr uint64_t kWakeTag = 1;
constexpr uint64_t kFirstConnId = 16;
constexpr size_t kBytesPerEvent = 1 << 20;  // fairness: at most 1 MiB per connection per turn
constexpr int64_t kTickMs = 50;     // timeout sweep period
// Accepts per event-loop turn: a connect flood cannot keep the loop from serving (and reaping)
// the connections it already has.
constexpr int kAcceptsPerTurn = 64;
constexpr size_t kKeepOutCapacity = size_t{1} << 20;  // larger idle output buffers are freed

int64_t ms_to_ns(std::chrono::milliseconds d) { return static_cast<int64_t>(d.count()) * 1000000; }

// Continuation parts of one stream, queued by the event loop for the handler.
// Guarded by the owning Conn's mutex.
struct Stream {
  std::condition_variable cv;
  std::deque<std::pair<cbor::Value, size_t>> parts;  // body, frame size
  bool last_received = false;
  bool handler_done = false;  // later parts are discarded
  bool aborted = false;       // the connection closed before the last part
};

struct Conn {
  Conn(uint64_t i, int f, size_t max_frame) : id(i), fd(f), decoder(max_frame) {}
  const uint64_t id;
  // Event-loop thread only.
  UniqueFd fd;
  FrameDecoder decoder;
  int64_t partial_since_ns = 0;
  bool flush_due = false;  // fast-path answers appended to out, written after the read's frames
  std::atomic<int64_t> last_activity_ns{0};

  std::mutex mu;  // guards everything below (and Stream contents)
  Bytes out;
  size_t out_pos = 0;
  bool closed = false;
  bool peer_eof = false;           // the peer shut down its writing half
  bool close_when_flushed = false; // after a connection-level error
  bool doomed = false;             // close at the next look of the event loop
  uint32_t events = 0;
  size_t in_flight = 0;
  size_t stream_bytes = 0;
  size_t counted_out = 0;       // this connection's share of Impl::buffered_out
  bool out_paused = false;      // counted in Impl::n_out_paused
  bool frames_waiting = false;  // decoding stopped while reading was paused: resume it
  std::unordered_map<uint64_t, std::shared_ptr<Stream>> streams;
  std::shared_ptr<void> state;

  size_t pending_out() const { return out.size() - out_pos; }
};

}  // namespace

struct Server::Impl {
  class Context;  // the RequestContext a handler gets

  Endpoint requested;
  Endpoint bound;
  ServerOptions opt;
  struct OpEntry {
    Handler handler;
    FastPath fast;  // may be empty
    bool sensitive = false;  // mark_sensitive: its frames carry a secret in clear
  };
  std::unordered_map<std::string, OpEntry> handlers;
  std::function<void(uint64_t)> disconnect_cb;

  UniqueFd listen_fd;
  UniqueFd epoll_fd;
  UniqueFd wake_fd;
  ino_t unix_inode = 0;
  std::thread loop_thread;
  detail::WorkerPool pool;
  std::atomic<bool> stopping{false};
  bool started = false;
  bool stopped = false;
  std::mutex lifecycle_mu;

  std::mutex wake_mu;
  std::vector<uint64_t> wake_ids;  // connections a worker wants the loop to look at

  // Event-loop thread only.
  std::unordered_map<uint64_t, std::shared_ptr<Conn>> conns;
  uint64_t next_id = kFirstConnId;
  bool accepting = true;
  int64_t accept_resume_ns = 0;
  int64_t drain_deadline_ns = 0;
  std::vector<detail::WorkerPool::Task> batch;

  std::atomic<uint64_t> n_accepted{0}, n_open{0}, n_dropped{0}, n_requests{0}, n_errors{0}, n_refused{0};
  std::atomic<uint64_t> n_in_flight{0}, n_out_paused{0}, buffered_out{0}, peak_out{0};

  // ---- shared by the loop and workers (call with c.mu held) ----
  bool reading_allowed(const Conn& c) const {
    return !c.closed && !c.peer_eof && !c.close_when_flushed && !c.doomed &&
           c.in_flight < opt.max_in_flight_per_connection && c.stream_bytes < opt.stream_buffer_limit &&
           c.pending_out() < opt.output_pause_bytes;
  }

  void update_events(Conn& c) {
    if (c.closed) return;
    if (c.frames_waiting && reading_allowed(c)) {
      c.frames_waiting = false;
      wake_loop(c.id);  // complete frames may already sit in the decoder: no socket event will come
    }
    uint32_t want = (reading_allowed(c) ? EPOLLIN : 0u) | (c.pending_out() ? EPOLLOUT : 0u);
    if (want == c.events) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = c.id;
    if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_MOD, c.fd.get(), &ev) == 0) c.events = want;
  }

  // Writes what the socket takes now; a hard error dooms the connection.
  void flush(Conn& c) {
    while (c.pending_out() && !c.closed) {
      ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_pos, c.pending_out(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out_pos += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      c.doomed = true;
      break;
    }
    if (c.out_pos == c.out.size()) {
      if (c.out.capacity() > kKeepOutCapacity) Bytes().swap(c.out);
      c.out.clear();
      c.out_pos = 0;
    } else if (c.out_pos > (size_t{1} << 20) && c.out_pos > c.out.size() / 2) {
      c.out.erase(c.out.begin(), c.out.begin() + static_cast<ptrdiff_t>(c.out_pos));
      c.out_pos = 0;
    }
    account_output(c);
  }

  // Keeps the totals behind backpressure and the stats in step with c's unsent output.
  void account_output(Conn& c) {
    if (c.closed) return;
    size_t now = c.pending_out();
    if (now > c.counted_out) {
      uint64_t total = buffered_out.fetch_add(now - c.counted_out) + (now - c.counted_out);
      uint64_t peak = peak_out.load(std::memory_order_relaxed);
      while (total > peak && !peak_out.compare_exchange_weak(peak, total)) {
      }
      if (total > opt.total_output_limit) {  // the loop sheds the largest holder
        uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(wake_fd.get(), &one, sizeof one);
      }
    } else if (now < c.counted_out) {
      buffered_out.fetch_sub(c.counted_out - now);
    }
    c.counted_out = now;
    bool paused = now >= opt.output_pause_bytes;
    if (paused != c.out_paused) {
      c.out_paused = paused;
      if (paused) n_out_paused++;
      else n_out_paused--;
    }
  }

  void send_response(Conn& c, const Response& r) {
    if (c.closed || c.doomed) return;
    bool was_empty = c.pending_out() == 0;
    append_response_frame(c.out, r);  // encoded in place: no frame buffer, no copy
    if (!r.ok) n_errors.fetch_add(1, std::memory_order_relaxed);
    flush(c);
    if (!was_empty && c.pending_out() > opt.output_buffer_limit) {  // past backpressure: in-flight replies
      log_warn("net: connection " + std::to_string(c.id) + " dropped: " + std::to_string(c.pending_out()) +
               " bytes of responses unread (limit " + std::to_string(opt.output_buffer_limit) + ")");
      c.doomed = true;
    }
    c.last_activity_ns.store(monotonic_ns(), std::memory_order_relaxed);
  }

  // A fast-path answer: queued behind earlier output and written with the other answers of
  // the same read (decode_frames flushes), so a batch of pipelined requests costs one send.
  void queue_response(Conn& c, const Response& r) {
    std::lock_guard lock(c.mu);
    if (c.closed || c.doomed) return;
    append_response_frame(c.out, r);
    if (!r.ok) n_errors.fetch_add(1, std::memory_order_relaxed);
    account_output(c);
    c.flush_due = true;
  }

  bool wants_close(const Conn& c) const {
    return c.doomed || ((c.peer_eof || c.close_when_flushed) && c.in_flight == 0 && c.pending_out() == 0);
  }

  void wake_loop(uint64_t id) {
    {
      std::lock_guard lock(wake_mu);
      wake_ids.push_back(id);
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd.get(), &one, sizeof one);
  }

  // ---- workers ----
  // wipe_frame: set for a sensitive op (its request is wiped, with *wipe_frame, before the answer goes out).
  void run_handler(const std::shared_ptr<Conn>& conn, const std::shared_ptr<Stream>& stream, Request& req,
                   const Handler& handler, const std::shared_ptr<const Bytes>* wipe_frame = nullptr);
  void finish_request(Conn& c, const std::shared_ptr<Stream>& stream, Response& r);
  // A sensitive request's decoded strings and the frame they borrow from (if any), zeroed.
  static void wipe_request(Request& req, const std::shared_ptr<const Bytes>& frame) {
    req.body.wipe_strings();
    // The frame was made for this request alone (hold_last) and nothing reads it any more.
    if (frame) secure_wipe(const_cast<uint8_t*>(frame->data()), frame->size());
  }

  // ---- event loop ----
  void loop();
  void accept_all();
  void reap_closed_peers();
  void on_event(uint64_t id, uint32_t events);
  void on_readable(const std::shared_ptr<Conn>& c);
  bool decode_frames(const std::shared_ptr<Conn>& c);
  void shed_output();
  void on_frame(const std::shared_ptr<Conn>& c, Bytes frame);
  bool on_frame_view(const std::shared_ptr<Conn>& c, ByteView frame);
  bool dispatch_request(const std::shared_ptr<Conn>& c, Request req, size_t frame_size,
                        std::shared_ptr<const Bytes> frame = nullptr);
  void on_continuation(Conn& c, Request& req, size_t frame_size);
  void on_peer_eof(Conn& c);
  void close_conn(uint64_t id, const char* why);
  void sweep(int64_t now);
  void handle_wakes();
  bool drained() const;
};

class Server::Impl::Context final : public RequestContext {
 public:
  Context(Server::Impl& s, std::shared_ptr<Conn> c, std::shared_ptr<Stream> st)
      : server_(s), conn_(std::move(c)), stream_(std::move(st)) {}

  uint64_t connection_id() const override { return conn_->id; }
  bool streaming() const override { return stream_ != nullptr; }

  std::optional<cbor::Value> next_part() override {
    if (!stream_) return std::nullopt;
    std::unique_lock lock(conn_->mu);
    auto timeout = server_.opt.idle_timeout;
    bool ready = stream_->cv.wait_for(lock, timeout, [&] {
      return !stream_->parts.empty() || stream_->last_received || stream_->aborted;
    });
    if (!stream_->parts.empty()) {
      auto [body, size] = std::move(stream_->parts.front());
      stream_->parts.pop_front();
      conn_->stream_bytes -= size;
      server_.update_events(*conn_);
      return std::move(body);
    }
    if (stream_->last_received) return std::nullopt;
    if (!ready) throw Error(Errc::kTimeout, "stream: no continuation frame within " + std::to_string(timeout.count()) + " ms");
    throw Error(Errc::kIo, "stream: the connection closed before the last part");
  }

  std::shared_ptr<void> connection_state() const override {
    std::lock_guard lock(conn_->mu);
    return conn_->state;
  }
  void set_connection_state(std::shared_ptr<void> state) override {
    std::shared_ptr<void> old;
    std::lock_guard lock(conn_->mu);
    old = std::exchange(conn_->state, std::move(state));
  }

 private:
  Server::Impl& server_;
  std::shared_ptr<Conn> conn_;
  std::shared_ptr<Stream> stream_;
};

namespace {

Response call_handler(const Handler& handler, const Request& req, RequestContext& ctx) {
  try {
    return handler(req, ctx);
  } catch (const Error& e) {
    return Response::failure(e.code(), e.what());
  } catch (const std::exception& e) {
    return Response::failure(Errc::kInternal, std::string("handler failed: ") + e.what());
  } catch (...) {
    return Response::failure(Errc::kInternal, "handler failed with a non-standard exception");
  }
}

}  // namespace

void Server::Impl::run_handler(const std::shared_ptr<Conn>& conn, const std::shared_ptr<Stream>& stream, Request& req,
                               const Handler& handler, const std::shared_ptr<const Bytes>* wipe_frame) {
  Context ctx(*this, conn, stream);
  Response r = call_handler(handler, req, ctx);
  r.id = req.id;
  if (wipe_frame) wipe_request(req, *wipe_frame);  // before the answer goes out: a peer that has it finds no copy left
  finish_request(*conn, stream, r);
}

void Server::Impl::finish_request(Conn& c, const std::shared_ptr<Stream>& stream, Response& r) {
  std::lock_guard lock(c.mu);
  if (stream) {
    stream->handler_done = true;
    for (auto& p : stream->parts) c.stream_bytes -= p.second;
    stream->parts.clear();
  }
  c.in_flight--;
  n_in_flight--;
  send_response(c, r);
  update_events(c);
  if (!c.closed && wants_close(c)) wake_loop(c.id);
}

// ---------------- event loop ----------------

void Server::Impl::accept_all() {
  for (int turn = 0; turn < kAcceptsPerTurn; ++turn) {
    if (conns.size() >= opt.max_connections) reap_closed_peers();
    int fd = ::accept4(listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        log_warn("net: accept paused for 100 ms: " + errno_text(errno));
        ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, listen_fd.get(), nullptr);
        accepting = false;
        accept_resume_ns = monotonic_ns() + 100'000'000;
      }
      return;
    }
    // A peer that connected and already closed without a byte (a connect/close flood) costs
    // no slot, no epoll registration and no log line.
    if (uint8_t probe; ::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
      ::close(fd);
      continue;
    }
    if (conns.size() >= opt.max_connections) {
      // The same text each time, so that a flood collapses into one line with a count.
      log_warn("net: connection refused: " + std::to_string(opt.max_connections) + " connections open (max_connections)");
      n_refused++;
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on unix/vsock
    auto c = std::make_shared<Conn>(next_id++, fd, opt.max_frame);
    c->last_activity_ns = monotonic_ns();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = c->id;
    if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      log_warn("net: epoll_ctl(ADD): " + errno_text(errno));
      continue;
    }
    c->events = EPOLLIN;
    conns.emplace(c->id, c);
    n_accepted++;
    n_open++;
    log_debug("net: connection " + std::to_string(c->id) + " opened on " + bound.to_string());
  }
}

// At the limit: handles what is already pending on the connections (a peer that closed shows
// as readable), so that slots held by closed peers are freed before a new client is refused.
void Server::Impl::reap_closed_peers() {
  epoll_event events[256];
  for (int round = 0; round < 16 && conns.size() >= opt.max_connections; ++round) {
    int n = ::epoll_wait(epoll_fd.get(), events, 256, 0);
    for (int i = 0; i < n; ++i)
      if (events[i].data.u64 != kListenTag && events[i].data.u64 != kWakeTag) on_event(events[i].data.u64, events[i].events);
    if (n < 256) break;
  }
}

void Server::Impl::on_peer_eof(Conn& c) {
  std::lock_guard lock(c.mu);
  c.peer_eof = true;
  for (auto& [id, s] : c.streams) {
    if (!s->last_received) {
      s->aborted = true;
      s->cv.notify_all();
    }
  }
  update_events(c);
}

void Server::Impl::on_readable(const std::shared_ptr<Conn>& c) {
  for (size_t budget = kBytesPerEvent; budget > 0;) {
    {
      std::lock_guard lock(c->mu);
      if (!reading_allowed(*c)) break;
    }
    // Received straight into the decoder: a large frame's payload lands in its own buffer.
    std::span<uint8_t> area = c->decoder.read_area();
    area = area.first(std::min(area.size(), budget));
    ssize_t n = ::read(c->fd.get(), area.data(), area.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) {
      std::lock_guard lock(c->mu);
      c->doomed = true;
      break;
    }
    if (n == 0) {
      if (c->decoder.partial()) log_debug("net: connection " + std::to_string(c->id) + " ended mid-frame");
      on_peer_eof(*c);
      break;
    }
    c->last_activity_ns.store(monotonic_ns(), std::memory_order_relaxed);
    c->decoder.commit(static_cast<size_t>(n));
    budget -= static_cast<size_t>(n);
    if (!decode_frames(c)) break;
    if (static_cast<size_t>(n) < area.size()) break;
  }
  if (!c->decoder.partial()) c->partial_since_ns = 0;
  else if (c->partial_since_ns == 0) c->partial_since_ns = monotonic_ns();
}

// Dispatches the complete frames in c's decoder while reading is allowed (one read may hold
// thousands of small requests: each one counts against the in-flight and output bounds).
// False when framing is lost.
bool Server::Impl::decode_frames(const std::shared_ptr<Conn>& c) {
  auto flush_answers = [&] {  // the fast-path answers of this read, in one write
    if (!c->flush_due) return;
    c->flush_due = false;
    std::lock_guard lock(c->mu);
    flush(*c);
    update_events(*c);
    c->last_activity_ns.store(monotonic_ns(), std::memory_order_relaxed);
  };
  try {
    for (;;) {
      {
        std::lock_guard lock(c->mu);
        if (!reading_allowed(*c)) {
          c->frames_waiting = !c->closed;
          break;
        }
      }
      if (opt.borrow_bytes) {
        auto view = c->decoder.next_view();
        if (!view) break;
        if (!on_frame_view(c, *view)) break;
      } else {
        auto frame = c->decoder.next();
        if (!frame) break;
        on_frame(c, std::move(*frame));
      }
    }
    flush_answers();
    return true;
  } catch (const Error& e) {  // oversize or empty frame: framing is lost, so answer and close
    flush_answers();
    log_warn("net: connection " + std::to_string(c->id) + ": " + e.what());
    std::lock_guard lock(c->mu);
    send_response(*c, Response::failure(e.code(), e.what()));
    c->close_when_flushed = true;
    update_events(*c);
    return false;
  }
}

void Server::Impl::on_continuation(Conn& c, Request& req, size_t frame_size) {
  std::lock_guard lock(c.mu);
  auto it = c.streams.find(req.id);
  if (it == c.streams.end()) {
    send_response(c, Response::failure(Errc::kFormat, "continuation frame for id " + std::to_string(req.id) +
                                                          ", which has no open stream"));
    return;
  }
  std::shared_ptr<Stream> s = it->second;
  if (!req.more) {
    s->last_received = true;
    c.streams.erase(it);
  }
  if (!s->handler_done) {
    s->parts.emplace_back(std::move(req.body), frame_size);
    c.stream_bytes += frame_size;
  }
  s->cv.notify_all();
  update_events(c);
}

void Server::Impl::on_frame(const std::shared_ptr<Conn>& c, Bytes frame) {
  Request req;
  try {
    req = decode_request(frame, opt.max_frame);
  } catch (const ProtocolError& e) {
    Response r = Response::failure(e.code(), e.what());
    r.id = e.request_id();
    std::lock_guard lock(c->mu);
    send_response(*c, r);
    return;
  }
  if (dispatch_request(c, std::move(req), frame.size())) secure_wipe(frame.data(), frame.size());
}

namespace {
FastOutcome call_fast(const FastPath& fast, const Request& req, RequestContext& ctx) {
  try {
    return fast(req, ctx);
  } catch (const Error& e) {
    return FastOutcome::answer(Response::failure(e.code(), e.what()));
  } catch (const std::exception& e) {
    return FastOutcome::answer(Response::failure(Errc::kInternal, std::string("handler failed: ") + e.what()));
  } catch (...) {
    return FastOutcome::answer(Response::failure(Errc::kInternal, "handler failed with a non-standard exception"));
  }
}
}  // namespace

// borrow_bytes: the request is decoded in the decoder's buffer; a fast path answers it there
// (no copy of the frame at all). Anything else gets the frame in a buffer of its own (handed
// over, not copied, when it was received in place) and is decoded again against it. False
// when framing is lost (never here: the frame is complete).
bool Server::Impl::on_frame_view(const std::shared_ptr<Conn>& c, ByteView frame) {
  Request req;
  try {
    req = decode_request_borrowed(frame, nullptr, opt.max_frame);
  } catch (const ProtocolError& e) {
    Response r = Response::failure(e.code(), e.what());
    r.id = e.request_id();
    queue_response(*c, r);
    return true;
  }
  if (!req.continuation() && !req.more && !stopping.load()) {
    auto it = handlers.find(req.op);
    if (it != handlers.end() && it->second.fast) {
      Context ctx(*this, c, nullptr);
      FastOutcome out = call_fast(it->second.fast, req, ctx);
      if (out.response) {
        n_requests.fetch_add(1, std::memory_order_relaxed);
        out.response->id = req.id;
        queue_response(*c, *out.response);
        return true;
      }
      if (out.rest) {
        std::lock_guard lock(c->mu);
        c->in_flight++;
        n_in_flight++;
        n_requests.fetch_add(1, std::memory_order_relaxed);
        update_events(*c);
        batch.push_back([this, c, id = req.id, rest = std::move(out.rest)]() mutable {
          Context ctx(*this, c, nullptr);
          Response r = call_handler([&](const Request&, RequestContext& x) { return rest(x); }, Request{}, ctx);
          r.id = id;
          finish_request(*c, nullptr, r);
        });
        return true;
      }
    }
  }
  std::shared_ptr<const Bytes> owned = c->decoder.hold_last();
  const size_t size = owned->size();
  // Decoded once already: cannot fail. The first decoding is kept until dispatch says whether
  // its strings carry a secret.
  Request first = std::exchange(req, decode_request_borrowed(*owned, owned, opt.max_frame));
  if (dispatch_request(c, std::move(req), size, std::move(owned))) first.body.wipe_strings();
  return true;
}

// frame: the buffer req's byte strings borrow from (borrow_bytes), else null. True when req's
// op is marked sensitive: the caller then wipes its own copy of the frame, if it has one.
bool Server::Impl::dispatch_request(const std::shared_ptr<Conn>& c, Request req, size_t frame_size,
                                    std::shared_ptr<const Bytes> frame) {
  if (req.continuation()) {
    on_continuation(*c, req, frame_size);
    return false;
  }

  const Handler* handler = nullptr;
  Response refusal;
  auto it = handlers.find(req.op);
  const bool sensitive = it != handlers.end() && it->second.sensitive;
  if (sensitive) c->decoder.wipe_consumed();  // before any later read can move or copy its bytes
  if (stopping.load()) {
    refusal = Response::failure(Errc::kIo, "server is shutting down");
  } else if (it != handlers.end()) {
    handler = &it->second.handler;
  } else {
    refusal = Response::failure(Errc::kUnsupported, "unknown operation '" + req.op + "'");
  }
  std::shared_ptr<Stream> stream;
  std::lock_guard lock(c->mu);
  if (req.more) {
    if (c->streams.count(req.id)) {
      handler = nullptr;
      refusal = Response::failure(Errc::kFormat, "a stream with id " + std::to_string(req.id) + " is already open");
    } else {
      stream = std::make_shared<Stream>();
      stream->handler_done = handler == nullptr;  // refused: swallow its continuation frames
      c->streams.emplace(req.id, stream);
    }
  }
  if (!handler) {
    if (sensitive) wipe_request(req, frame);
    refusal.id = req.id;
    send_response(*c, refusal);
    return sensitive;
  }
  c->in_flight++;
  n_in_flight++;
  n_requests.fetch_add(1, std::memory_order_relaxed);
  update_events(*c);
  if (!sensitive) {
    batch.push_back([this, c, stream, r = std::move(req), handler]() mutable { run_handler(c, stream, r, *handler); });
    return false;
  }
  batch.push_back([this, c, stream, r = std::move(req), handler, frame = std::move(frame)]() mutable {
    run_handler(c, stream, r, *handler, &frame);
  });
  return true;
}

void Server::Impl::close_conn(uint64_t id, const char* why) {
  auto it = conns.find(id);
  if (it == conns.end()) return;
  std::shared_ptr<Conn> c = it->second;
  conns.erase(it);
  std::shared_ptr<void> state;
  {
    std::lock_guard lock(c->mu);
    buffered_out.fetch_sub(c->counted_out);
    c->counted_out = 0;
    if (c->out_paused) n_out_paused--;
    c->out_paused = false;
    c->closed = true;
    c->fd.reset();  // also leaves the epoll set
    Bytes().swap(c->out);
    c->out_pos = 0;
    for (auto& [sid, s] : c->streams) {
      s->aborted = true;
      s->cv.notify_all();
    }
    c->streams.clear();
    state = std::move(c->state);
  }
  n_open--;
  if (why) {
    n_dropped++;
    log_info("net: connection " + std::to_string(id) + " closed: " + why);
  } else {
    log_debug("net: connection " + std::to_string(id) + " closed");
  }
  state.reset();
  if (disconnect_cb) disconnect_cb(id);
}

void Server::Impl::sweep(int64_t now) {
  std::vector<std::pair<uint64_t, const char*>> victims;
  for (auto& [id, c] : conns) {
    bool idle;
    {
      std::lock_guard lock(c->mu);
      if (!reading_allowed(*c) && c->partial_since_ns) c->partial_since_ns = now;  // paused by us
      idle = c->in_flight == 0 && c->pending_out() == 0;
      if (wants_close(*c)) victims.emplace_back(id, c->doomed ? "write failed or output limit" : nullptr);
    }
    if (c->partial_since_ns && now - c->partial_since_ns > ms_to_ns(opt.read_timeout))
      victims.emplace_back(id, "read timeout: a frame did not complete in time");
    else if (idle && !c->partial_since_ns && now - c->last_activity_ns.load() > ms_to_ns(opt.idle_timeout))
      victims.emplace_back(id, "idle timeout");
  }
  for (auto& [id, why] : victims) close_conn(id, why);
  if (!accepting && !stopping && now >= accept_resume_ns) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenTag;
    accepting = ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, listen_fd.get(), &ev) == 0;
  }
}

void Server::Impl::handle_wakes() {
  uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(wake_fd.get(), &count, sizeof count);
  std::vector<uint64_t> ids;
  {
    std::lock_guard lock(wake_mu);
    ids.swap(wake_ids);
  }
  for (uint64_t id : ids) {
    auto it = conns.find(id);
    if (it == conns.end()) continue;
    std::shared_ptr<Conn> c = it->second;
    bool doomed, close;
    {
      std::lock_guard lock(c->mu);
      doomed = c->doomed;
      close = wants_close(*c);
    }
    if (close) {
      close_conn(id, doomed ? "write failed or output limit" : nullptr);
      continue;
    }
    decode_frames(c);
    {
      std::lock_guard lock(c->mu);
      doomed = c->doomed;
      close = wants_close(*c);
    }
    if (close) close_conn(id, doomed ? "write failed or output limit" : nullptr);
  }
}

// Past total_output_limit: drops the connections holding the most unsent replies until the
// total fits again (a client that reads its replies holds little).
void Server::Impl::shed_output() {
  while (buffered_out.load() > opt.total_output_limit) {
    std::shared_ptr<Conn> victim;
    size_t most = 0;
    for (auto& [id, c] : conns) {
      std::lock_guard lock(c->mu);
      if (c->counted_out > most) {
        most = c->counted_out;
        victim = c;
      }
    }
    if (!victim) return;
    log_warn("net: connection " + std::to_string(victim->id) + " dropped: it holds " + std::to_string(most) +
             " of the " + std::to_string(buffered_out.load()) + " bytes of unsent replies (total_output_limit " +
             std::to_string(opt.total_output_limit) + ")");
    {
      std::lock_guard lock(victim->mu);
      victim->doomed = true;
    }
    close_conn(victim->id, "total output limit");
  }
}

void Server::Impl::on_event(uint64_t id, uint32_t ev) {
  auto it = conns.find(id);
  if (it == conns.end()) return;
  std::shared_ptr<Conn> c = it->second;
  if (ev & (EPOLLERR | EPOLLHUP)) {
    // The peer is gone for good. Requests it managed to send still run (their answers
    // are dropped); a stream it left unfinished is aborted.
    if (ev & EPOLLIN) on_readable(c);
    close_conn(c->id, nullptr);
    return;
  }
  if (ev & EPOLLOUT) {
    std::lock_guard lock(c->mu);
    flush(*c);
    update_events(*c);
  }
  if (ev & EPOLLIN) on_readable(c);
  bool close, doomed;
  {
    std::lock_guard lock(c->mu);
    close = wants_close(*c);
    doomed = c->doomed;
  }
  if (close) close_conn(c->id, doomed ? "write failed or output limit" : nullptr);
}

bool Server::Impl::drained() const {
  for (auto& [id, c] : conns) {
    std::lock_guard lock(c->mu);
    if (c->in_flight || c->pending_out()) return false;
  }
  return true;
}

void Server::Impl::loop() {
  epoll_event events[256];
  int64_t last_sweep = monotonic_ns();
  for (;;) {
    int n = ::epoll_wait(epoll_fd.get(), events, 256, static_cast<int>(kTickMs));
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kListenTag) {
        if (!stopping) accept_all();
        continue;
      }
      if (tag == kWakeTag) {
        handle_wakes();
        continue;
      }
      on_event(tag, events[i].events);
    }
    if (buffered_out.load() > opt.total_output_limit) shed_output();
    pool.post(batch);
    int64_t now = monotonic_ns();
    if (stopping) {
      if (drain_deadline_ns == 0) {
        drain_deadline_ns = now + ms_to_ns(opt.drain_timeout);
        ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, listen_fd.get(), nullptr);
        listen_fd.reset();
      }
      if (drained() || now >= drain_deadline_ns) break;
    }
    if (now - last_sweep >= kTickMs * 1000000) {
      sweep(now);
      last_sweep = now;
    }
  }
  std::vector<uint64_t> ids;
  for (auto& [id, c] : conns) ids.push_back(id);
  for (uint64_t id : ids) close_conn(id, nullptr);
}

// ---------------- public API ----------------

Server::Server(Endpoint endpoint, ServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->requested = std::move(endpoint);
  impl_->bound = impl_->requested;
  impl_->opt = options;
  if (impl_->opt.workers == 0) impl_->opt.workers = std::max(2u, std::thread::hardware_concurrency());
}

Server::~Server() { stop(); }

void Server::handle(const std::string& op, Handler handler) {
  if (impl_->started) throw Error(Errc::kUsage, "Server::handle('" + op + "') after start()");
  if (op.empty() || !handler) throw Error(Errc::kUsage, "Server::handle: empty op name or handler");
  if (!impl_->handlers.emplace(op, Impl::OpEntry{std::move(handler), nullptr}).second)
    throw Error(Errc::kUsage, "Server::handle: op '" + op + "' registered twice");
}

void Server::handle(const std::string& op, Handler handler, FastPath fast) {
  handle(op, std::move(handler));
  impl_->handlers[op].fast = std::move(fast);
}

void Server::mark_sensitive(const std::string& op) {
  if (impl_->started) throw Error(Errc::kUsage, "Server::mark_sensitive('" + op + "') after start()");
  auto it = impl_->handlers.find(op);
  if (it == impl_->handlers.end()) throw Error(Errc::kUsage, "Server::mark_sensitive: op '" + op + "' has no handler");
  it->second.sensitive = true;
}

void Server::on_disconnect(std::function<void(uint64_t)> callback) { impl_->disconnect_cb = std::move(callback); }

void Server::start() {
  Impl& s = *impl_;
  std::lock_guard lock(s.lifecycle_mu);
  if (s.started) throw Error(Errc::kUsage, "Server::start() called twice");
  s.listen_fd = net::listen(s.requested, s.opt.listen);
  set_nonblocking(s.listen_fd.get(), true);
  s.bound = bound_endpoint(s.listen_fd.get(), s.requested);
  Endpoint actual = map_simulated_vsock(s.requested, true);
  struct stat st {};
  if (actual.kind == Endpoint::Kind::kUnix && ::stat(actual.path.c_str(), &st) == 0) s.unix_inode = st.st_ino;

  s.epoll_fd.reset(::epoll_create1(EPOLL_CLOEXEC));
  s.wake_fd.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!s.epoll_fd || !s.wake_fd) throw Error(Errc::kIo, "epoll/eventfd: " + errno_text(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  ::epoll_ctl(s.epoll_fd.get(), EPOLL_CTL_ADD, s.listen_fd.get(), &ev);
  ev.data.u64 = kWakeTag;
  ::epoll_ctl(s.epoll_fd.get(), EPOLL_CTL_ADD, s.wake_fd.get(), &ev);

  s.pool.start(s.opt.workers);
  s.loop_thread = std::thread([&s] { s.loop(); });
  ::pthread_setname_np(s.loop_thread.native_handle(), "sn-net-loop");  // for perf and top
  s.started = true;
  log_info("net: serving on " + s.bound.to_string() + " with " + std::to_string(s.opt.workers) + " workers");
}

void Server::stop() {
  Impl& s = *impl_;
  std::lock_guard lock(s.lifecycle_mu);
  if (!s.started || s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(s.wake_fd.get(), &one, sizeof one);
  s.loop_thread.join();
  s.pool.stop();
  Endpoint actual = map_simulated_vsock(s.requested, true);
  struct stat st {};
  if (actual.kind == Endpoint::Kind::kUnix && ::stat(actual.path.c_str(), &st) == 0 && st.st_ino == s.unix_inode)
    ::unlink(actual.path.c_str());
  log_info("net: stopped serving on " + s.bound.to_string());
}

const Endpoint& Server::endpoint() const { return impl_->bound; }

ServerStats Server::stats() const {
  ServerStats st;
  st.connections_accepted = impl_->n_accepted;
  st.connections_open = impl_->n_open;
  st.connections_dropped = impl_->n_dropped;
  st.requests = impl_->n_requests;
  st.error_responses = impl_->n_errors;
  st.connections_refused = impl_->n_refused;
  st.requests_in_flight = impl_->n_in_flight;
  st.connections_paused_for_output = impl_->n_out_paused;
  st.buffered_output_bytes = impl_->buffered_out;
  st.peak_buffered_output_bytes = impl_->peak_out;
  return st;
}

void block_termination_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

int wait_for_termination_signal() {
  block_termination_signals();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

}  // namespace shield_nitro::net
