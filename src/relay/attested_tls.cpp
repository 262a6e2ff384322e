#include "shield_nitro/relay/attested_tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/net/fd.h"

namespace shield_nitro::relay {
namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};

// Error(kInternal) with OpenSSL's reason (core's throw_openssl, which also drains the queue).
[[noreturn]] void ossl_fail(const std::string& what) { throw_openssl("attested TLS: " + what); }

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }

// A key's certificate and the TLS context serving them (the context alone holds the private
// key); shared by the connections that started with it, so a rotation never pulls a key from
// under an open session.
struct Identity {
  ossl::Ptr<X509> cert;
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx;
  Bytes spki_sha256;
  int64_t created_ns = 0;

  Identity(runtime::TlsKeyType type, std::chrono::seconds rotate_every) : created_ns(monotonic_ns()) {
    bool p384 = type == runtime::TlsKeyType::kP384;
    ossl::Ptr<EVP_PKEY> key(EVP_EC_gen(p384 ? "P-384" : "P-256"));
    if (!key) ossl_fail("EC key generation");
    cert.reset(X509_new());
    if (!cert) ossl_fail("X509_new");
    uint8_t serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) ossl_fail("serial number");
    serial[0] &= 0x7f;  // positive
    BIGNUM* sn = BN_bin2bn(serial, sizeof serial, nullptr);
    bool ok = sn && BN_to_ASN1_INTEGER(sn, X509_get_serialNumber(cert.get())) != nullptr;
    BN_free(sn);
    // Valid one hour past the rotation, five minutes back for clocks a little behind.
    ok = ok && X509_set_version(cert.get(), 2) == 1 && X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300) &&
         X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(rotate_every.count()) + 3600);
    X509_NAME* name = X509_get_subject_name(cert.get());
    ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                          reinterpret_cast<const unsigned char*>("shield-nitro enclave"), -1, -1, 0) == 1 &&
         X509_set_issuer_name(cert.get(), name) == 1 && X509_set_pubkey(cert.get(), key.get()) == 1;
    if (!ok) ossl_fail("certificate fields");
    if (X509_sign(cert.get(), key.get(), p384 ? EVP_sha384() : EVP_sha256()) <= 0) ossl_fail("certificate signature");

    unsigned char* der = nullptr;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &der);
    if (n <= 0) ossl_fail("SPKI encoding");
    spki_sha256.resize(32);
    SHA256(der, static_cast<size_t>(n), spki_sha256.data());
    OPENSSL_free(der);

    ctx.reset(SSL_CTX_new(TLS_server_method()));
    if (!ctx) ossl_fail("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
    // No tickets, no cache: each handshake shows the certificate a client pins, and no
    // resumption secret outlives the key (docs/runtime.md, "Attested TLS").
    SSL_CTX_set_num_tickets(ctx.get(), 0);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // One recv per record or more, not two (the 5-byte header, then the body); what it reads
    // beyond a record is seen by SSL_has_pending (the relay reads on while it says so).
    SSL_CTX_set_read_ahead(ctx.get(), 1);
    if (SSL_CTX_use_certificate(ctx.get(), cert.get()) != 1 || SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 ||
        SSL_CTX_check_private_key(ctx.get()) != 1)
      ossl_fail("loading the key");
  }
};

std::string http(int status, std::string_view reason, std::string_view type, std::string_view body,
                 std::string_view extra = {}) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\nContent-Type: " +
                    std::string(type) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
                    std::string(extra) + "Connection: close\r\n\r\n";
  out.append(body);
  return out;
}

enum class Wait { kReady, kStopped, kTimeout, kTarget };

// Waits for `events` on fd (and readability of `also`, -1 none), stop_fd or the deadline (0: none).
Wait wait_fd(int fd, short events, int also, int stop_fd, int64_t deadline_ns) {
  while (true) {
    pollfd p[3] = {{fd, events, 0}, {stop_fd, POLLIN, 0}, {also, POLLIN, 0}};
    int timeout = -1;
    if (deadline_ns) {
      int64_t left = deadline_ns - monotonic_ns();
      if (left <= 0) return Wait::kTimeout;
      timeout = static_cast<int>(std::min<int64_t>(left / 1000000 + 1, 60000));
    }
    int n = ::poll(p, 3, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Wait::kStopped;
    if (p[1].revents) return Wait::kStopped;
    if (p[0].revents) return Wait::kReady;
    if (p[2].revents) return Wait::kTarget;
  }
}

}  // namespace

