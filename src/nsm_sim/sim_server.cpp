// SimulatorServer: the simulated NSM on a unix socket (framing in framing.h).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <thread>

#include "shield_nitro/nsm/framing.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/nsm_sim/simulator.h"

namespace shield_nitro::nsm {

namespace {

constexpr size_t kMaxClients = 64;

sockaddr_un socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    throw Error(Errc::kUsage, "simulated NSM socket path too long (max 107 bytes): " + path);
  std::memcpy(addr.sun_path, path.data(), path.size());  // addr is zeroed: terminated
  return addr;
}

// A socket file left by a simulator that died is removed; a live one is an error.
void clear_stale_socket(const sockaddr_un& addr, const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode))
    throw Error(Errc::kEnvironment, "nsm-sim: cannot listen on unix:" + path + ": exists and is not a socket");
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  bool live = probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  if (live)
    throw Error(Errc::kEnvironment, "nsm-sim: cannot listen on unix:" + path + ": a simulated NSM is already serving there");
  ::unlink(path.c_str());
}

UniqueFd listen_on(const std::string& path) {
  sockaddr_un addr = socket_address(path);
  clear_stale_socket(addr, path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw Error(Errc::kIo, std::string("cannot create a unix socket: ") + std::strerror(errno));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::chmod(path.c_str(), 0600) != 0 || ::listen(fd.get(), 64) != 0) {
    int err = errno;
    throw Error(Errc::kIo, "nsm-sim: cannot listen on unix:" + path + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace

struct SimulatorServer::Impl {
  struct Client {
    UniqueFd fd;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  std::shared_ptr<SimulatedNsm> nsm;
  std::string path;
  UniqueFd listen_fd;
  UniqueFd wake_r, wake_w;  // a byte on wake_w stops the acceptor
  std::thread acceptor;
  std::mutex mu;
  std::list<Client> clients;
  bool stopped = false;

  void accept_loop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd.get(), POLLIN, 0}, {wake_r.get(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        log_error("nsm-sim: poll failed: " + std::string(std::strerror(errno)));
        return;
      }
      if (fds[1].revents) return;
      if (!fds[0].revents) continue;
      UniqueFd fd(::accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!fd) continue;
      std::lock_guard lock(mu);
      reap_finished();
      if (clients.size() >= kMaxClients) continue;  // fd closes: the peer sees EOF
      Client& c = clients.emplace_back();
      c.fd = std::move(fd);
      c.thread = std::thread([this, &c] { serve_client(c); });
    }
  }

  void serve_client(Client& c) {
    try {
      Bytes request;
      for (;;) {
        auto status = framing::read_frame(c.fd.get(), kMaxRequestSize, request);
        if (status == framing::FrameStatus::kEof) break;
        if (status == framing::FrameStatus::kTooLarge) {
          // The body is unread, so the stream cannot continue: answer, then hang up.
          framing::write_frame(c.fd.get(), encode_response(ErrorResponse{ErrorCode::kInputTooLarge}));
          break;
        }
        framing::write_frame(c.fd.get(), nsm->handle(request));
      }
    } catch (const std::exception& e) {
      log_debug(std::string("nsm-sim: client dropped: ") + e.what());
    }
    ::shutdown(c.fd.get(), SHUT_RDWR);  // the peer sees EOF now; the fd itself is closed when reaped
    c.done = true;
  }

  // Joins and closes finished clients; the fd is closed here, not by its thread, so stop()
  // never shuts down a descriptor number that was already reused.
  void reap_finished() {
    for (auto it = clients.begin(); it != clients.end();) {
      if (!it->done) {
        ++it;
        continue;
      }
      it->thread.join();
      it = clients.erase(it);
    }
  }
};

SimulatorServer::SimulatorServer(std::shared_ptr<SimulatedNsm> nsm, const std::string& socket_path)
    : impl_(std::make_unique<Impl>()) {
  impl_->nsm = std::move(nsm);
  impl_->path = socket_path;
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) throw Error(Errc::kIo, std::string("pipe: ") + std::strerror(errno));
  impl_->wake_r.reset(wake[0]);
  impl_->wake_w.reset(wake[1]);
  impl_->listen_fd = listen_on(socket_path);
  impl_->acceptor = std::thread([impl = impl_.get()] { impl->accept_loop(); });
}

SimulatorServer::~SimulatorServer() { stop(); }

const std::string& SimulatorServer::socket_path() const { return impl_->path; }

void SimulatorServer::stop() {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  char b = 1;
  (void)!::write(impl_->wake_w.get(), &b, 1);
  impl_->acceptor.join();
  std::lock_guard lock(impl_->mu);
  for (auto& c : impl_->clients) ::shutdown(c.fd.get(), SHUT_RDWR);
  for (auto& c : impl_->clients) c.thread.join();
  impl_->clients.clear();  // closes their descriptors
  impl_->listen_fd.reset();
  impl_->wake_r.reset();
  impl_->wake_w.reset();
  ::unlink(impl_->path.c_str());
}

std::unique_ptr<SimulatorServer> SimulatedNsm::serve(const std::string& socket_path) {
  return std::make_unique<SimulatorServer>(shared_from_this(), socket_path);
}

}  // namespace shield_nitro::nsm
