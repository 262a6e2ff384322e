// UniqueFd: owns one file descriptor and closes it exactly once.
//
// Sockets cross many functions in the network layer (listen → accept → server, connect →
// client); an owning handle makes "who closes this fd" a type question instead of a comment.
#pragma once

#include <utility>

namespace shield_nitro::net {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }
  // Closes the current fd (if any) and owns fd instead.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Sets or clears O_NONBLOCK; throws Error(kIo) on failure.
void set_nonblocking(int fd, bool on);

}  // namespace shield_nitro::net