FirstRequest classify_first_request(std::string_view b) {
  // METHOD (1-16 uppercase letters) SP path, then '?', SP or the line's end.
  size_t i = 0;
  while (i < b.size() && i < 16 && is_upper(b[i])) ++i;
  if (i == b.size()) return FirstRequest::kNeedMore;
  if (i == 0 || b[i] != ' ') return FirstRequest::kForward;
  std::string_view rest = b.substr(i + 1);
  size_t n = std::min(rest.size(), kAttestationPath.size());
  if (rest.substr(0, n) != kAttestationPath.substr(0, n)) return FirstRequest::kForward;
  if (rest.size() <= kAttestationPath.size()) return FirstRequest::kNeedMore;
  char next = rest[kAttestationPath.size()];
  return next == '?' || next == ' ' || next == '\r' || next == '\n' ? FirstRequest::kAttestation : FirstRequest::kForward;
}

AttestationRequest parse_attestation_request(std::string_view head) {
  AttestationRequest r;
  size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) {
    r.error = "the request line has no CRLF";
    return r;
  }
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    r.error = "expected METHOD TARGET HTTP/1.x";
    return r;
  }
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    r.error = "expected HTTP/1.1 or HTTP/1.0";
    return r;
  }
  if (method != "GET") {
    r.error = "only GET is answered here";
    return r;
  }
  std::string prefix = std::string(kAttestationPath) + "?nonce=";
  if (!target.starts_with(prefix)) {
    r.error = "expected ?nonce=HEX (1-512 bytes) and nothing else";
    return r;
  }
  std::string_view hex = target.substr(prefix.size());
  if (hex.size() < 2 || hex.size() > 1024 || hex.size() % 2 || !std::all_of(hex.begin(), hex.end(), is_hex)) {
    r.error = "nonce must be 1-512 bytes in hex (2-1024 hex digits), nothing after it";
    return r;
  }
  r.nonce = hex_decode(hex);
  r.status = 200;
  return r;
}

Bytes tls_binding_user_data(ByteView spki_sha256, ByteView app_user_data) {
  Bytes out(kTlsBindingTag.begin(), kTlsBindingTag.end());
  out.insert(out.end(), spki_sha256.begin(), spki_sha256.end());
  out.insert(out.end(), app_user_data.begin(), app_user_data.end());
  return out;
}

// One relayed connection after its first request: plaintext both ways, one buffer per
// direction, half-close passed on (close_notify, then the TCP FIN).
struct TlsRelay {
  SSL* s = nullptr;
  int client = -1, target = -1;
  std::string up, down;
  size_t up_off = 0, down_off = 0;
  bool client_eof = false, target_eof = false, target_shut = false, client_shut = false;
  // Whether a read may find bytes without asking epoll first: false after a short read or a
  // would-block, true again when epoll says so (saves two syscalls per request and answer).
  bool client_readable = true, target_readable = true;
  uint32_t client_events = 0, target_events = 0;  // registered with the loop's epoll (0: not)
  net::RelayResult res;
  UniqueFd done_fd;  // eventfd: written once when the relay has ended

