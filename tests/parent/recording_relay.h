// A byte relay from one unix socket to another that records every byte, standing in for the
// parent's vsock relay to the enclave (`shield-nitro proxy` relays to TCP targets only). Same
// capture layout as `proxy --record`: DIR/conn-<n>.up (client -> enclave) and .down.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "shield_nitro/net/endpoint.h"

namespace sn_test {

class RecordingRelay {
 public:
  RecordingRelay(std::string listen_path, std::string target_path, std::string record_dir);
  ~RecordingRelay();  // stop()
  RecordingRelay(const RecordingRelay&) = delete;
  RecordingRelay& operator=(const RecordingRelay&) = delete;

  // Closes every relayed connection and joins all threads; recordings are complete afterwards.
  void stop();
  std::string endpoint() const { return "unix:" + listen_path_; }

 private:
  struct Conn;
  void accept_loop();
  void relay(std::shared_ptr<Conn> c, int id);

  std::string listen_path_, target_path_, record_dir_;
  shield_nitro::UniqueFd listener_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Conn>> conns_;
  std::vector<std::thread> threads_;
};

}  // namespace sn_test
