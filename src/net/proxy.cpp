#include "shield_nitro/net/proxy.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <list>
#include <mutex>
#include <thread>

#include "sockaddr.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"

namespace shield_nitro::net {
namespace {

using detail::errno_text;
constexpr size_t kRelayBuffer = 64 * 1024;

// An append-only capture of one direction (ProxyOptions::record_dir).
class Recorder {
 public:
  Recorder() = default;
  Recorder(const std::string& dir, uint64_t conn, const char* direction) {
    if (dir.empty()) return;
    std::string path = dir + "/conn-" + std::to_string(conn) + "." + direction;
    fd_.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd_) throw Error(Errc::kIo, "proxy: cannot create record file " + path + ": " + errno_text(errno));
  }
  void write(const uint8_t* data, size_t n) {
    while (fd_ && n > 0) {
      ssize_t w = ::write(fd_.get(), data, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        log_error("proxy: record file write failed: " + errno_text(errno));
        fd_.reset();
        return;
      }
      data += w;
      n -= static_cast<size_t>(w);
    }
  }

 private:
  UniqueFd fd_;
};

// One direction of a relay: bytes read from `from`, buffered, written to `to`.
struct Direction {
  int from;
  int to;
  Recorder record;
  uint8_t buf[kRelayBuffer];
  size_t len = 0, off = 0;
  uint64_t total = 0;
  bool eof = false;       // `from` sent FIN
  bool shut = false;      // we sent FIN to `to`
  bool failed = false;

  bool wants_read() const { return !eof && !failed && len == 0; }
  bool wants_write() const { return len > off && !failed; }
  bool done() const { return shut || failed; }

  void on_readable() {
    ssize_t n = ::recv(from, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) {
      failed = true;
      return;
    }
    if (n == 0) {
      eof = true;
    } else {
      record.write(buf, static_cast<size_t>(n));
      len = static_cast<size_t>(n);
      off = 0;
      total += static_cast<uint64_t>(n);
    }
    finish_if_drained();
  }