  // Moves bytes until nothing more can move now. True when the relay has ended (res.end says
  // how); else *cev / *tev are the epoll events to wait for on client / target.
  bool step(uint32_t* cev, uint32_t* tev) {
    using End = net::RelayResult::End;
    char buf[16384];
    for (;;) {
      if (client_eof && target_eof && up_off == up.size() && down_off == down.size()) return true;
      bool progress = false;
      *cev = *tev = 0;
      if (!client_eof && up_off == up.size() && !client_readable) {
        *cev |= EPOLLIN;
      } else if (!client_eof && up_off == up.size()) {
        size_t n = 0;
        up.clear();
        up_off = 0;
        if (SSL_read_ex(s, buf, sizeof buf, &n) == 1) {
          up.assign(buf, n);
          // With read-ahead, bytes of the next record may wait inside OpenSSL: no edge for them.
          client_readable = n == sizeof buf || SSL_has_pending(s);
          progress = true;
        } else {
          int err = SSL_get_error(s, 0);
          if (err == SSL_ERROR_WANT_READ) client_readable = false, *cev |= EPOLLIN;
          else if (err == SSL_ERROR_WANT_WRITE) *cev |= EPOLLOUT;
          else if (err == SSL_ERROR_ZERO_RETURN) client_eof = progress = true;
          else return res.end = End::kReset, true;
        }
      }
      if (up_off < up.size()) {
        ssize_t n = ::send(target, up.data() + up_off, up.size() - up_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          up_off += static_cast<size_t>(n);
          res.up += static_cast<uint64_t>(n);
          progress = true;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          *tev |= EPOLLOUT;
        } else if (n < 0 && errno != EINTR) {
          return res.end = End::kReset, true;
        }
      }
      if (client_eof && up_off == up.size() && !target_shut) {
        ::shutdown(target, SHUT_WR);
        target_shut = true;
      }
      if (!target_eof && down_off == down.size() && !target_readable) {
        *tev |= EPOLLIN;
      } else if (!target_eof && down_off == down.size()) {
        ssize_t n = ::recv(target, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
          down.assign(buf, static_cast<size_t>(n));
          down_off = 0;
          target_readable = static_cast<size_t>(n) == sizeof buf;
          progress = true;
        } else if (n == 0) {
          target_eof = progress = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
          target_readable = false;
          *tev |= EPOLLIN;
        } else if (errno != EINTR) {
          return res.end = End::kReset, true;
        }
      }
      if (down_off < down.size()) {
        size_t n = 0;
        if (SSL_write_ex(s, down.data() + down_off, down.size() - down_off, &n) == 1) {
          down_off += n;
          res.down += n;
          progress = true;
        } else {
          int err = SSL_get_error(s, 0);
          if (err == SSL_ERROR_WANT_WRITE) *cev |= EPOLLOUT;
          else if (err == SSL_ERROR_WANT_READ) *cev |= EPOLLIN;
          else return res.end = End::kReset, true;
        }
      }
      if (target_eof && down_off == down.size() && !client_shut) {
        SSL_shutdown(s);
        ::shutdown(client, SHUT_WR);
        client_shut = progress = true;
      }
      if (!progress) return false;
    }
  }
};

// Relays many TLS connections on one epoll thread: at 16 connections a request costs a share of
// one wake-up per hop instead of two wake-ups of its own session thread (bench_attested_tls).
// Level-triggered; a socket is registered only while there is something to wait for on it, so a
// peer's hang-up cannot spin the loop. Events carry a connection's id, not its address: the
// waiting session thread frees the relay as soon as it has ended.
class TlsRelayLoop {
 public:
  TlsRelayLoop(const std::string& name) {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    if (!epoll_ || !wake_ || ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0)
      throw Error(Errc::kIo, name + ": relay loop: " + std::string(std::strerror(errno)));
    thread_ = std::thread([this] { loop(); });
    ::pthread_setname_np(thread_.native_handle(), "sn-tls-relay");
  }
  ~TlsRelayLoop() {
    post([this] { stopping_ = true; });
    thread_.join();
  }

  // Relays r on the loop until it ends or stop_fd becomes readable (then kStopped); blocks.
  net::RelayResult run(TlsRelay& r, int stop_fd) {
    r.res.end = net::RelayResult::End::kClosed;
    r.done_fd.reset(::eventfd(0, EFD_CLOEXEC));
    if (!r.done_fd) return r.res.end = net::RelayResult::End::kReset, r.res;
    uint64_t id = next_id_++;
    post([this, &r, id] { admit(id, &r); });
    pollfd p[2] = {{r.done_fd.get(), POLLIN, 0}, {stop_fd, POLLIN, 0}};
    while (::poll(p, stop_fd >= 0 ? 2 : 1, -1) < 0 && errno == EINTR) {
    }
    if (!(p[0].revents & POLLIN)) {  // stopped: the loop ends it (unless it ended meanwhile)
      post([this, id] { end(id, net::RelayResult::End::kStopped); });
      pollfd d{r.done_fd.get(), POLLIN, 0};
      while (::poll(&d, 1, -1) < 0 && errno == EINTR) {
      }
    }
    std::lock_guard lock(mu_);  // the loop's last writes to r happen-before this
    return r.res;
  }

