#include "shield_nitro/core/sigpipe.h"

#include <pthread.h>

#include <ctime>

namespace shield_nitro {

namespace {
sigset_t only_sigpipe() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  return s;
}
}  // namespace

SigpipeBlock::SigpipeBlock() {
  sigset_t pending;
  sigpending(&pending);
  was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  sigset_t pipe = only_sigpipe();
  pthread_sigmask(SIG_BLOCK, &pipe, &old_);
}

SigpipeBlock::~SigpipeBlock() {
  if (!was_pending_) {
    sigset_t pipe = only_sigpipe();
    timespec zero{0, 0};
    while (sigtimedwait(&pipe, nullptr, &zero) > 0) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

}  // namespace shield_nitro
