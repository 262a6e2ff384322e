// UniqueFd: owns one file descriptor and closes it exactly once.
//
// File descriptors cross many functions (open → reader, listen → accept → server, fork → child);
// an owning handle makes "who closes this fd" a type question instead of a comment, and an
// exception between open and close cannot leak it.
#pragma once

#include <utility>

namespace shield_nitro {

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

  // The fd (still owned: do not close it), or -1; whether one is held.
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }
  // Closes the current fd (if any) and owns fd instead.
  void reset(int fd = -1);
  // Closes now and reports close(2)'s result (0, or -1 with errno), for writers whose data
  // may only fail at close (NFS); the destructor ignores it.
  int close();

 private:
  int fd_ = -1;
};

}  // namespace shield_nitro