 private:
  void post(std::function<void()> fn) {
    {
      std::lock_guard lock(mu_);
      posted_.push_back(std::move(fn));
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(wake_.get(), &one, sizeof one);
  }

  void admit(uint64_t id, TlsRelay* r) {
    live_[id] = r;
    drive(id, *r);
  }

  // Registers fd for `events` under key, or removes it when there is nothing to wait for.
  bool watch(int fd, uint64_t key, uint32_t& registered, uint32_t events) {
    if (events == registered) return true;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = key;
    int op = registered == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    registered = events;
    return ::epoll_ctl(epoll_.get(), op, fd, &ev) == 0;
  }

  void drive(uint64_t id, TlsRelay& r) {
    uint32_t cev = 0, tev = 0;
    bool ended = r.step(&cev, &tev);
    // This thread's queue: nothing of a connection may leak into the next. Peeking first: a
    // clear walks the whole queue, and almost every step leaves it empty.
    if (ERR_peek_error() != 0) ERR_clear_error();
    if (!ended && watch(r.client, id << 1, r.client_events, cev) && watch(r.target, id << 1 | 1, r.target_events, tev))
      return;
    if (!ended) r.res.end = net::RelayResult::End::kReset;
    end(id, r.res.end);
  }

  void end(uint64_t id, net::RelayResult::End how) {
    auto it = live_.find(id);
    if (it == live_.end()) return;  // ended before the stop arrived
    TlsRelay& r = *it->second;
    uint32_t none = 0;
    watch(r.client, 0, r.client_events, none);
    watch(r.target, 0, r.target_events, none);
    live_.erase(it);
    uint64_t one = 1;
    {
      std::lock_guard lock(mu_);
      r.res.end = how;
      [[maybe_unused]] ssize_t w = ::write(r.done_fd.get(), &one, sizeof one);
    }
  }

  void loop() {
    epoll_event evs[128];
    while (!stopping_) {
      int n = ::epoll_wait(epoll_.get(), evs, 128, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      for (int i = 0; i < n; ++i) {
        uint64_t key = evs[i].data.u64;
        if (key == 0) {
          uint64_t v;
          [[maybe_unused]] ssize_t rd = ::read(wake_.get(), &v, sizeof v);
          std::vector<std::function<void()>> todo;
          {
            std::lock_guard lock(mu_);
            todo.swap(posted_);
          }
          for (auto& fn : todo) fn();
          continue;
        }
        auto it = live_.find(key >> 1);
        if (it == live_.end()) continue;  // ended earlier in this batch
        TlsRelay& r = *it->second;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) (key & 1 ? r.target_readable : r.client_readable) = true;
        drive(key >> 1, r);
      }
    }
    // Stopping (the AttestedTls is going away): whatever still runs ends as stopped.
    while (!live_.empty()) end(live_.begin()->first, net::RelayResult::End::kStopped);
  }

  UniqueFd epoll_, wake_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;  // under mu_
  std::unordered_map<uint64_t, TlsRelay*> live_;  // the loop thread's
  std::atomic<uint64_t> next_id_{1};
  bool stopping_ = false;  // the loop thread's
};

struct AttestedTls::Impl {
  AttestedTlsOptions opt;
  mutable std::mutex mu;
  std::shared_ptr<Identity> identity;
  double tokens = 0;
  int64_t refilled_ns = 0;
  std::atomic<uint64_t> n_attest{0}, n_limited{0}, n_bad{0}, n_failed_tls{0}, n_rotations{0};
  // One relay loop per core, connections handed out in turn (made in the constructor).
  std::vector<std::unique_ptr<TlsRelayLoop>> loops;
  std::atomic<size_t> next_loop_index{0};
  TlsRelayLoop& next_loop() { return *loops[next_loop_index++ % loops.size()]; }

  std::shared_ptr<Identity> current() {
    std::lock_guard lock(mu);
    int64_t age_ns = monotonic_ns() - identity->created_ns;
    if (age_ns >= std::chrono::duration_cast<std::chrono::nanoseconds>(opt.rotate_every).count() ||
        (opt.rotate_now && opt.rotate_now()))
      replace_identity();
    return identity;
  }

  // A new key and certificate for the connections from now on; under mu (one rotation at a time).
  void replace_identity() {
    identity = std::make_shared<Identity>(opt.key, opt.rotate_every);
    ++n_rotations;
    log_info(opt.name + ": rotated the TLS key (certificate SPKI sha256 " + hex_encode(identity->spki_sha256) + ")");
  }

