#include "shield_nitro/net/relay_loop.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "relay_direction.h"
#include "sockaddr.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/net/fd.h"

namespace shield_nitro::net {
namespace {

struct Pair;

// What an epoll event points at: one socket of a pair.
struct Side {
  Pair* pair;
  bool is_client;
};

struct Pair {
  UniqueFd client, target;
  detail::Direction up, down;  // 2 × 64 KiB: pairs live on the heap
  Side client_side{this, true}, target_side{this, false};
  RelayLoop::Done done;
  bool ended = false;
  // Whether the socket is registered for EPOLLOUT: only while a write to it is pending. A unix
  // socket (the simulated vsock) reports EPOLLOUT each time its peer consumes a message, so a
  // standing registration woke the loop for nothing once per message.
  bool client_out = false, target_out = false;

  bool finished() const { return up.failed || down.failed || (up.done() && down.done()); }
};

std::atomic<uint64_t> spliced_total{0};  // every loop's, for RelayLoop::spliced_bytes()

void finish(Pair& p, RelayResult::End end) {
  RelayResult r;
  r.end = (p.up.failed || p.down.failed) ? RelayResult::End::kReset : end;
  r.up = p.up.total;
  r.down = p.down.total;
  spliced_total += p.up.spliced + p.down.spliced;
  p.client.reset();
  p.target.reset();
  if (p.done) p.done(r);
}

}  // namespace

struct RelayLoop::Impl {
  UniqueFd epoll_fd, wake_fd;
  std::thread thread;
  std::mutex mu;
  std::vector<std::unique_ptr<Pair>> incoming;  // under mu
  bool stopping = false;                        // under mu
  std::atomic<bool> joined{false};
  std::unordered_map<Pair*, std::unique_ptr<Pair>> pairs;  // the loop thread's
  std::atomic<size_t> n_active{0};

  void run();
  bool admit(std::unique_ptr<Pair> p);
  void on_event(Side& s, uint32_t e);
  void want_out(Pair& p);
};

namespace {
constexpr uint32_t kInEvents = EPOLLIN | EPOLLRDHUP | EPOLLET;
}

// Registers a socket for EPOLLOUT while bytes wait for it and drops it after. EPOLL_CTL_MOD
// reports a readiness that is already there, so no edge between the EAGAIN and this call is lost.
void RelayLoop::Impl::want_out(Pair& p) {
  auto sync = [&](int fd, Side& side, bool& registered, const detail::Direction& to_fd) {
    bool want = to_fd.wants_write();
    if (want == registered || fd < 0) return;
    epoll_event ev{};
    ev.events = kInEvents | (want ? EPOLLOUT : 0u);
    ev.data.ptr = &side;
    if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_MOD, fd, &ev) == 0) registered = want;
    else p.up.failed = true;
  };
  sync(p.client.get(), p.client_side, p.client_out, p.down);
  sync(p.target.get(), p.target_side, p.target_out, p.up);
}

bool RelayLoop::Impl::admit(std::unique_ptr<Pair> p) {
  Pair* raw = p.get();
  epoll_event ev{};
  ev.events = kInEvents;
  ev.data.ptr = &raw->client_side;
  bool ok = ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, raw->client.get(), &ev) == 0;
  ev.data.ptr = &raw->target_side;
  ok = ok && ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, raw->target.get(), &ev) == 0;
  if (!ok) {
    raw->up.failed = true;
    finish(*raw, RelayResult::End::kReset);
    n_active--;
    return false;
  }
  pairs.emplace(raw, std::move(p));
  // Edge-triggered: whatever arrived before registration produces no edge, so look now.
  raw->up.pump(true);
  raw->down.pump(true);
  if (!raw->finished()) want_out(*raw);
  return true;
}

void RelayLoop::Impl::on_event(Side& s, uint32_t e) {
  Pair& p = *s.pair;
  if (p.ended) return;
  bool in = e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  bool out = e & (EPOLLOUT | EPOLLHUP | EPOLLERR);
  detail::Direction& from_here = s.is_client ? p.up : p.down;  // this socket is its source
  detail::Direction& to_here = s.is_client ? p.down : p.up;    // this socket is its destination
  // The source's FIN (or error) is already known: its readiness must not be taken as used up by
  // a short read, since no further edge will come for it.
  if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) from_here.closing = true;
  if (in) from_here.pump(true);
  if (out) to_here.pump(false);
  // A hang-up after its FIN means the peer closed both halves: nothing can reach it any more.
  if ((e & EPOLLHUP) && from_here.eof) to_here.shut = true;
  if (!p.finished()) want_out(p);
}

