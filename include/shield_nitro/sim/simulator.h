// `shield-nitro sim`: run an EIF as a simulated Nitro enclave on this machine.
//
//   sim::RunOptions o{.eif_path = "app.eif", .state_dir = "/tmp/enc"};
//   auto info = sim::run_enclave(o);           // detached; prints like nitro-cli run-enclave
//   auto all = sim::describe_enclave("/tmp/enc");  // like describe-enclaves (an array)
//   sim::terminate_enclave("/tmp/enc");
//
// run_enclave measures the EIF, unpacks its customer ramdisk into STATE/image, and forks a
// supervisor that daemonizes, serves a SimulatedNsm booted with the enclave's PCRs on
// STATE/nsm/nsm.sock, launches the image's /cmd (launcher.h) and waits for it. The enclave sees:
//   /run/shield-nitro/vsock          = STATE/vsock (vsock stand-ins, CID_PORT.sock)
//   /run/shield-nitro/nsm/nsm.sock   = the NSM socket
//   SHIELD_NITRO_NSM=sim:/run/shield-nitro/nsm, SHIELD_NITRO_VSOCK_DIR=/run/shield-nitro/vsock,
//   SHIELD_NITRO_VSOCK_CID=<cid>
// and STATE/console.log receives its stdout and stderr. docs/simulator.md has the details.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

#include "shield_nitro/eif/pcr.h"

namespace shield_nitro::sim {

// Where the enclave finds its stand-ins.
inline constexpr const char* kVsockDirInside = "/run/shield-nitro/vsock";
inline constexpr const char* kNsmDirInside = "/run/shield-nitro/nsm";
inline constexpr uint32_t kParentCid = 3;

struct RunOptions {
  std::string eif_path;
  std::string state_dir;
  std::string name;          // EnclaveName; default: the EIF's file name without .eif
  uint32_t cid = 16;         // 4 .. 2^32-2, as Nitro accepts
  uint64_t memory_mib = 0;   // 0: the EIF header's default (1 GiB for nitro-cli images)
  unsigned cpus = 0;         // 0: the EIF header's default, capped at this machine's CPUs
  bool debug_mode = false;   // PCR0/1/2/8 read as zeros inside, like a real debug enclave
  std::string role_arn;      // PCR3
  std::string instance_id;   // PCR4 and the EnclaveID prefix
  eif::HashLabel hash_label = eif::HashLabel::kCurrent;
};

// Starts the enclave and returns nitro-cli run-enclave's JSON once its command runs. Throws
// Error(kUsage) when STATE already runs an enclave, or for more CPUs than the machine has or
// less memory than 4 times the EIF's size (checked before anything is unpacked),
// Error(kEnvironment) when namespaces are unavailable, Error(kFormat) for a malformed EIF. A
// failed run removes what it unpacked and created in STATE.
nlohmann::ordered_json run_enclave(const RunOptions& options);

// nitro-cli describe-enclaves' JSON: an array with this state folder's enclave (State RUNNING
// or TERMINATED, and for TERMINATED "Ended": how), or empty when none was ever started there.
// Throws Error(kNotFound) when the folder does not exist, like terminate_enclave.
nlohmann::ordered_json describe_enclave(const std::string& state_dir);

// Stops the enclave (every process in it), the NSM, and removes the enclave's sockets and
// cgroups. Idempotent. Returns {"EnclaveName", "EnclaveID", "Terminated"} like nitro-cli.
// Throws Error(kNotFound) when no enclave was ever started in state_dir (or it does not exist).
nlohmann::ordered_json terminate_enclave(const std::string& state_dir);

// Copies STATE/console.log to out as it grows, until the enclave has terminated (or after
// timeout_s seconds when > 0), like nitro-cli console.
void follow_console(const std::string& state_dir, std::ostream& out, int timeout_s = 0);

}  // namespace shield_nitro::sim
