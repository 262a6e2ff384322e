// How NSM request bytes reach a device and replies come back.
//
// NsmClient speaks CBOR; an NsmTransport moves one request to the device and returns its
// reply bytes, unparsed. Three transports exist:
//   DevNsmTransport        the real /dev/nsm, through the raw ioctl (nsm.md §2);
//   UnixSocketNsmTransport a simulated NSM serving on a unix socket (see docs/nsm.md);
//   SimulatorTransport     a SimulatedNsm in this process (simulator.h).
// open_nsm() picks one from a user-facing spec. It never falls back to a simulator: outside
// an enclave, without an explicit simulator, it fails.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/unique_fd.h"

namespace shield_nitro::nsm {

class NsmTransport {
 public:
  virtual ~NsmTransport() = default;
  // Sends one request and returns the complete reply. Throws NsmIoError / Error on failure.
  virtual Bytes roundtrip(ByteView request) = 0;
  // Where requests go, for messages: "/dev/nsm", "sim:/tmp/x".
  virtual std::string describe() const = 0;
};

// The ioctl argument: two (address, length) pairs of native-endian u64 (nsm.md §2). On
// return the kernel has rewritten response_len to the reply length.
struct NsmIoctlArg {
  uint64_t request_addr = 0;
  uint64_t request_len = 0;
  uint64_t response_addr = 0;
  uint64_t response_len = 0;
};
static_assert(sizeof(NsmIoctlArg) == 32, "the NSM ioctl argument is 32 bytes");

// _IOWR(0x0A, 0, 32 bytes): NSM_IOCTL_RAW.
inline constexpr unsigned long kNsmIoctlRaw = 0xC0200A00;

// The syscall seam: returns 0 on success or the errno of the failed ioctl().
using IoctlSyscall = std::function<int(int fd, unsigned long request, NsmIoctlArg& arg)>;

// ::ioctl() itself.
IoctlSyscall real_ioctl();

class DevNsmTransport final : public NsmTransport {
 public:
  // Opens path O_RDWR|O_CLOEXEC. A missing device is Errc::kEnvironment with a hint that
  // this is not an enclave and that the simulator must be selected explicitly.
  static std::unique_ptr<DevNsmTransport> open(const std::string& path, IoctlSyscall syscall = real_ioctl());
  // Tests pass any open fd together with a fake syscall.
  DevNsmTransport(UniqueFd fd, std::string path, IoctlSyscall syscall);

  // Always hands the kernel a full 0x3000-byte reply buffer and returns exactly the
  // response_len bytes it reports (the kernel truncates silently, nsm.md §2.1).
  Bytes roundtrip(ByteView request) override;
  std::string describe() const override { return path_; }

 private:
  UniqueFd fd_;
  std::string path_;
  IoctlSyscall syscall_;
};

// A simulated NSM on a unix stream socket. Framing, both ways: a 4-byte big-endian length,
// then that many bytes of CBOR (request ≤ 0x1000, reply ≤ 0x3000). One connection is kept
// and calls on it are serialised, like the device's own mutex.
class UnixSocketNsmTransport final : public NsmTransport {
 public:
  // Connects now, so a simulator that is not running is reported here (Errc::kEnvironment).
  explicit UnixSocketNsmTransport(const std::string& socket_path, std::string description = "");
  UnixSocketNsmTransport(const UnixSocketNsmTransport&) = delete;
  UnixSocketNsmTransport& operator=(const UnixSocketNsmTransport&) = delete;

  Bytes roundtrip(ByteView request) override;
  std::string describe() const override { return description_; }

 private:
  UniqueFd fd_;
  std::string description_;
  std::mutex mu_;
};

// The environment variable that the simulator's launcher sets for the processes it starts
// (value: a spec for open_nsm, e.g. "sim:/run/sim"). Only consulted for kNsmDefault.
inline constexpr const char* kNsmEnvVar = "SHIELD_NITRO_NSM";
// The spec that means "the default device": $SHIELD_NITRO_NSM when set, else /dev/nsm.
inline constexpr const char* kNsmDefault = "";

// The socket a simulator serving DIR listens on.
std::string simulator_socket_path(const std::string& dir);

// Opens a transport from a spec:
//   ""            → $SHIELD_NITRO_NSM if set, else /dev/nsm;
//   "sim:DIR"     → the simulator serving DIR (DIR/nsm.sock);
//   anything else → a device path.
std::unique_ptr<NsmTransport> open_nsm(const std::string& spec = kNsmDefault);

}  // namespace shield_nitro::nsm
