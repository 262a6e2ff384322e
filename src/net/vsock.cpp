// The only file that knows AF_VSOCK: everything else handles it as an opaque address.
#include "sockaddr.h"
#include "shield_nitro/core/error.h"

#ifdef __linux__
#include <linux/vm_sockets.h>
#endif

#include <cstring>

namespace shield_nitro::net::detail {

#ifdef __linux__
SockAddr vsock_address(uint32_t cid, uint32_t port) {
  SockAddr a;
  sockaddr_vm vm{};
  vm.svm_family = AF_VSOCK;
  vm.svm_cid = cid;
  vm.svm_port = port;
  std::memcpy(&a.storage, &vm, sizeof vm);
  a.length = sizeof vm;
  a.family = AF_VSOCK;
  return a;
}

uint32_t vsock_port(const sockaddr_storage& storage) {
  sockaddr_vm vm{};
  std::memcpy(&vm, &storage, sizeof vm);
  return vm.svm_port;
}
#else
SockAddr vsock_address(uint32_t, uint32_t) {
  throw Error(Errc::kUnsupported, "vsock endpoints need Linux (AF_VSOCK); use unix: or tcp:// here");
}
uint32_t vsock_port(const sockaddr_storage&) { return 0; }
#endif

}  // namespace shield_nitro::net::detail
