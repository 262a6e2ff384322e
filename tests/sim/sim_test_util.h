// Helpers shared by the simulator tests: temporary folders, polling for files, reading the
// console, finding the host's addresses and the processes of a PID namespace.
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

#include "support/temp_dir.h"

namespace sim_test {

using shield_nitro::test_support::TempDir;

std::string slurp(const std::string& path);
// Polls every 20 ms for up to timeout_ms until the file exists (and, if needle is set, contains it).
bool wait_for(const std::string& path, const std::string& needle = "", int timeout_ms = 15000);
// The host's non-loopback IPv4 addresses.
std::vector<std::string> host_ipv4_addresses();
// The pid-namespace inode of a process ("pid:[4026...]"), or "" when it is gone.
std::string pid_namespace(pid_t pid);
// Host PIDs of every process in that namespace.
std::vector<pid_t> processes_in_namespace(const std::string& ns);
// A TCP listener on 0.0.0.0 (any free port); accepted() says whether anything connected.
class TcpListener {
 public:
  TcpListener();
  ~TcpListener();
  int port() const { return port_; }
  bool accepted();

 private:
  int fd_ = -1;
  int port_ = 0;
};
// Connects to a unix socket, sends msg, returns the reply ("" on failure).
std::string unix_roundtrip(const std::string& path, const std::string& msg);
// Runs a shell command line and returns its exit status; output captured in *out when given.
int run(const std::string& cmd, std::string* out = nullptr);

}  // namespace sim_test