  bool take_token() {
    std::lock_guard lock(mu);
    int64_t now = monotonic_ns();
    tokens = std::min<double>(opt.burst, tokens + opt.per_s * static_cast<double>(now - refilled_ns) / 1e9);
    refilled_ns = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }

  net::RelayResult serve(int client, int target, int stop_fd);
  std::string answer_attestation(const Identity& id, std::string_view head);
};

std::string AttestedTls::Impl::answer_attestation(const Identity& id, std::string_view head) {
  AttestationRequest req = parse_attestation_request(head);
  if (req.status != 200) {
    ++n_bad;
    return http(400, "Bad Request", "text/plain", req.error + "\n");
  }
  if (!take_token()) {
    ++n_limited;
    return http(429, "Too Many Requests", "text/plain", "attestation rate limit\n", "Retry-After: 1\r\n");
  }
  try {
    Bytes doc = opt.attest(req.nonce, tls_binding_user_data(id.spki_sha256, opt.app_user_data));
    ++n_attest;
    return http(200, "OK", "application/cbor", std::string_view(reinterpret_cast<const char*>(doc.data()), doc.size()));
  } catch (const std::exception& e) {
    log_warn(opt.name + ": attestation failed: " + e.what());
    return http(503, "Service Unavailable", "text/plain", "attestation unavailable\n");
  }
}

net::RelayResult AttestedTls::Impl::serve(int client, int target, int stop_fd) {
  using End = net::RelayResult::End;
  net::RelayResult res;
  res.end = End::kReset;
  std::shared_ptr<Identity> id;
  try {
    id = current();
    net::set_nonblocking(client, true);
    if (target >= 0) net::set_nonblocking(target, true);
  } catch (const Error& e) {
    log_error(opt.name + ": " + e.what());
    return res;
  }
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(id->ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), client) != 1) {
    ERR_clear_error();
    return res;
  }
  SSL* s = ssl.get();
  // Runs one SSL call until it is done; false on error, stop or the deadline.
  auto finish = [&](auto&& call, int64_t deadline, int also = -1, bool* target_spoke = nullptr) -> int {
    while (true) {
      int r = call();
      if (r > 0) return r;
      int err = SSL_get_error(s, r);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) return err == SSL_ERROR_ZERO_RETURN ? 0 : -1;
      Wait w = wait_fd(client, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, also, stop_fd, deadline);
      if (w == Wait::kTarget && target_spoke) {
        *target_spoke = true;
        return -2;
      }
      if (w == Wait::kStopped) res.end = End::kStopped;
      if (w != Wait::kReady) return -1;
    }
  };
  auto write_all = [&](std::string_view data, int64_t deadline) {
    size_t off = 0;
    while (off < data.size()) {
      size_t n = 0;
      int r = finish([&] { return SSL_write_ex(s, data.data() + off, data.size() - off, &n); }, deadline);
      if (r <= 0) return false;
      off += n;
    }
    return true;
  };

  const int64_t deadline = monotonic_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(opt.first_request_timeout).count();
  if (finish([&] { return SSL_accept(s); }, deadline) != 1) {
    ++n_failed_tls;
    ERR_clear_error();
    return res;
  }

  // The first request: enough of it to tell ours from the app's. An app that speaks first is
  // the app's connection.
  std::string first;
  bool target_spoke = false, client_eof = false;
  FirstRequest kind = FirstRequest::kNeedMore;
  char buf[16384];
  while (kind == FirstRequest::kNeedMore) {
    size_t n = 0;
    int r = finish([&] { return SSL_read_ex(s, buf, sizeof buf, &n); }, deadline, target, &target_spoke);
    if (target_spoke) break;
    if (r == 0) {
      client_eof = true;
      break;
    }
    if (r < 0) {
      ERR_clear_error();
      return res;
    }
    first.append(buf, n);
    kind = classify_first_request(first);
  }

  if (kind == FirstRequest::kAttestation) {
    size_t blank;  // where the head ends; npos (above any limit) while it has not
    while ((blank = first.find("\r\n\r\n")) == std::string::npos && first.size() <= kMaxAttestationHead) {
      size_t n = 0;
      if (finish([&] { return SSL_read_ex(s, buf, sizeof buf, &n); }, deadline) <= 0) {
        ERR_clear_error();
        return res;
      }
      first.append(buf, n);
    }
    std::string answer;
    if (blank > kMaxAttestationHead) {
      ++n_bad;
      answer = http(400, "Bad Request", "text/plain", "request head over 8 KiB\n");
    } else {
      answer = answer_attestation(*id, std::string_view(first).substr(0, blank + 4));
    }
    if (write_all(answer, deadline)) {
      finish([&] { return SSL_shutdown(s) >= 0 ? 1 : -1; }, deadline);
      res.end = End::kClosed;
    }
    ERR_clear_error();
    return res;
  }

  // The app's connection: relayed on a shared loop (TlsRelayLoop) until it ends; this thread
  // only waits (for that, or for stop_fd).
  if (target < 0) {  // the app is not listening (yet): like passthrough, a close
    SSL_shutdown(s);
    ERR_clear_error();
    return res;
  }
  TlsRelay r;
  r.s = s;
  r.client = client;
  r.target = target;
  r.up = std::move(first);
  r.client_eof = client_eof;  // the client's close_notify came before its first request was whole
  return next_loop().run(r, stop_fd);
}

