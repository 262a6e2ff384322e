// cgroup v1 limits for a simulated enclave (memory.limit_in_bytes and cpuset), created as
// children of the caller's own cgroups so a sandboxed caller stays inside its sandbox.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "shield_nitro/sim/launcher.h"

namespace shield_nitro::sim {

// "0-1,3" -> {0, 1, 3}; throws Error(kFormat) on anything else.
std::vector<int> parse_cpu_list(const std::string& text);
std::string cpu_list_text(const std::vector<int>& ids);

// The CPUs this process may use (its cpuset, else its affinity mask).
std::vector<int> available_cpus();

// Throws Error(kUsage) when more CPUs are asked than this process may use.
void check_cpu_count(unsigned cpus);

// Creates what it can; fields left empty mean "not applied" (the launcher then falls back to
// RLIMIT_AS / affinity). cpu_ids is always filled when cpus > 0. Throws Error(kUsage) when
// more CPUs are asked than the machine has.
AppliedLimits create_cgroups(const std::string& name, uint64_t memory_mib, unsigned cpus);
// Moves pid into the created cgroups.
void join_cgroups(const AppliedLimits& limits, pid_t pid);
void remove_cgroup(const std::string& dir);
// OOM kills so far in the created memory cgroup (memory.oom_control's oom_kill), 0 without one.
uint64_t oom_kill_count(const AppliedLimits& limits);

}  // namespace shield_nitro::sim
