#include "recording_relay.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "shield_nitro/core/error.h"

namespace sn_test {

using namespace shield_nitro;

struct RecordingRelay::Conn {
  UniqueFd client, target;
};

namespace {

void write_all_fd(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

bool send_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Copies from -> to until EOF, recording first (like proxy --record), then half-closes.
void pump(int from, int to, const std::string& record_path) {
  int rec = ::open(record_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = ::recv(from, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (rec >= 0) write_all_fd(rec, buf, static_cast<size_t>(n));
    if (!send_all(to, buf, static_cast<size_t>(n))) break;
  }
  ::shutdown(to, SHUT_WR);
  if (rec >= 0) ::close(rec);
}

}  // namespace

RecordingRelay::RecordingRelay(std::string listen_path, std::string target_path, std::string record_dir)
    : listen_path_(std::move(listen_path)), target_path_(std::move(target_path)), record_dir_(std::move(record_dir)) {
  listener_ = net::listen(net::Endpoint::unix_path(listen_path_));
  acceptor_ = std::thread([this] { accept_loop(); });
}

RecordingRelay::~RecordingRelay() { stop(); }

void RecordingRelay::accept_loop() {
  int next_id = 1;
  while (!stopping_) {
    pollfd p{listener_.get(), POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    auto c = std::make_shared<Conn>();
    c->client = UniqueFd(fd);
    try {
      c->target = net::connect(net::Endpoint::unix_path(target_path_));
    } catch (const Error&) {
      continue;  // the enclave is gone: the client sees its connection closed
    }
    std::lock_guard lock(mu_);
    conns_.push_back(c);
    relay(c, next_id++);
  }
}

void RecordingRelay::relay(std::shared_ptr<Conn> c, int id) {
  std::string base = record_dir_ + "/conn-" + std::to_string(id);
  threads_.emplace_back([c, base] { pump(c->client.get(), c->target.get(), base + ".up"); });
  threads_.emplace_back([c, base] { pump(c->target.get(), c->client.get(), base + ".down"); });
}

void RecordingRelay::stop() {
  if (stopping_.exchange(true)) return;
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    for (auto& c : conns_) {
      ::shutdown(c->client.get(), SHUT_RDWR);
      ::shutdown(c->target.get(), SHUT_RDWR);
    }
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  listener_.reset();
  ::unlink(listen_path_.c_str());
}

}  // namespace sn_test
