// A test server with a few handlers, shared by the server and client tests.
#pragma once

#include <sys/resource.h>

#include <condition_variable>
#include <memory>
#include <mutex>

#include "shield_nitro/net/server.h"
#include "support/net_util.h"

namespace sn_test {

// Blocks handlers until opened; counts how many are waiting.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int waiting = 0;
  void wait() {
    std::unique_lock lock(mu);
    waiting++;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
    waiting--;
  }
  void release() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  void wait_for_waiters(int n) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return waiting >= n; });
  }
};

// Handlers: echo (body back), gated (waits for the gate, then echoes), fail (throws the Errc
// named in body.code), crash (throws std::runtime_error), big (n bytes of 0x5a), whoami.
inline void add_test_handlers(net::Server& s, std::shared_ptr<Gate> gate) {
  using cbor::entry;
  using cbor::Value;
  s.handle("echo", [](const net::Request& r, net::RequestContext&) { return net::Response::success(r.body); });
  s.handle("gated", [gate](const net::Request& r, net::RequestContext&) {
    gate->wait();
    return net::Response::success(r.body);
  });
  s.handle("fail", [](const net::Request& r, net::RequestContext&) -> net::Response {
    const cbor::Value* message = r.body.find("message");
    throw Error(errc_from_name(r.body.find("code")->as_text()), message ? message->as_text() : "refused on purpose");
  });
  s.handle("crash", [](const net::Request&, net::RequestContext&) -> net::Response {
    throw std::runtime_error("boom");
  });
  s.handle("big", [](const net::Request& r, net::RequestContext&) {
    return net::Response::success(Value::map({entry("data", Value::bytes(Bytes(r.body.find("n")->as_uint(), 0x5a)))}));
  });
  s.handle("whoami", [](const net::Request&, net::RequestContext& ctx) {
    return net::Response::success(Value::map({entry("conn", Value::uint(ctx.connection_id()))}));
  });
}

// Polls cond every 10 ms for up to 20 s; returns its final value.
template <typename F>
bool eventually(F cond) {
  for (int i = 0; i < 2000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

inline void raise_fd_limit(rlim_t want) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = std::min(want, rl.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace sn_test
