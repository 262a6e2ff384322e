#include "shield_nitro/net/proxy.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "sockaddr.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/net/acceptor.h"
#include "shield_nitro/net/relay.h"

namespace shield_nitro::net {
namespace {

using detail::errno_text;

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

}  // namespace

struct Proxy::Impl {
  ProxyOptions opt;
  std::unique_ptr<Acceptor> acceptor;
  std::atomic<uint64_t> n_failed{0}, n_up{0}, n_down{0};

  std::string target() const { return opt.target_host + ":" + std::to_string(opt.target_port); }
  void relay(uint64_t id, UniqueFd client, int stop_fd);
};

void Proxy::Impl::relay(uint64_t id, UniqueFd client, int stop_fd) {
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
  log_info(name + " open: " + acceptor->endpoint().to_string() + " -> " + target());
  Recorder rec_up, rec_down;
  try {
    rec_up = Recorder(opt.record_dir, id, "up");
    rec_down = Recorder(opt.record_dir, id, "down");
  } catch (const Error& e) {
    log_error(name + " closed: " + e.what());
    return;
  }
  RelayOptions ro;
  ro.stop_fd = stop_fd;
  if (!opt.record_dir.empty())
    ro.tap = [&](RelayDirection d, ByteView b) { (d == RelayDirection::kUp ? rec_up : rec_down).write(b.data(), b.size()); };
  RelayResult r = net::relay(client.get(), server.get(), ro);
  n_up += r.up;
  n_down += r.down;
  log_info(name + " " + relay_end_name(r.end) + ": up " + std::to_string(r.up) + " bytes, down " + std::to_string(r.down) +
           " bytes, " + std::to_string((monotonic_ns() - start) / 1000000) + " ms");
}

Proxy::Proxy(ProxyOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
  const ProxyOptions& o = impl_->opt;
  if (o.target_host.empty() || o.target_port == 0)
    throw Error(Errc::kUsage, "proxy: a target HOST:PORT with a port 1-65535 is required");
  if (o.allowlist && !o.allowlist->allows(o.target_host, o.target_port))
    throw Error(Errc::kPolicy, "proxy: target " + impl_->target() + " is not in the allowlist (" +
                                   std::to_string(o.allowlist->entries().size()) + " entries)");
  AcceptorOptions ao{o.listen, o.listen_options, o.max_connections, "proxy"};
  impl_->acceptor = std::make_unique<Acceptor>(ao, [impl = impl_.get()](uint64_t id, UniqueFd conn, int stop_fd) {
    impl->relay(id, std::move(conn), stop_fd);
  });
}

void Proxy::start() {
  Impl& s = *impl_;
  s.acceptor->start();
  log_info("proxy: listening on " + s.acceptor->endpoint().to_string() + ", relaying to " + s.target() +
           (s.opt.record_dir.empty() ? "" : ", recording into " + s.opt.record_dir));
}

void Proxy::stop() {
  Impl& s = *impl_;
  if (!s.acceptor->running()) return;
  s.acceptor->stop();
  log_info("proxy: stopped");
}

Proxy::~Proxy() { stop(); }

const Endpoint& Proxy::endpoint() const { return impl_->acceptor->endpoint(); }

ProxyStats Proxy::stats() const {
  return {impl_->acceptor->accepted(), impl_->n_failed.load(), impl_->n_up.load(), impl_->n_down.load()};
}

}  // namespace shield_nitro::net

