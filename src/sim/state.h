// The files of a simulator state folder and the record the supervisor keeps there.
//   STATE/sim.json       this record (internal; describe reads it)
//   STATE/enclave.json   run-enclave's JSON, for scripts
//   STATE/console.log    the enclave's stdout and stderr
//   STATE/supervisor.log the supervisor's own log
//   STATE/image/         the unpacked customer ramdisk (image/rootfs is the enclave's "/")
//   STATE/nsm/           the simulated NSM's folder (chain, boot PCRs, nsm.sock)
//   STATE/vsock/         vsock stand-ins: CID_PORT.sock
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace shield_nitro::sim {

struct StatePaths {
  explicit StatePaths(const std::string& dir);
  std::string dir, record, enclave_json, console, supervisor_log, image, nsm, nsm_socket, vsock;
};

// A process identified by pid and start time, so a recycled pid is never mistaken for it.
struct ProcessId {
  pid_t pid = -1;
  uint64_t start = 0;
  static ProcessId self();
  bool alive() const;
};
std::optional<uint64_t> process_start_time(pid_t pid);

// nullopt when there is no record; throws Error(kFormat) when it is unreadable.
std::optional<nlohmann::ordered_json> load_record(const StatePaths& p);
void save_record(const StatePaths& p, const nlohmann::ordered_json& record);

// The supervisor recorded in the state is still running.
bool supervisor_alive(const nlohmann::ordered_json& record);

// Removes the sockets the enclave (cid) and the NSM left, and the enclave's cgroups.
void remove_leftovers(const StatePaths& p, const nlohmann::ordered_json& record);

}  // namespace shield_nitro::sim