  void on_writable() {
    ssize_t n = ::send(to, buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      failed = true;
      return;
    }
    off += static_cast<size_t>(n);
    if (off == len) off = len = 0;
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

struct Proxy::Impl {
  ProxyOptions opt;
  Endpoint bound;
  UniqueFd listen_fd;
  UniqueFd stop_fd;  // eventfd: readable once stop() began
  std::thread acceptor;
  std::atomic<bool> started{false}, stopped{false};
  std::atomic<uint64_t> next_conn{1};
  std::atomic<uint64_t> n_conn{0}, n_failed{0}, n_up{0}, n_down{0};

  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::mutex mu;
  std::list<Worker> workers;
  size_t active = 0;

  std::string target() const { return opt.target_host + ":" + std::to_string(opt.target_port); }

  void accept_loop();
  void relay(uint64_t id, UniqueFd client);
  void pump(uint64_t id, int client, int server, Direction& up, Direction& down);
  void reap(bool all);
};

void Proxy::Impl::pump(uint64_t id, int client, int server, Direction& up, Direction& down) {
  while (!(up.done() && down.done())) {
    if (up.failed || down.failed) break;
    pollfd p[3] = {{client, events_for(up, down), 0}, {server, events_for(down, up), 0}, {stop_fd.get(), POLLIN, 0}};
    int rc = ::poll(p, 3, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || (p[2].revents & POLLIN)) break;
    // POLLHUP/POLLERR without POLLIN: let read/write find out what happened.
    short bad = POLLHUP | POLLERR;
    if (p[0].revents & (POLLIN | bad) && up.wants_read()) up.on_readable();
    if (p[1].revents & (POLLIN | bad) && down.wants_read()) down.on_readable();
    if (p[1].revents & (POLLOUT | bad) && up.wants_write()) up.on_writable();
    if (p[0].revents & (POLLOUT | bad) && down.wants_write()) down.on_writable();
    if ((p[0].revents & POLLNVAL) || (p[1].revents & POLLNVAL)) break;
    // A hang-up after its FIN means the peer closed both halves: nothing can reach it any more.
    if ((p[0].revents & POLLHUP) && up.eof) down.shut = true;
    if ((p[1].revents & POLLHUP) && down.eof) up.shut = true;
  }
}

void Proxy::Impl::relay(uint64_t id, UniqueFd client) {
  int64_t start = monotonic_ns();
  std::string name = "proxy: conn " + std::to_string(id);
  UniqueFd server;
  try {
    server = net::connect(Endpoint::tcp(opt.target_host, opt.target_port), opt.connect_timeout);
    set_nonblocking(server.get(), true);
    set_nonblocking(client.get(), true);
  } catch (const Error& e) {
    n_failed++;
    log_warn(name + " refused: cannot reach " + target() + ": " + e.what());
    return;
  }
  log_info(name + " open: " + bound.to_string() + " -> " + target());
  auto up = std::make_unique<Direction>();
  auto down = std::make_unique<Direction>();
  up->from = down->to = client.get();
  up->to = down->from = server.get();
  try {
    up->record = Recorder(opt.record_dir, id, "up");
    down->record = Recorder(opt.record_dir, id, "down");
  } catch (const Error& e) {
    log_error(name + " closed: " + e.what());
    return;
  }
  pump(id, client.get(), server.get(), *up, *down);
  n_up += up->total;
  n_down += down->total;
  std::string how = (up->failed || down->failed) ? "reset" : (up->done() && down->done()) ? "closed" : "stopped";
  log_info(name + " " + how + ": up " + std::to_string(up->total) + " bytes, down " + std::to_string(down->total) +
           " bytes, " + std::to_string((monotonic_ns() - start) / 1000000) + " ms");
}

void Proxy::Impl::reap(bool all) {
  std::list<Worker> finished;
  {
    std::lock_guard lock(mu);
    for (auto it = workers.begin(); it != workers.end();) {
      auto next = std::next(it);
      if (all || it->done) finished.splice(finished.end(), workers, it);
      it = next;
    }
  }
  for (auto& w : finished) w.thread.join();
}

void Proxy::Impl::accept_loop() {
  for (;;) {
    pollfd p[2] = {{listen_fd.get(), POLLIN, 0}, {stop_fd.get(), POLLIN, 0}};
    int rc = ::poll(p, 2, 1000);
    reap(false);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || (p[1].revents & POLLIN)) return;
    if (!(p[0].revents & POLLIN)) continue;
    UniqueFd client(::accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) {
      if (errno == EMFILE || errno == ENFILE) {
        log_warn("proxy: accept: " + errno_text(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    uint64_t id = next_conn++;
    n_conn++;
    std::lock_guard lock(mu);
    if (active >= opt.max_connections) {
      log_warn("proxy: conn " + std::to_string(id) + " refused: " + std::to_string(active) + " open (max_connections)");
      continue;
    }
    active++;
    Worker& w = workers.emplace_back();
    w.thread = std::thread([this, id, &w, fd = client.release()] {
      relay(id, UniqueFd(fd));
      std::lock_guard lock(mu);
      active--;
      w.done = true;
    });
  }
}

Proxy::Proxy(ProxyOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
  const ProxyOptions& o = impl_->opt;
  if (o.target_host.empty() || o.target_port == 0)
    throw Error(Errc::kUsage, "proxy: a target HOST:PORT with a port 1-65535 is required");
  if (o.allowlist && !o.allowlist->allows(o.target_host, o.target_port))
    throw Error(Errc::kPolicy, "proxy: target " + impl_->target() + " is not in the allowlist (" +
                                   std::to_string(o.allowlist->entries().size()) + " entries)");
  impl_->bound = o.listen;
}

Proxy::~Proxy() { stop(); }

void Proxy::start() {
  Impl& s = *impl_;
  if (s.started) throw Error(Errc::kUsage, "Proxy::start() called twice");
  // Marked started only once the acceptor runs: a failed listen leaves nothing for stop() to
  // join, and its error (endpoint and reason) reaches the caller instead of a terminate().
  s.stop_fd.reset(::eventfd(0, EFD_CLOEXEC));
  if (!s.stop_fd) throw Error(Errc::kIo, "proxy: eventfd: " + errno_text(errno));
  s.listen_fd = net::listen(s.opt.listen, s.opt.listen_options);
  s.bound = bound_endpoint(s.listen_fd.get(), s.opt.listen);
  s.acceptor = std::thread([&s] { s.accept_loop(); });
  s.started = true;
  log_info("proxy: listening on " + s.bound.to_string() + ", relaying to " + s.target() +
           (s.opt.record_dir.empty() ? "" : ", recording into " + s.opt.record_dir));
}

void Proxy::stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped.exchange(true)) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(s.stop_fd.get(), &one, sizeof one);
  s.acceptor.join();
  s.reap(true);
  s.listen_fd.reset();
  Endpoint actual = map_simulated_vsock(s.opt.listen, true);
  if (actual.kind == Endpoint::Kind::kUnix) ::unlink(actual.path.c_str());
  log_info("proxy: stopped");
}

const Endpoint& Proxy::endpoint() const { return impl_->bound; }

ProxyStats Proxy::stats() const {
  return {impl_->n_conn.load(), impl_->n_failed.load(), impl_->n_up.load(), impl_->n_down.load()};
}

}  // namespace shield_nitro::net
