// SimulatedNsm: a Nitro Secure Module for machines without Nitro.
//
// It answers the same CBOR requests as /dev/nsm (nsm.md §7): 32 SHA-384 PCRs, 0–15 fixed at
// boot from caller-supplied values and locked, 16–31 extendable and lockable; attestation
// documents in the real shape (attestation.md §6) signed by a local P-384 chain kept in a
// state folder. The chain's root is "shield-nitro simulated nitro root (NOT AWS)": documents
// verify only for a verifier told to trust DIR/root.pem, never against the AWS root.
//
//   nsm::SimulatedNsm::init(dir, pcrs);                  // once: chain, module_id, boot PCRs
//   auto sim = nsm::SimulatedNsm::open(dir);              // boot: PCRs 16–31 zero, unlocked
//   auto server = sim->serve(nsm::simulator_socket_path(dir));  // other processes: sim:DIR
//   nsm::NsmClient local(std::make_unique<nsm::SimulatorTransport>(sim));  // this process
//
// The simulator is used only when selected explicitly (see transport.h, open_nsm).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/nsm/messages.h"
#include "shield_nitro/nsm/transport.h"

namespace shield_nitro::nsm {

// PCRs 0–15 of the simulated enclave, as booted.
struct BootPcrs {
  // index 0..15 → 48 bytes; an absent index reads as zeros.
  std::map<uint16_t, Bytes> values;
  // A debug-mode enclave: PCR0, 1, 2 and 8 read as zeros (nsm.md §4) and may not be given.
  // Without it PCR0 must be given and non-zero, so a production-looking simulator never
  // emits documents that a relying party would take for debug ones, or the reverse.
  bool debug = false;

  // Throws Error(kUsage) naming the first problem.
  void validate() const;
};

struct SimulatorOptions {
  // Encode the payload map with indefinite length (bf … ff) like AWS documents since 2025-07.
  bool indefinite_payload = false;
  // A leaf signs every document for this long, then a new one is issued (AWS reuses leaves
  // too: fixtures show notBefore up to 26 min before the timestamp). 0: a leaf per document.
  int64_t leaf_reuse_ms = 20 * 60 * 1000;
  // Time source for timestamps and certificate validity; nullptr = the system clock.
  const Clock* clock = nullptr;
};

class SimulatorServer;

class SimulatedNsm : public std::enable_shared_from_this<SimulatedNsm> {
 public:
  // Writes the boot state (module_id, PCRs 0–15) into dir, creating dir and the CA chain
  // when they do not exist. An existing chain is kept, so DIR/root.pem stays trusted; an
  // unreadable state is an error, never overwritten. A new chain starts at the clock's now
  // (nullptr = the system clock).
  static void init(const std::string& dir, const BootPcrs& pcrs, const Clock* clock = nullptr);
  // Boots from a folder that init() wrote.
  static std::shared_ptr<SimulatedNsm> open(const std::string& dir, SimulatorOptions options = {});
  // init() then open() with options.clock: the in-process launcher's entry point.
  static std::shared_ptr<SimulatedNsm> create(const std::string& dir, const BootPcrs& pcrs,
                                              SimulatorOptions options = {});

  // One request's bytes in, one reply's bytes out, exactly like the device. Never throws:
  // malformed or refused requests get an {"Error": code} reply.
  Bytes handle(ByteView request);
  // The typed core of handle(); refusals throw NsmError with the code the NSM would send.
  Response execute(const Request& request);

  // Serves handle() on a unix socket from background threads until the server is stopped
  // or destroyed (framing in transport.h).
  std::unique_ptr<SimulatorServer> serve(const std::string& socket_path);

  // This module's id (fixed at init()) and its state folder.
  const std::string& module_id() const { return module_id_; }
  const std::string& dir() const { return dir_; }
  // The simulator's root certificate (DIR/root.pem), the only anchor its documents meet.
  std::string root_pem() const;
  Bytes root_der() const;

  ~SimulatedNsm();

 private:
  struct Impl;
  SimulatedNsm(std::string dir, SimulatorOptions options);
  std::string dir_;
  std::string module_id_;
  std::unique_ptr<Impl> impl_;
  std::mutex mu_;
};

// Runs a SimulatedNsm on a unix socket: one thread accepts, one thread per client (at most
// 64 at once). Stopping closes every connection and removes the socket file.
class SimulatorServer {
 public:
  // Listens on socket_path now (Error(kIo) when it cannot) and shares ownership of nsm.
  SimulatorServer(std::shared_ptr<SimulatedNsm> nsm, const std::string& socket_path);
  ~SimulatorServer();
  SimulatorServer(const SimulatorServer&) = delete;
  SimulatorServer& operator=(const SimulatorServer&) = delete;

  // Stops serving (idempotent; the destructor calls it).
  void stop();
  // Where clients connect.
  const std::string& socket_path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// An NsmTransport into a SimulatedNsm in this process.
class SimulatorTransport final : public NsmTransport {
 public:
  explicit SimulatorTransport(std::shared_ptr<SimulatedNsm> nsm) : nsm_(std::move(nsm)) {}
  Bytes roundtrip(ByteView request) override { return nsm_->handle(request); }
  std::string describe() const override { return "sim:" + nsm_->dir(); }

 private:
  std::shared_ptr<SimulatedNsm> nsm_;
};

}  // namespace shield_nitro::nsm
