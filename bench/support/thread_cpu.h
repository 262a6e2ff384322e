// CPU time and times scheduled of this process's threads, by role, from /proc/self/task/*/schedstat
// (bench/relay_bench.cpp, bench/attested_tls_bench.cpp). On 2 cores shared with the load generator
// and the app, requests/s alone mixes the relays' cost with everyone else's; CPU µs and wake-ups
// per request per role do not, and their sum against the wall clock tells whether the cores were
// the bound.
//
//   ThreadSnapshot t0 = thread_snapshot();  ...run...;  CpuByRole used = thread_snapshot() - t0;
//
// Roles: the calling process's main thread is the load generator ("client"); threads named
// "sn-ingress*" are the forwarders' relay loops ("relay:<thread name>", e.g. "relay:sn-ingress
// host"); "sn-tls*" attested-TLS sessions and relay loops ("tls"); every other thread is the
// app's ("app"). Threads that start and end
// between two snapshots are not counted (the per-connection accept handlers: not per request).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace sn_bench {

struct RoleCpu {
  double cpu_s = 0;     // on-CPU time
  double slices = 0;    // times put on a CPU (wake-ups and preemptions)
};

struct CpuByRole {
  std::map<std::string, RoleCpu> role;
  double total_cpu_s() const {
    double t = 0;
    for (auto& [name, r] : role) t += r.cpu_s;
    return t;
  }
  RoleCpu get(const std::string& name) const {
    auto it = role.find(name);
    return it == role.end() ? RoleCpu{} : it->second;
  }
  // Every role whose name starts with prefix ("relay": both forwarders).
  RoleCpu sum(const std::string& prefix) const {
    RoleCpu t;
    for (auto& [name, r] : role)
      if (name.rfind(prefix, 0) == 0) t.cpu_s += r.cpu_s, t.slices += r.slices;
    return t;
  }
};

// Per thread, so that threads gone by the second snapshot do not subtract from the total.
struct ThreadSnapshot {
  std::map<std::string, std::pair<std::string, RoleCpu>> threads;  // tid → (role, counters)
};

inline std::string thread_role(const std::string& tid, const std::string& comm) {
  if (tid == std::to_string(::getpid())) return "client";
  if (comm.rfind("sn-ingress", 0) == 0) return "relay:" + comm;
  if (comm.rfind("sn-tls", 0) == 0) return "tls";
  return "app";
}

inline ThreadSnapshot thread_snapshot() {
  ThreadSnapshot s;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::string tid = e.path().filename().string(), comm;
    std::ifstream c(e.path() / "comm"), st(e.path() / "schedstat");
    std::getline(c, comm);
    double run_ns = 0, wait_ns = 0, slices = 0;
    if (!(st >> run_ns >> wait_ns >> slices)) continue;  // the thread ended meanwhile
    s.threads[tid] = {thread_role(tid, comm), RoleCpu{run_ns / 1e9, slices}};
  }
  return s;
}

// What each role used between two snapshots (threads present in both, or new in the second).
inline CpuByRole operator-(const ThreadSnapshot& after, const ThreadSnapshot& before) {
  CpuByRole out;
  for (const auto& [tid, v] : after.threads) {
    RoleCpu d = v.second;
    if (auto it = before.threads.find(tid); it != before.threads.end()) {
      d.cpu_s -= it->second.second.cpu_s;
      d.slices -= it->second.second.slices;
    }
    RoleCpu& r = out.role[v.first];
    r.cpu_s += d.cpu_s;
    r.slices += d.slices;
  }
  return out;
}

// The 1-minute load average (/proc/loadavg), -1 if unreadable: recorded before and after a run
// to tell a busy machine.
inline double load1() {
  std::ifstream in("/proc/loadavg");
  double l = -1;
  in >> l;
  return l;
}

}  // namespace sn_bench
