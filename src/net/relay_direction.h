// Internal to net: one direction of a relay (net::relay and net::RelayLoop): bytes read from
// `from`, buffered, written to `to`, the source's FIN passed on once everything is written.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <functional>

#include "shield_nitro/net/relay.h"

namespace shield_nitro::net::detail {

inline constexpr size_t kRelayBuffer = 64 * 1024;

struct Direction {
  int from = -1;
  int to = -1;
  RelayDirection which = RelayDirection::kUp;
  const std::function<void(RelayDirection, ByteView)>* tap = nullptr;
  uint8_t buf[kRelayBuffer];
  const uint8_t* data = buf;  // buf, or the caller's initial bytes until they are written
  size_t len = 0, off = 0;
  uint64_t total = 0;
  bool eof = false;     // `from` sent FIN
  bool shut = false;    // we sent FIN to `to`
  bool failed = false;
  bool readable = false;  // edge-triggered: the source may hold bytes not read yet
  bool closing = false;   // edge-triggered: the source's FIN or error was reported

  bool wants_read() const { return !eof && !failed && len == 0; }
  bool wants_write() const { return len > off && !failed; }
  bool done() const { return shut || failed; }

  void preload(ByteView initial) {
    if (initial.empty()) return;
    if (tap && *tap) (*tap)(which, initial);
    data = initial.data();
    len = initial.size();
    total += initial.size();
  }

  // One recv into the empty buffer: true when bytes arrived (they are then buffered).
  bool read_once() {
    ssize_t n = ::recv(from, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      readable = errno == EINTR;
      return false;
    }
    if (n < 0) {
      failed = true;
      return false;
    }
    if (n == 0) {
      eof = true;
      finish_if_drained();
      return false;
    }
    if (tap && *tap) (*tap)(which, ByteView(buf, static_cast<size_t>(n)));
    data = buf;
    len = static_cast<size_t>(n);
    off = 0;
    total += static_cast<uint64_t>(n);
    // A short read emptied the source's queue: what arrives later is a new edge, so no read
    // that would only say EAGAIN (one syscall less per request and hop). A FIN or error that
    // was already reported gives no new edge: read on until it shows.
    readable = len == sizeof buf || closing;
    return true;
  }

  // Reads once and writes at once: the other side is nearly always ready, and a poll round trip
  // per chunk costs a syscall and a wake-up on the request path.
  void on_readable() {
    if (read_once()) on_writable();
  }

  void on_writable() {
    ssize_t n = ::send(to, data + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
      failed = true;
      return;
    }
    off += static_cast<size_t>(n);
    if (off == len) {
      off = len = 0;
      data = buf;
    }
    finish_if_drained();
  }

  // The edge-triggered loop's step (net::RelayLoop): `edge` says the source reported bytes.
  // Moves bytes until the source has none left or the destination takes no more; a source edge
  // seen while the destination is full is remembered until a read consumes it.
  void pump(bool edge) {
    if (edge) readable = true;
    for (;;) {
      if (failed || shut) return;
      if (len > off) {
        on_writable();
        if (len > off || failed) return;  // the destination is full (or gone)
      }
      if (eof || !readable || !read_once()) return;
    }
  }

  // Half-close: once the source's FIN is seen and everything it sent is written, pass it on.
  void finish_if_drained() {
    if (eof && len == 0 && !shut) {
      ::shutdown(to, SHUT_WR);
      shut = true;
    }
  }
};

}  // namespace shield_nitro::net::detail
