// SigpipeBlock: while alive, SIGPIPE is blocked in the calling thread, and one raised meanwhile is
// discarded when it ends (unless one was already pending before: that one is left alone).
//
// For code that writes to a socket the peer may have closed through a library that uses write(2)
// (OpenSSL's socket BIOs), which has no MSG_NOSIGNAL: the write fails with EPIPE instead of
// killing the process. Scope it around the calls; it changes nothing for other threads.
#pragma once

#include <signal.h>

namespace shield_nitro {

class SigpipeBlock {
 public:
  SigpipeBlock();
  ~SigpipeBlock();
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t old_{};
  bool was_pending_ = false;
};

}  // namespace shield_nitro