void RelayLoop::Impl::run() {
  std::vector<epoll_event> evs(256);
  std::vector<Pair*> ended;
  for (;;) {
    int n = ::epoll_wait(epoll_fd.get(), evs.data(), static_cast<int>(evs.size()), -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.ptr == nullptr) {  // the wake-up eventfd: new pairs, or stop
        uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(wake_fd.get(), &v, sizeof v);
        std::vector<std::unique_ptr<Pair>> fresh;
        {
          std::lock_guard lock(mu);
          if (stopping) goto stop;
          fresh.swap(incoming);
        }
        for (auto& p : fresh) {
          Pair* raw = p.get();
          if (admit(std::move(p)) && raw->finished()) ended.push_back(raw), raw->ended = true;
        }
        continue;
      }
      Side& s = *static_cast<Side*>(evs[i].data.ptr);
      on_event(s, evs[i].events);
      if (!s.pair->ended && s.pair->finished()) {
        s.pair->ended = true;
        ended.push_back(s.pair);
      }
    }
    // Freed only after the batch: a later event of the same batch may point at an ended pair.
    for (Pair* p : ended) {
      finish(*p, RelayResult::End::kClosed);
      pairs.erase(p);
      n_active--;
    }
    ended.clear();
  }
stop:
  for (Pair* p : ended) {
    finish(*p, RelayResult::End::kClosed);
    pairs.erase(p);
    n_active--;
  }
  for (auto& [raw, p] : pairs) {
    finish(*p, RelayResult::End::kStopped);
    n_active--;
  }
  pairs.clear();
}

RelayLoop::RelayLoop(const std::string& name) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.epoll_fd.reset(::epoll_create1(EPOLL_CLOEXEC));
  s.wake_fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s.epoll_fd || !s.wake_fd) throw Error(Errc::kIo, "relay loop " + name + ": " + detail::errno_text(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  if (::epoll_ctl(s.epoll_fd.get(), EPOLL_CTL_ADD, s.wake_fd.get(), &ev) != 0)
    throw Error(Errc::kIo, "relay loop " + name + ": epoll_ctl: " + detail::errno_text(errno));
  s.thread = std::thread([&s] { s.run(); });
  ::pthread_setname_np(s.thread.native_handle(), name.substr(0, 15).c_str());
}

RelayLoop::~RelayLoop() { stop(); }

void RelayLoop::add(UniqueFd client, UniqueFd target, Done done) {
  Impl& s = *impl_;
  // new, not make_unique: value-initialization would zero the 2 × 64 KiB buffers.
  std::unique_ptr<Pair> p(new Pair);
  p->up.from = p->down.to = client.get();
  p->up.to = p->down.from = target.get();
  p->up.which = RelayDirection::kUp;
  p->down.which = RelayDirection::kDown;
  p->up.may_splice = p->down.may_splice = true;  // nothing taps a loop's bytes
  p->client = std::move(client);
  p->target = std::move(target);
  p->done = std::move(done);
  {
    std::lock_guard lock(s.mu);
    if (!s.stopping) {
      set_nonblocking(p->client.get(), true);
      set_nonblocking(p->target.get(), true);
      s.n_active++;
      s.incoming.push_back(std::move(p));
    }
  }
  if (p) {  // stopped: not relayed
    finish(*p, RelayResult::End::kStopped);
    return;
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t r = ::write(s.wake_fd.get(), &one, sizeof one);
}

void RelayLoop::stop() {
  Impl& s = *impl_;
  std::vector<std::unique_ptr<Pair>> left;
  {
    std::lock_guard lock(s.mu);
    if (s.stopping) return;
    s.stopping = true;
    left.swap(s.incoming);
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t r = ::write(s.wake_fd.get(), &one, sizeof one);
  s.thread.join();
  for (auto& p : left) {
    finish(*p, RelayResult::End::kStopped);
    s.n_active--;
  }
}

size_t RelayLoop::active() const { return impl_->n_active.load(); }

uint64_t RelayLoop::spliced_bytes() { return spliced_total.load(); }

}  // namespace shield_nitro::net
