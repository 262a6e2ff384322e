#include "shield_nitro/net/acceptor.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"

namespace shield_nitro::net {

using detail::errno_text;

struct Acceptor::Impl {
  AcceptorOptions opt;
  Handler handler;
  Overflow overflow;
  Endpoint bound;
  UniqueFd listen_fd;
  UniqueFd stop_fd;  // eventfd: readable once stop() began
  std::thread thread;
  std::atomic<bool> started{false}, stopped{false};
  std::atomic<uint64_t> next_id{1};
  std::atomic<uint64_t> n_accepted{0};

  struct Worker {
    std::thread thread;
    bool done = false;  // under mu
  };
  mutable std::mutex mu;
  std::list<Worker> workers;
  size_t active = 0;

  void loop();
  void reap(bool all);
  void run(uint64_t id, UniqueFd conn);
};

void Acceptor::Impl::run(uint64_t id, UniqueFd conn) {
  try {
    handler(id, std::move(conn), stop_fd.get());
  } catch (const std::exception& e) {
    log_error(opt.name + ": conn " + std::to_string(id) + " failed: " + e.what());
  }
}

void Acceptor::Impl::reap(bool all) {
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

void Acceptor::Impl::loop() {
  for (;;) {
    pollfd p[2] = {{listen_fd.get(), POLLIN, 0}, {stop_fd.get(), POLLIN, 0}};
    int rc = ::poll(p, 2, 1000);
    reap(false);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || (p[1].revents & POLLIN)) return;
    if (!(p[0].revents & POLLIN)) continue;
    UniqueFd conn(::accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) {
      if (errno == EMFILE || errno == ENFILE) {
        log_warn(opt.name + ": accept: " + errno_text(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    int one = 1;  // relays must not add Nagle delays; fails harmlessly on unix and vsock sockets
    ::setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint64_t id = next_id++;
    n_accepted++;
    std::unique_lock lock(mu);
    if (active >= opt.max_connections) {
      size_t open = active;
      lock.unlock();
      log_warn(opt.name + ": conn " + std::to_string(id) + " refused: " + std::to_string(open) +
               " open (max_connections)");
      if (overflow) {
        try {
          overflow(id, std::move(conn));
        } catch (const std::exception& e) {
          log_error(opt.name + ": conn " + std::to_string(id) + " overflow: " + e.what());
        }
      }
      continue;
    }
    active++;
    Worker& w = workers.emplace_back();
    w.thread = std::thread([this, id, &w, fd = conn.release()] {
      run(id, UniqueFd(fd));
      std::lock_guard lock(mu);
      active--;
      w.done = true;
    });
  }
}

Acceptor::Acceptor(AcceptorOptions options, Handler handler, Overflow overflow) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
  impl_->handler = std::move(handler);
  impl_->overflow = std::move(overflow);
  impl_->bound = impl_->opt.listen;
}

Acceptor::~Acceptor() { stop(); }

void Acceptor::start() {
  Impl& s = *impl_;
  if (s.started) throw Error(Errc::kUsage, s.opt.name + ": start() called twice");
  // Marked started only once the thread runs: a failed listen leaves nothing for stop() to
  // join, and its error (endpoint and reason) reaches the caller instead of a terminate().
  s.stop_fd.reset(::eventfd(0, EFD_CLOEXEC));
  if (!s.stop_fd) throw Error(Errc::kIo, s.opt.name + ": eventfd: " + errno_text(errno));
  s.listen_fd = net::listen(s.opt.listen, s.opt.listen_options);
  s.bound = bound_endpoint(s.listen_fd.get(), s.opt.listen);
  s.thread = std::thread([&s] { s.loop(); });
  s.started = true;
}

void Acceptor::stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped.exchange(true)) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(s.stop_fd.get(), &one, sizeof one);
  s.thread.join();
  s.reap(true);
  s.listen_fd.reset();
  Endpoint actual = map_simulated_vsock(s.opt.listen, true);
  if (actual.kind == Endpoint::Kind::kUnix) ::unlink(actual.path.c_str());
}

const Endpoint& Acceptor::endpoint() const { return impl_->bound; }
bool Acceptor::running() const { return impl_->started && !impl_->stopped; }
uint64_t Acceptor::accepted() const { return impl_->n_accepted.load(); }
size_t Acceptor::active() const {
  std::lock_guard lock(impl_->mu);
  return impl_->active;
}

}  // namespace shield_nitro::net
