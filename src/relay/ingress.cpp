#include "shield_nitro/relay/ingress.h"

#include <atomic>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/net/acceptor.h"
#include "shield_nitro/net/relay_loop.h"

namespace shield_nitro::relay {

struct IngressForwarder::Impl {
  IngressOptions opt;
  std::unique_ptr<net::Acceptor> acceptor;
  // Passthrough relays, all on one thread: a request crosses one wake-up per hop instead of a
  // chain of per-connection threads (bench_relay). A session runs on its connection's thread.
  std::unique_ptr<net::RelayLoop> loop;
  std::atomic<uint64_t> n_failed{0}, n_up{0}, n_down{0};

  void serve(uint64_t id, UniqueFd client, int stop_fd);
  void ended(const std::string& name, int64_t start, const net::RelayResult& r);
};

void IngressForwarder::Impl::ended(const std::string& name, int64_t start, const net::RelayResult& r) {
  n_up += r.up;
  n_down += r.down;
  log_debug(name + " " + net::relay_end_name(r.end) + ": up " + std::to_string(r.up) + " bytes, down " +
            std::to_string(r.down) + " bytes, " + std::to_string((monotonic_ns() - start) / 1000000) + " ms");
}

void IngressForwarder::Impl::serve(uint64_t id, UniqueFd client, int stop_fd) {
  std::string name = opt.name + ": conn " + std::to_string(id);
  int64_t start = monotonic_ns();
  UniqueFd target;
  try {
    target = net::connect(opt.target, opt.connect_timeout);
  } catch (const Error& e) {
    n_failed++;
    // The client gets a plain close (FIN): nothing was sent, and it sent nothing we must drain.
    // A session still gets it: it may answer by itself (attested TLS: attestation requests).
    log_warn(name + (opt.session ? "" : " closed") + ": cannot reach " + opt.target.to_string() + ": " + e.what());
    if (!opt.session) return;
  }
  if (!opt.session) {
    if (loop->active() >= opt.max_connections) {
      log_warn(name + " refused: " + std::to_string(loop->active()) + " open (max_connections)");
      return;
    }
    loop->add(std::move(client), std::move(target), [this, name, start](const net::RelayResult& r) { ended(name, start, r); });
    return;
  }
  ended(name, start, opt.session(client.get(), target.get(), stop_fd));
}

IngressForwarder::IngressForwarder(IngressOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
  const IngressOptions& o = impl_->opt;
  auto missing = [](const net::Endpoint& e) { return e.kind == net::Endpoint::Kind::kUnix && e.path.empty(); };
  if (missing(o.listen) || missing(o.target))
    throw Error(Errc::kUsage, o.name + ": both a listen and a target endpoint are required");
  net::AcceptorOptions ao{o.listen, o.listen_options, o.max_connections, o.name};
  impl_->loop = std::make_unique<net::RelayLoop>("sn-" + o.name);
  impl_->acceptor = std::make_unique<net::Acceptor>(ao, [impl = impl_.get()](uint64_t id, UniqueFd c, int stop_fd) {
    impl->serve(id, std::move(c), stop_fd);
  });
}

IngressForwarder::~IngressForwarder() { stop(); }

void IngressForwarder::start() {
  impl_->acceptor->start();
  log_info(impl_->opt.name + ": listening on " + impl_->acceptor->endpoint().to_string() + ", forwarding to " +
           impl_->opt.target.to_string());
}

void IngressForwarder::stop() {
  if (!impl_->acceptor->running()) return;
  impl_->acceptor->stop();
  impl_->loop->stop();
  log_info(impl_->opt.name + ": stopped");
}

const net::Endpoint& IngressForwarder::endpoint() const { return impl_->acceptor->endpoint(); }

IngressStats IngressForwarder::stats() const {
  return {impl_->acceptor->accepted(), impl_->n_failed.load(), impl_->n_up.load(), impl_->n_down.load(),
          impl_->acceptor->active() + impl_->loop->active()};
}

IngressOptions enclave_ingress(const runtime::IngressConfig& entry) {
  IngressOptions o;
  o.name = "ingress " + std::to_string(entry.vsock_port);
  o.listen = net::Endpoint::vsock(net::kVsockCidAny, entry.vsock_port);
  o.target = net::Endpoint::tcp("127.0.0.1", entry.app_port);
  return o;
}

IngressOptions host_ingress(const runtime::HostIngress& entry, const runtime::HostEnclave& enclave) {
  IngressOptions o;
  o.name = "ingress " + enclave.name + " " + std::to_string(entry.vsock_port);
  o.listen = net::Endpoint::parse(entry.listen);
  o.target = net::Endpoint::vsock(enclave.cid, entry.vsock_port);
  return o;
}

}  // namespace shield_nitro::relay
