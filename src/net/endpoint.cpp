#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/vsock_network.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "sockaddr.h"
#include "text.h"
#include "shield_nitro/core/error.h"

namespace shield_nitro::net {
namespace {

using detail::errno_text;
using detail::iequals;
using detail::SockAddr;

constexpr size_t kMaxUnixPath = sizeof(sockaddr_un{}.sun_path) - 1;

[[noreturn]] void bad(std::string_view text, const std::string& why) {
  std::string shown(text);
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';  // keep log lines whole
  throw Error(Errc::kUsage, "endpoint '" + shown + "': " + why);
}

// Strict decimal: digits only, no sign, no leading zeros (except "0"), at most max.
bool parse_decimal(std::string_view s, uint64_t max, uint64_t& out) {
  if (s.empty() || s.size() > 10 || (s.size() > 1 && s[0] == '0')) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) return false;
  out = v;
  return true;
}


// Splits "HOST:PORT" at the last colon; "[v6]:PORT" keeps the brackets out of host.
void split_host_port(std::string_view text, std::string_view rest, std::string_view& host, std::string_view& port) {
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      bad(text, "expected [IPv6]:PORT");
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
    return;
  }
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) bad(text, "missing :PORT");
  host = rest.substr(0, colon);
  port = rest.substr(colon + 1);
  if (host.find(':') != std::string_view::npos) bad(text, "IPv6 hosts need brackets: tcp://[::1]:PORT");
}

Endpoint parse_vsock(std::string_view text, std::string_view rest) {
  std::string_view cid_text, port_text;
  split_host_port(text, rest, cid_text, port_text);
  uint64_t cid = 0, port = 0;
  if (iequals(cid_text, "any")) {
    cid = kVsockCidAny;
  } else if (!parse_decimal(cid_text, 0xFFFFFFFEu, cid)) {
    bad(text, "CID must be ANY or a decimal number below 4294967295");
  }
  if (!parse_decimal(port_text, 0xFFFFFFFEu, port)) bad(text, "port must be a decimal number below 4294967295");
  return Endpoint::vsock(static_cast<uint32_t>(cid), static_cast<uint32_t>(port));
}

Endpoint parse_tcp(std::string_view text, std::string_view rest) {
  std::string_view host, port_text;
  split_host_port(text, rest, host, port_text);
  if (host.empty()) bad(text, "missing host");
  for (char c : host)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '_'))
      bad(text, "host contains '" + std::string(1, c) + "'");
  uint64_t port = 0;
  if (!parse_decimal(port_text, 65535, port)) bad(text, "port must be a decimal number 0-65535");
  return Endpoint::tcp(std::string(host), static_cast<uint16_t>(port));
}

Endpoint parse_unix(std::string_view text, std::string_view path) {
  if (path.empty()) bad(text, "empty unix socket path");
  if (path.starts_with("//")) bad(text, "write unix:/abs/path or unix:rel/path, not unix://");
  if (path.size() > kMaxUnixPath) bad(text, "unix socket path longer than " + std::to_string(kMaxUnixPath) + " bytes");
  if (path.find('\0') != std::string_view::npos) bad(text, "NUL byte in unix socket path");
  return Endpoint::unix_path(std::string(path));
}

SockAddr unix_address(const std::string& path) {
  if (path.size() > kMaxUnixPath) throw Error(Errc::kUsage, "unix socket path too long: " + path);
  SockAddr a;
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());
  std::memcpy(&a.storage, &un, sizeof un);
  a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  a.family = AF_UNIX;
  return a;
}

std::vector<SockAddr> tcp_addresses(const Endpoint& ep, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  std::string port = std::to_string(ep.port);
  int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) throw Error(Errc::kIo, "cannot resolve " + ep.host + ": " + ::gai_strerror(rc));
  std::vector<SockAddr> out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    SockAddr a;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    a.length = ai->ai_addrlen;
    a.family = ai->ai_family;
    out.push_back(a);
  }
  ::freeaddrinfo(res);
  if (out.empty()) throw Error(Errc::kIo, "no address for " + ep.host);
  return out;
}

std::vector<SockAddr> addresses(const Endpoint& ep, bool passive) {
  switch (ep.kind) {
    case Endpoint::Kind::kUnix:
      return {unix_address(ep.path)};
    case Endpoint::Kind::kVsock:
      return {detail::vsock_address(ep.cid, ep.port)};
    case Endpoint::Kind::kTcp:
      return tcp_addresses(ep, passive);
  }
  return {};
}

UniqueFd new_socket(int family) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw Error(Errc::kIo, "socket(): " + errno_text(errno));
  return fd;
}

// A socket file nobody accepts on is stale (a crashed server): remove it. A live one is
// somebody else's and stays.
void remove_stale_unix_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) throw Error(Errc::kIo, "listen " + path + ": exists and is not a socket");
  UniqueFd probe = new_socket(AF_UNIX);
  SockAddr a = unix_address(path);
  if (::connect(probe.get(), a.get(), a.length) == 0)
    throw Error(Errc::kIo, "listen unix:" + path + ": another process is listening there");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw Error(Errc::kIo, "remove stale socket " + path + ": " + errno_text(errno));
}

void wait_connected(int fd, const Endpoint& ep, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLOUT, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) throw Error(Errc::kTimeout, "connect " + ep.to_string() + ": timed out after " +
                                               std::to_string(timeout.count()) + " ms");
  int err = 0;
  socklen_t len = sizeof err;
  if (rc < 0) err = errno;
  else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) throw Error(Errc::kIo, "connect " + ep.to_string() + ": " + errno_text(err));
}

