#include "shield_nitro/net/vsock_network.h"

#include <cstdlib>
#include <mutex>

#include "shield_nitro/core/error.h"

namespace shield_nitro::net {
namespace {

constexpr const char* kDirVar = "SHIELD_NITRO_VSOCK_DIR";
constexpr const char* kCidVar = "SHIELD_NITRO_VSOCK_CID";
const std::string kDescribe = "'shield-nitro sim describe --state DIR' shows a simulated enclave's CID";

std::string peer_question(const Endpoint& requested) {
  if (requested.cid == kVsockCidParent) return "is the parent's proxy running?";
  return "is the enclave running, with CID " + std::to_string(requested.cid) + "? " + kDescribe;
}

class HardwareVsock final : public VsockNetwork {
 public:
  Endpoint resolve(const Endpoint& vsock, bool) const override { return vsock; }
  std::string connect_hint(const Endpoint& requested) const override {
    if (requested.cid == kVsockCidParent)
      return "; nothing answers at the parent's port " + std::to_string(requested.port) + ": is its proxy running?";
    return "; no enclave answers at CID " + std::to_string(requested.cid) + " port " + std::to_string(requested.port) +
           " (for the local simulator, set " + kDirVar + " to its state folder's vsock/; " + kDescribe + ")";
  }
};

class SimulatedVsock final : public VsockNetwork {
 public:
  SimulatedVsock(std::string dir, uint32_t own_cid) : dir_(std::move(dir)), own_cid_(own_cid) {}
  Endpoint resolve(const Endpoint& vsock, bool listening) const override {
    uint32_t cid = vsock.cid;
    if (cid == kVsockCidAny) {
      if (!listening) throw Error(Errc::kUsage, "cannot connect to vsock://ANY: name a CID");
      cid = own_cid_;
    }
    std::string path = dir_ + "/" + std::to_string(cid) + "_" + std::to_string(vsock.port) + ".sock";
    try {
      return Endpoint::unix_path(path);
    } catch (const Error&) {
      throw Error(Errc::kUsage, std::string(kDirVar) + " is too long for a unix socket path: " + path);
    }
  }
  std::string connect_hint(const Endpoint& requested) const override {
    return "; nothing listens at " + resolve(requested, false).path + " (" + kDirVar + "=" + dir_ + "): " +
           peer_question(requested);
  }

 private:
  std::string dir_;
  uint32_t own_cid_;
};

std::mutex g_mu;
std::shared_ptr<const VsockNetwork> g_network;

}  // namespace

std::unique_ptr<VsockNetwork> hardware_vsock() { return std::make_unique<HardwareVsock>(); }

std::unique_ptr<VsockNetwork> simulated_vsock(std::string dir, uint32_t own_cid) {
  return std::make_unique<SimulatedVsock>(std::move(dir), own_cid);
}

std::unique_ptr<VsockNetwork> vsock_from_environment() {
  const char* dir = std::getenv(kDirVar);
  if (!dir || !*dir) return hardware_vsock();
  uint32_t cid = kDefaultSimulatedCid;
  if (const char* own = std::getenv(kCidVar); own && *own) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(own, &end, 10);
    if (*end != '\0' || own[0] == '-' || v >= kVsockCidAny)
      throw Error(Errc::kUsage, std::string(kCidVar) + " must be a decimal CID, got '" + own + "'");
    cid = static_cast<uint32_t>(v);
  }
  return simulated_vsock(dir, cid);
}

std::shared_ptr<const VsockNetwork> vsock_network() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_network) g_network = vsock_from_environment();
  return g_network;
}

void install_vsock_network(std::shared_ptr<const VsockNetwork> network) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_network = std::move(network);
}

}  // namespace shield_nitro::net
