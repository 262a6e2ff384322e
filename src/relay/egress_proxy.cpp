#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>

#include "answer.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/net/acceptor.h"
#include "shield_nitro/net/relay.h"
#include "shield_nitro/relay/egress.h"
#include "shield_nitro/relay/proxy_request.h"

namespace shield_nitro::relay {

struct EgressProxy::Impl {
  EgressProxyOptions opt;
  std::unique_ptr<net::Acceptor> acceptor;
  std::atomic<uint64_t> tunnels{0}, forwarded{0}, refused{0}, bad{0}, failed{0}, up{0}, down{0};

  void serve(uint64_t id, UniqueFd client, int stop_fd);
  // Reads until a whole head, a refusal, the deadline (408), stop or the client's close.
  // nullopt: nothing more to do (answered or gone); `buffer` keeps everything read.
  std::optional<ProxyRequest> read_head(const std::string& name, int fd, int stop_fd, std::string& buffer);
  void answer_error(const std::string& name, int fd, int stop_fd, int status, const std::string& why);
};

void EgressProxy::Impl::answer_error(const std::string& name, int fd, int stop_fd, int status, const std::string& why) {
  (status == 403 ? refused : status == 502 || status == 504 ? failed : bad)++;
  log_warn(name + " answered " + std::to_string(status) + ": " + why);
  send_http_error(fd, status, why);
  linger_close(fd, stop_fd);
}

std::optional<ProxyRequest> EgressProxy::Impl::read_head(const std::string& name, int fd, int stop_fd,
                                                       std::string& buffer) {
  ProxyLimits limits;
  limits.max_head_bytes = opt.max_head_bytes;
  int64_t deadline = monotonic_ns() + static_cast<int64_t>(opt.head_timeout.count()) * 1000000;
  char buf[4096];
  for (;;) {
    int64_t left_ms = (deadline - monotonic_ns()) / 1000000;
    if (left_ms <= 0) {
      answer_error(name, fd, stop_fd, 408,
                   "no complete request head within " + std::to_string(opt.head_timeout.count()) + " ms");
      return std::nullopt;
    }
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    int rc = ::poll(p, 2, static_cast<int>(std::min<int64_t>(left_ms, 1 << 30)));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || (p[1].revents & POLLIN)) return std::nullopt;
    if (rc == 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return std::nullopt;  // the client left before asking for anything
    buffer.append(buf, static_cast<size_t>(n));
    ProxyParse parsed = parse_proxy_request(buffer, limits);
    if (parsed.status == ProxyParse::Status::kOk) return std::move(parsed.request);
    if (parsed.status == ProxyParse::Status::kRefused) {
      answer_error(name, fd, stop_fd, parsed.http_status, parsed.why);
      return std::nullopt;
    }
  }
}

void EgressProxy::Impl::serve(uint64_t id, UniqueFd client, int stop_fd) {
  std::string name = "egress: conn " + std::to_string(id);
  std::string buffer;
  std::optional<ProxyRequest> req = read_head(name, client.get(), stop_fd, buffer);
  if (!req) return;
  std::string what = req->method + " " + req->authority();
  if (!opt.egress.allows(req->host, req->port)) {
    answer_error(name, client.get(), stop_fd, 403, "egress to " + req->authority() + " is not allowed");
    return;
  }
  int64_t start = monotonic_ns();
  UniqueFd tunnel;
  try {
    tunnel = opt.dial(req->host, req->port);
  } catch (const Error& e) {
    int status = e.code() == Errc::kPolicy ? 403 : e.code() == Errc::kTimeout ? 504 : 502;
    answer_error(name, client.get(), stop_fd, status, what + ": " + e.what());
    return;
  }
  std::string first;  // what goes to the destination before the relay's own reads
  if (req->kind == ProxyRequest::Kind::kConnect) {
    if (!send_all(client.get(), "HTTP/1.1 200 Connection established\r\n\r\n")) return;
    tunnels++;
  } else {
    first = origin_form_head(*req);
    forwarded++;
  }
  first.append(buffer, req->head_size);
  log_info(name + " " + what + " open");
  net::RelayOptions ro;
  ro.stop_fd = stop_fd;
  ro.initial_up = as_bytes(first);
  net::RelayResult r = net::relay(client.get(), tunnel.get(), ro);
  up += r.up;
  down += r.down;
  log_info(name + " " + what + " " + net::relay_end_name(r.end) + ": up " + std::to_string(r.up) + " bytes, down " +
           std::to_string(r.down) + " bytes, " + std::to_string((monotonic_ns() - start) / 1000000) + " ms");
}

EgressProxyOptions enclave_egress(const runtime::EgressConfig& egress, EgressDial dial) {
  EgressProxyOptions o;
  o.listen = net::Endpoint::tcp("127.0.0.1", egress.proxy_port);
  o.egress = egress;
  o.dial = std::move(dial);
  return o;
}

EgressProxy::EgressProxy(EgressProxyOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
  if (!impl_->opt.dial) throw Error(Errc::kUsage, "egress proxy: a dial callback is required");
  net::AcceptorOptions ao{impl_->opt.listen, {}, impl_->opt.max_connections, "egress"};
  Impl* impl = impl_.get();
  impl_->acceptor = std::make_unique<net::Acceptor>(
      ao, [impl](uint64_t id, UniqueFd c, int stop_fd) { impl->serve(id, std::move(c), stop_fd); },
      [impl](uint64_t, UniqueFd c) {
        // On the accept thread: one non-blocking write of a short answer, no lingering.
        impl->bad++;
        send_http_error(c.get(), 503, "too many open connections", /*blocking=*/false);
      });
}

EgressProxy::~EgressProxy() { stop(); }

void EgressProxy::start() {
  impl_->acceptor->start();
  log_info("egress: proxy listening on " + impl_->acceptor->endpoint().to_string() + ", " +
           std::to_string(impl_->opt.egress.allow.size()) + " allowlist entries");
}

void EgressProxy::stop() {
  if (!impl_->acceptor->running()) return;
  impl_->acceptor->stop();
  log_info("egress: proxy stopped");
}

const net::Endpoint& EgressProxy::endpoint() const { return impl_->acceptor->endpoint(); }

EgressProxyStats EgressProxy::stats() const {
  const Impl& s = *impl_;
  return {s.acceptor->accepted(), s.tunnels.load(), s.forwarded.load(), s.refused.load(),
          s.bad.load(),           s.failed.load(),  s.up.load(),        s.down.load()};
}

}  // namespace shield_nitro::relay
