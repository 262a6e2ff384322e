#include "cgroups.h"

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"

namespace shield_nitro::sim {

namespace {

constexpr const char* kCgroupRoot = "/sys/fs/cgroup";

// This process's path in a v1 hierarchy ("/" when at the root), or "" when the controller
// has no v1 hierarchy.
std::string own_cgroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::stringstream ctrls(line.substr(a + 1, b - a - 1));
    std::string c;
    while (std::getline(ctrls, c, ','))
      if (c == controller) return line.substr(b + 1);
  }
  return "";
}

std::string read_trimmed(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

bool write_value(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  return static_cast<bool>(out);
}

// A fresh child cgroup of ours under the controller, or "" when not writable.
std::string make_child(const std::string& controller, const std::string& name) {
  std::string own = own_cgroup(controller);
  if (own.empty()) return "";
  std::string base = std::string(kCgroupRoot) + "/" + controller + (own == "/" ? "" : own);
  if (::access(base.c_str(), W_OK) != 0) return "";
  std::string dir = base + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return "";
  return dir;
}

void limit_memory(AppliedLimits& out, const std::string& name, uint64_t memory_mib) {
  std::string dir = make_child("memory", name);
  if (dir.empty()) return;
  uint64_t bytes = memory_mib << 20;
  if (!write_value(dir + "/memory.limit_in_bytes", std::to_string(bytes))) {
    remove_cgroup(dir);
    return;
  }
  out.cgroup_dirs.push_back(dir);
  out.memory = "cgroup v1 memory.limit_in_bytes=" + std::to_string(bytes);
}

void limit_cpus(AppliedLimits& out, const std::string& name) {
  std::string dir = make_child("cpuset", name);
  if (dir.empty()) return;
  std::string parent = dir.substr(0, dir.rfind('/'));
  bool ok = write_value(dir + "/cpuset.mems", read_trimmed(parent + "/cpuset.mems")) &&
            write_value(dir + "/cpuset.cpus", cpu_list_text(out.cpu_ids));
  if (!ok) {
    remove_cgroup(dir);
    return;
  }
  out.cgroup_dirs.push_back(dir);
  out.cpu = "cgroup v1 cpuset " + cpu_list_text(out.cpu_ids);
}

}  // namespace

std::vector<int> parse_cpu_list(const std::string& text) {
  std::vector<int> ids;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (part.empty()) continue;
    size_t dash = part.find('-');
    try {
      size_t used = 0;
      int lo = std::stoi(part.substr(0, dash), &used);
      int hi = dash == std::string::npos ? lo : std::stoi(part.substr(dash + 1));
      if (lo < 0 || hi < lo || hi > 4095) throw std::out_of_range("range");
      for (int i = lo; i <= hi; ++i) ids.push_back(i);
    } catch (const std::logic_error&) {
      throw Error(Errc::kFormat, "malformed CPU list: " + text);
    }
  }
  return ids;
}

std::string cpu_list_text(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

std::vector<int> available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> ids;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &set)) ids.push_back(i);
  }
  if (ids.empty()) ids.push_back(0);
  return ids;
}

void check_cpu_count(unsigned cpus) {
  size_t avail = available_cpus().size();
  if (cpus > avail)
    throw Error(Errc::kUsage, "--cpus " + std::to_string(cpus) + ": only " + std::to_string(avail) +
                                  " CPUs are available on this machine");
}

AppliedLimits create_cgroups(const std::string& name, uint64_t memory_mib, unsigned cpus) {
  AppliedLimits out;
  if (cpus > 0) {
    check_cpu_count(cpus);
    std::vector<int> avail = available_cpus();
    out.cpu_ids.assign(avail.begin(), avail.begin() + cpus);
  }
  std::string cg_name = "shield-nitro-" + name + "-" + std::to_string(::getpid());
  if (memory_mib > 0) limit_memory(out, cg_name, memory_mib);
  if (cpus > 0) limit_cpus(out, cg_name);
  return out;
}

void join_cgroups(const AppliedLimits& limits, pid_t pid) {
  for (const auto& dir : limits.cgroup_dirs) {
    if (!write_value(dir + "/cgroup.procs", std::to_string(pid)))
      log_warn("could not move the enclave into " + dir + "; its limit does not apply");
  }
}

void remove_cgroup(const std::string& dir) {
  // rmdir fails while a dying process is still charged; retry briefly.
  for (int i = 0; i < 50 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i) ::usleep(20000);
}

uint64_t oom_kill_count(const AppliedLimits& limits) {
  const std::string memory_root = std::string(kCgroupRoot) + "/memory/";
  for (const auto& dir : limits.cgroup_dirs) {
    if (!dir.starts_with(memory_root)) continue;
    std::ifstream in(dir + "/memory.oom_control");
    std::string key;
    uint64_t value = 0;
    while (in >> key >> value)
      if (key == "oom_kill") return value;
  }
  return 0;
}

}  // namespace shield_nitro::sim