// A unix listener with a full backlog fails a non-blocking connect with EAGAIN and leaves
// nothing pending (unlike TCP's EINPROGRESS; the socket then polls writable, unconnected).
// A blocking connect waits for room instead, bounded by SO_SNDTIMEO.
void connect_unix(int fd, const Endpoint& ep, const SockAddr& addr, std::chrono::milliseconds timeout) {
  auto ms = std::max<int64_t>(1, timeout.count());
  timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc;
  do {
    rc = ::connect(fd, addr.get(), addr.length);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0 && (errno == EAGAIN || errno == EINPROGRESS))
    throw Error(Errc::kTimeout, "connect " + ep.to_string() + ": the listener's backlog stayed full for " +
                                    std::to_string(timeout.count()) + " ms");
  if (rc != 0) throw Error(Errc::kIo, "connect " + ep.to_string() + ": " + errno_text(errno));
  tv = timeval{};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

UniqueFd connect_one(const Endpoint& ep, const SockAddr& addr, std::chrono::milliseconds timeout) {
  UniqueFd fd = new_socket(addr.family);
  if (addr.family == AF_UNIX) {
    connect_unix(fd.get(), ep, addr, timeout);
    return fd;
  }
  set_nonblocking(fd.get(), true);
  if (::connect(fd.get(), addr.get(), addr.length) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN && errno != EINTR)
      throw Error(Errc::kIo, "connect " + ep.to_string() + ": " + errno_text(errno));
    wait_connected(fd.get(), ep, timeout);
  }
  set_nonblocking(fd.get(), false);
  if (addr.family == AF_INET || addr.family == AF_INET6) {
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

}  // namespace

Endpoint Endpoint::vsock(uint32_t cid, uint32_t port) {
  Endpoint e;
  e.kind = Kind::kVsock;
  e.cid = cid;
  e.port = port;
  return e;
}

Endpoint Endpoint::unix_path(std::string path) {
  Endpoint e;
  e.kind = Kind::kUnix;
  e.path = std::move(path);
  return e;
}

Endpoint Endpoint::tcp(std::string host, uint16_t port) {
  Endpoint e;
  e.kind = Kind::kTcp;
  e.host = std::move(host);
  e.port = port;
  return e;
}

Endpoint Endpoint::parse(std::string_view text) {
  if (text.starts_with("vsock://")) return parse_vsock(text, text.substr(8));
  if (text.starts_with("tcp://")) return parse_tcp(text, text.substr(6));
  if (text.starts_with("unix:")) return parse_unix(text, text.substr(5));
  bad(text, "expected vsock://CID:PORT, unix:PATH or tcp://HOST:PORT");
}

std::string Endpoint::to_string() const {
  switch (kind) {
    case Kind::kVsock:
      return "vsock://" + (cid == kVsockCidAny ? std::string("ANY") : std::to_string(cid)) + ":" +
             std::to_string(port);
    case Kind::kUnix:
      return "unix:" + path;
    case Kind::kTcp:
      return "tcp://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
             std::to_string(port);
  }
  return "?";
}

Endpoint map_simulated_vsock(const Endpoint& ep, bool listening) {
  if (ep.kind != Endpoint::Kind::kVsock) return ep;
  return vsock_network()->resolve(ep, listening);
}

UniqueFd listen(const Endpoint& requested, const ListenOptions& options) {
  Endpoint ep = map_simulated_vsock(requested, true);
  if (ep.kind == Endpoint::Kind::kUnix) remove_stale_unix_socket(ep.path);
  SockAddr addr = addresses(ep, true).front();
  UniqueFd fd = new_socket(addr.family);
  int one = 1;
  if (addr.family == AF_INET || addr.family == AF_INET6)
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), addr.get(), addr.length) != 0)
    throw Error(Errc::kIo, "listen " + requested.to_string() + ": bind: " + errno_text(errno));
  if (ep.kind == Endpoint::Kind::kUnix && ::chmod(ep.path.c_str(), options.unix_mode) != 0)
    throw Error(Errc::kIo, "listen " + ep.path + ": chmod: " + errno_text(errno));
  if (::listen(fd.get(), options.backlog) != 0)
    throw Error(Errc::kIo, "listen " + requested.to_string() + ": " + errno_text(errno));
  return fd;
}

UniqueFd connect(const Endpoint& requested, std::chrono::milliseconds timeout) {
  Endpoint ep = map_simulated_vsock(requested, false);
  std::vector<SockAddr> addrs = addresses(ep, false);
  for (size_t i = 0; i < addrs.size(); ++i) {
    try {
      return connect_one(requested, addrs[i], timeout);
    } catch (const Error& e) {
      if (i + 1 < addrs.size()) continue;
      if (requested.kind != Endpoint::Kind::kVsock) throw;
      throw Error(e.code(), e.what() + vsock_network()->connect_hint(requested));
    }
  }
  throw Error(Errc::kIo, "connect " + requested.to_string() + ": no address");
}

Endpoint bound_endpoint(int listen_fd, const Endpoint& requested) {
  if (requested.kind == Endpoint::Kind::kUnix) return requested;
  if (requested.kind == Endpoint::Kind::kVsock && map_simulated_vsock(requested, true).kind == Endpoint::Kind::kUnix)
    return requested;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    throw Error(Errc::kIo, "getsockname: " + errno_text(errno));
  Endpoint ep = requested;
  if (ss.ss_family == AF_INET) ep.port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  else if (ss.ss_family == AF_INET6) ep.port = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  else ep.port = detail::vsock_port(ss);
  return ep;
}

}  // namespace shield_nitro::net
