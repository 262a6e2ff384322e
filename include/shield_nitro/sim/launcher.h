// The enclave stand-in: a process tree isolated the way a Nitro enclave is isolated from its
// parent, as far as Linux namespaces allow on one machine.
//
//  - its own PID namespace (the command's init is PID 1; killing it kills everything inside);
//  - its own network namespace with only loopback up: no route anywhere, so the only ways out
//    are the unix sockets bind-mounted in (the vsock stand-ins and the NSM socket);
//  - its own mount namespace rooted at the image's root filesystem, with /proc, a minimal /dev,
//    and tmpfs /tmp and /run;
//  - memory and CPU limits through cgroup v1 when writable, else RLIMIT_AS and CPU affinity.
//
//   EnclaveSpec spec{.rootfs = dir, .argv = {"/app"}, .console_path = "console.log"};
//   EnclaveProcess p = launch_enclave(spec);   // Error(kEnvironment) when namespaces are refused
//   p.kill(); p.wait();
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "shield_nitro/core/unique_fd.h"

namespace shield_nitro::sim {

// A host file or folder made visible inside the enclave at `target` (an absolute path under
// the enclave's root, created on a tmpfs when missing).
struct BindMount {
  std::string source;
  std::string target;
  bool read_only = false;
};

struct EnclaveSpec {
  std::string rootfs;              // host folder that becomes "/"
  std::vector<std::string> argv;   // argv[0] absolute, or looked up in /sbin:/usr/sbin:/bin:/usr/bin like the Nitro init
  std::vector<std::string> env;    // exactly the environment the command gets
  std::string console_path;        // stdout and stderr are appended here
  std::vector<BindMount> binds;    // targets must lie under /run or /tmp (tmpfs inside)
  uint64_t memory_mib = 0;         // 0: no memory limit
  unsigned cpus = 0;               // 0: no CPU limit
  std::string name = "enclave";    // names the cgroups and the hostname
};

// What the launcher could enforce, for describe and the logs.
struct AppliedLimits {
  std::string memory;             // e.g. "cgroup v1 memory.limit_in_bytes=536870912", "RLIMIT_AS=...", "none"
  std::string cpu;                // e.g. "cgroup v1 cpuset 0-1", "affinity 0,1", "none"
  std::vector<int> cpu_ids;       // the CPUs the enclave may run on
  std::vector<std::string> cgroup_dirs;  // removed by release_cgroups()
};

// A launched enclave. Not copyable; the destructor does not kill (the supervisor decides).
class EnclaveProcess {
 public:
  EnclaveProcess() = default;
  // status_fd: where PID 1 writes the command's wait status when it ends (empty: none).
  EnclaveProcess(pid_t pid, AppliedLimits limits, UniqueFd status_fd = {})
      : pid_(pid), status_fd_(std::move(status_fd)), limits_(std::move(limits)) {}
  ~EnclaveProcess() = default;
  EnclaveProcess(EnclaveProcess&& o) noexcept;
  EnclaveProcess& operator=(EnclaveProcess&& o) noexcept;
  EnclaveProcess(const EnclaveProcess&) = delete;
  EnclaveProcess& operator=(const EnclaveProcess&) = delete;

  // The enclave's init as seen from the host (PID 1 inside).
  pid_t pid() const { return pid_; }
  const AppliedLimits& limits() const { return limits_; }
  bool running() const { return pid_ > 0 && !reaped_; }

  // SIGKILL to the enclave's PID 1, which takes every process of its namespace with it.
  void kill();
  // Waits for PID 1 and returns its wait status; then removes the cgroups.
  int wait();
  // Non-blocking wait: true (and the status) once PID 1 has exited.
  bool try_wait(int& status);

  // After wait: the command's own wait status (so a signal that killed it stays a signal, not
  // PID 1's 128+N), or PID 1's when the command did not end first (the enclave was killed).
  int command_status() const { return command_reported_ ? command_status_ : status_; }
  bool command_reported() const { return command_reported_; }
  // After wait: processes the kernel's OOM killer ended in the enclave's memory cgroup (0
  // without one).
  uint64_t oom_kills() const { return oom_kills_; }

 private:
  void finish();
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  UniqueFd status_fd_;
  bool command_reported_ = false;
  int command_status_ = 0;
  uint64_t oom_kills_ = 0;
  AppliedLimits limits_;
};

// Starts the enclave and returns once its command has been exec'd. Throws Error(kEnvironment)
// when namespaces cannot be created (not root, unshare refused), Error(kNotFound) when the
// command is not in the image, Error(kIo) for mount failures. Nothing is left behind on failure.
EnclaveProcess launch_enclave(const EnclaveSpec& spec);

// Removes the cgroup folders a launch created (they must be empty: the enclave has exited).
void release_cgroups(const AppliedLimits& limits);

}  // namespace shield_nitro::sim
