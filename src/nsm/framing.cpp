#include "shield_nitro/nsm/framing.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>

#include "shield_nitro/core/error.h"

namespace shield_nitro::nsm::framing {

namespace {

[[noreturn]] void socket_error(const char* what, int err) {
  if (err == EAGAIN || err == EWOULDBLOCK)
    throw Error(Errc::kTimeout, std::string("nsm socket: ") + what + " timed out");
  throw Error(Errc::kIo, std::string("nsm socket: ") + what + ": " + std::strerror(err));
}

// Returns the bytes read before EOF (n on success).
size_t recv_all(int fd, uint8_t* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, buf + got, n - got, 0);
    if (r == 0) return got;
    if (r < 0) {
      if (errno == EINTR) continue;
      socket_error("read", errno);
    }
    got += static_cast<size_t>(r);
  }
  return got;
}

void send_all(int fd, const uint8_t* buf, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, buf, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      socket_error("write", errno);
    }
    buf += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

FrameStatus read_frame(int fd, size_t max, Bytes& out) {
  uint8_t head[4];
  size_t got = recv_all(fd, head, 4);
  if (got == 0) return FrameStatus::kEof;
  if (got < 4) throw Error(Errc::kIo, "nsm socket: connection closed inside a frame header");
  uint32_t len = get_u32be(head);
  if (len > max) return FrameStatus::kTooLarge;
  out.resize(len);
  if (recv_all(fd, out.data(), len) != len) throw Error(Errc::kIo, "nsm socket: connection closed inside a frame");
  return FrameStatus::kOk;
}

void write_frame(int fd, ByteView message) {
  Bytes frame;
  frame.reserve(4 + message.size());
  put_u32be(frame, static_cast<uint32_t>(message.size()));
  frame.insert(frame.end(), message.begin(), message.end());
  send_all(fd, frame.data(), frame.size());
}

void set_socket_timeout(int fd, int seconds) {
  timeval tv{};
  tv.tv_sec = seconds;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace shield_nitro::nsm::framing
