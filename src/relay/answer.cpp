#include "answer.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "shield_nitro/core/clock.h"

namespace shield_nitro::relay {
namespace {

const char* reason(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

}  // namespace

bool send_all(int fd, std::string_view data, bool blocking) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | (blocking ? 0 : MSG_DONTWAIT));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool send_http_error(int fd, int status, const std::string& why, bool blocking) {
  std::string body = why + "\n";
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) +
                    "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body;
  return send_all(fd, out, blocking);
}

void linger_close(int fd, int stop_fd) {
  ::shutdown(fd, SHUT_WR);
  constexpr size_t kMaxDrain = 1 << 20;
  constexpr int64_t kMaxNs = 2'000'000'000;
  int64_t deadline = monotonic_ns() + kMaxNs;
  size_t drained = 0;
  char buf[4096];
  while (drained < kMaxDrain) {
    int64_t left_ms = (deadline - monotonic_ns()) / 1000000;
    if (left_ms <= 0) return;
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    int rc = ::poll(p, stop_fd >= 0 ? 2 : 1, static_cast<int>(left_ms));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0 || (stop_fd >= 0 && (p[1].revents & POLLIN))) return;
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return;
    drained += static_cast<size_t>(n);
  }
}

}  // namespace shield_nitro::relay