AttestedTls::AttestedTls(AttestedTlsOptions options) : impl_(std::make_unique<Impl>()) {
  if (!options.attest) throw Error(Errc::kUsage, options.name + ": an attestation source is required");
  if (options.app_user_data.size() > kMaxAppUserData)
    throw Error(Errc::kUsage, options.name + ": app user_data is " + std::to_string(options.app_user_data.size()) +
                                  " bytes, at most " + std::to_string(kMaxAppUserData));
  impl_->opt = std::move(options);
  impl_->tokens = impl_->opt.burst;
  impl_->refilled_ns = monotonic_ns();
  impl_->identity = std::make_shared<Identity>(impl_->opt.key, impl_->opt.rotate_every);
  unsigned cores = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  for (unsigned i = 0; i < cores; ++i) impl_->loops.push_back(std::make_unique<TlsRelayLoop>(impl_->opt.name));
  log_info(impl_->opt.name + ": TLS key made in memory (certificate SPKI sha256 " + hex_encode(impl_->identity->spki_sha256) + ")");
}

AttestedTls::~AttestedTls() = default;

net::RelayResult AttestedTls::serve(int client, int target, int stop_fd) { return impl_->serve(client, target, stop_fd); }

void AttestedTls::rotate() {
  std::lock_guard lock(impl_->mu);
  impl_->replace_identity();
}

Bytes AttestedTls::spki_sha256() const {
  std::lock_guard lock(impl_->mu);
  return impl_->identity->spki_sha256;
}

std::string AttestedTls::certificate_pem() const {
  std::lock_guard lock(impl_->mu);
  ossl::Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), impl_->identity->cert.get()) != 1) ossl_fail("PEM encoding");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

AttestedTlsStats AttestedTls::stats() const {
  return {impl_->n_attest.load(), impl_->n_limited.load(), impl_->n_bad.load(), impl_->n_failed_tls.load(),
          impl_->n_rotations.load()};
}

IngressOptions enclave_attested_tls_ingress(const runtime::IngressConfig& entry, AttestedTlsOptions base) {
  IngressOptions o = enclave_ingress(entry);
  o.name += " attested-tls";
  base.name = o.name;
  base.key = entry.key;
  base.rotate_every = std::chrono::hours(entry.rotate_hours);
  base.app_user_data = Bytes(entry.user_data.begin(), entry.user_data.end());
  if (const char* file = std::getenv(kTestRotateFileEnv); file && *file && !base.rotate_now) {
    auto size_of = [path = std::string(file)] {
      struct stat st {};
      return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : int64_t{-1};
    };
    auto seen = std::make_shared<std::atomic<int64_t>>(size_of());
    base.rotate_now = [size_of, seen] {
      int64_t now = size_of();
      return seen->exchange(now) != now;
    };
  }
  auto tls = std::make_shared<AttestedTls>(std::move(base));
  o.session = [tls](int client, int target, int stop_fd) { return tls->serve(client, target, stop_fd); };
  return o;
}

}  // namespace shield_nitro::relay
