#include "shield_nitro/nsm/transport.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "shield_nitro/nsm/framing.h"
#include "shield_nitro/nsm/error.h"
#include "shield_nitro/nsm/messages.h"

namespace shield_nitro::nsm {

namespace {

// The device's wait is bounded at 120 s by the kernel; the socket gets the same bound.
constexpr int kSocketTimeoutSeconds = 120;

const char* kSimulatorHint =
    "; to use the simulated NSM select it explicitly (--nsm sim:DIR after `shield-nitro nsm-sim serve DIR`)";

std::string ioctl_cause(int err) {
  switch (err) {
    case EINVAL: return "the driver rejected the request code or argument";
    case EMSGSIZE: return "request larger than 4096 bytes";
    case EFAULT: return "the driver could not copy the buffers";
    case ETIMEDOUT: return "the NSM did not answer within 120 s";
    case EIO: return "virtqueue kick failed";
    case ENODATA: return "the virtqueue returned the wrong buffer";
    case ENOMEM: return "out of memory in the driver";
    case ENXIO: return "no NSM device is bound";
    default: return std::strerror(err);
  }
}

uint64_t address_of(const void* p) { return reinterpret_cast<uintptr_t>(p); }

}  // namespace

IoctlSyscall real_ioctl() {
  return [](int fd, unsigned long request, NsmIoctlArg& arg) { return ::ioctl(fd, request, &arg) == 0 ? 0 : errno; };
}

std::unique_ptr<DevNsmTransport> DevNsmTransport::open(const std::string& path, IoctlSyscall syscall) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) {
    int err = errno;
    if (err == ENOENT)
      throw Error(Errc::kEnvironment, "not in an enclave (" + path + " missing)" + kSimulatorHint);
    throw Error(Errc::kEnvironment, "cannot open NSM device " + path + ": " + std::strerror(err));
  }
  return std::make_unique<DevNsmTransport>(std::move(fd), path, std::move(syscall));
}

DevNsmTransport::DevNsmTransport(UniqueFd fd, std::string path, IoctlSyscall syscall)
    : fd_(std::move(fd)), path_(std::move(path)), syscall_(std::move(syscall)) {}

Bytes DevNsmTransport::roundtrip(ByteView request) {
  if (request.size() > kMaxRequestSize)
    throw NsmError(ErrorCode::kInputTooLarge,
                   "nsm: request of " + std::to_string(request.size()) + " bytes exceeds the 4096-byte limit");
  Bytes reply(kMaxResponseSize);  // always the maximum: a smaller buffer truncates silently
  NsmIoctlArg arg;
  arg.request_addr = address_of(request.data());
  arg.request_len = request.size();
  arg.response_addr = address_of(reply.data());
  arg.response_len = reply.size();
  if (int err = syscall_(fd_.get(), kNsmIoctlRaw, arg))
    throw NsmIoError(err, "nsm: ioctl on " + path_ + " failed: " + ioctl_cause(err) + " (errno " +
                              std::to_string(err) + ")");
  if (arg.response_len > kMaxResponseSize)
    throw NsmError(ErrorCode::kInvalidResponse,
                   "nsm: driver reported a " + std::to_string(arg.response_len) + "-byte reply for a 0x3000-byte buffer");
  reply.resize(arg.response_len);
  return reply;
}

UnixSocketNsmTransport::UnixSocketNsmTransport(const std::string& socket_path, std::string description)
    : description_(description.empty() ? "unix:" + socket_path : std::move(description)) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path)
    throw Error(Errc::kUsage, "simulated NSM socket path too long (max 107 bytes): " + socket_path);
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());  // addr is zeroed: terminated
  fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd_) throw Error(Errc::kIo, std::string("cannot create a unix socket: ") + std::strerror(errno));
  if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    throw Error(Errc::kEnvironment, "no simulated NSM is serving " + description_ + " (" + socket_path + ": " +
                                        std::strerror(err) + "); start one with `shield-nitro nsm-sim serve DIR`");
  }
  framing::set_socket_timeout(fd_.get(), kSocketTimeoutSeconds);
}

Bytes UnixSocketNsmTransport::roundtrip(ByteView request) {
  if (request.size() > kMaxRequestSize)
    throw NsmError(ErrorCode::kInputTooLarge,
                   "nsm: request of " + std::to_string(request.size()) + " bytes exceeds the 4096-byte limit");
  std::lock_guard lock(mu_);
  framing::write_frame(fd_.get(), request);
  Bytes reply;
  switch (framing::read_frame(fd_.get(), kMaxResponseSize, reply)) {
    case framing::FrameStatus::kOk: return reply;
    case framing::FrameStatus::kEof: throw Error(Errc::kIo, "nsm: simulator at " + description_ + " closed the connection");
    case framing::FrameStatus::kTooLarge: break;
  }
  throw NsmError(ErrorCode::kInvalidResponse, "nsm: simulator reply exceeds 0x3000 bytes");
}

std::string simulator_socket_path(const std::string& dir) { return dir + "/nsm.sock"; }

std::unique_ptr<NsmTransport> open_nsm(const std::string& spec) {
  std::string chosen = spec;
  if (chosen == kNsmDefault) {
    const char* env = std::getenv(kNsmEnvVar);
    chosen = env && *env ? env : "/dev/nsm";
  }
  if (chosen.rfind("sim:", 0) == 0) {
    std::string dir = chosen.substr(4);
    if (dir.empty()) throw Error(Errc::kUsage, "--nsm sim:DIR needs the simulator's folder");
    return std::make_unique<UnixSocketNsmTransport>(simulator_socket_path(dir), chosen);
  }
  return DevNsmTransport::open(chosen);
}

}  // namespace shield_nitro::nsm
