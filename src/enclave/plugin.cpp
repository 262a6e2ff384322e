#include "shield_nitro/enclave/plugin.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "shield_nitro/core/error.h"
#include "shield_nitro/plugin_abi.h"

namespace shield_nitro::enclave {

struct Plugin::Abi {
  int (*version)();
  int (*init)(const sn_artifact*, size_t, void**, char*, size_t);
  int (*invoke)(void*, const uint8_t*, size_t, uint8_t**, size_t*, char*, size_t);
  void (*free_output)(void*, uint8_t*, size_t);
  void (*fini)(void*);
};

namespace {

UniqueFd write_memfd(const SecureBytes& object, const std::string& name) {
  UniqueFd fd(static_cast<int>(::memfd_create(("sn-plugin-" + name).c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING)));
  if (!fd) throw Error(Errc::kEnvironment, std::string("memfd_create failed: ") + std::strerror(errno));
  const uint8_t* p = object.data();
  size_t left = object.size();
  while (left > 0) {
    ssize_t w = ::write(fd.get(), p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw Error(Errc::kIo, std::string("cannot fill the plugin memfd: ") + std::strerror(errno));
    p += w;
    left -= static_cast<size_t>(w);
  }
  // The size is fixed; writes stay possible only so unload can wipe the plaintext code.
  ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  return fd;
}

template <typename Fn>
Fn symbol(void* handle, const char* name) {
  void* s = ::dlsym(handle, name);
  if (!s) throw Error(Errc::kFormat, std::string("plugin does not export ") + name + " (see docs/plugin-abi.md)");
  return reinterpret_cast<Fn>(s);
}

// Overwrites the plaintext object with zeros before its pages go back to the kernel.
void wipe_memfd(int fd) {
  off_t size = ::lseek(fd, 0, SEEK_END);
  static const uint8_t kZeros[4096] = {};
  for (off_t off = 0; off < size;) {
    size_t n = static_cast<size_t>(std::min<off_t>(sizeof kZeros, size - off));
    ssize_t w = ::pwrite(fd, kZeros, n, off);
    if (w <= 0) break;
    off += w;
  }
}

std::string reason(const char* err) { return err[0] ? std::string(err) : "no reason given"; }

}  // namespace

std::unique_ptr<Plugin> Plugin::load(const SecureBytes& object, std::string name, const std::vector<PluginInput>& models) {
  std::unique_ptr<Plugin> p(new Plugin());
  p->name_ = std::move(name);
  p->memfd_ = write_memfd(object, p->name_);
  std::string path = "/proc/self/fd/" + std::to_string(p->memfd_.get());
  p->handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!p->handle_) {
    const char* why = ::dlerror();
    throw Error(Errc::kFormat, "plugin " + p->name_ + " is not a loadable shared object: " + (why ? why : "unknown"));
  }
  p->abi_ = std::make_unique<Abi>();
  p->abi_->version = symbol<int (*)()>(p->handle_, "sn_plugin_abi_version");
  p->abi_->init = symbol<decltype(Abi::init)>(p->handle_, "sn_plugin_init");
  p->abi_->invoke = symbol<decltype(Abi::invoke)>(p->handle_, "sn_plugin_invoke");
  p->abi_->free_output = symbol<decltype(Abi::free_output)>(p->handle_, "sn_plugin_free_output");
  p->abi_->fini = symbol<decltype(Abi::fini)>(p->handle_, "sn_plugin_fini");
  int v = p->abi_->version();
  if (v != SN_PLUGIN_ABI_VERSION)
    throw Error(Errc::kUnsupported, "plugin " + p->name_ + " implements ABI version " + std::to_string(v) +
                                        ", this enclave speaks " + std::to_string(SN_PLUGIN_ABI_VERSION));
  std::vector<sn_artifact> arts;
  for (const auto& m : models) arts.push_back({m.name.c_str(), m.data.data(), m.data.size()});
  char err[256] = {0};
  if (p->abi_->init(arts.data(), arts.size(), &p->state_, err, sizeof err) != 0) {
    p->state_ = nullptr;
    throw Error(Errc::kRemote, "plugin " + p->name_ + " init failed: " + reason(err));
  }
  return p;
}

Plugin::~Plugin() {
  if (abi_ && state_) abi_->fini(state_);
  bool unloaded = true;
  if (handle_) {
    ::dlclose(handle_);
    // An object with STB_GNU_UNIQUE symbols stays mapped after dlclose (plugins should be
    // built with -fno-gnu-unique). Its code then still runs from the memfd: do not wipe it,
    // and keep the fd so its /proc/self/fd path is never reused for another plugin.
    std::string path = "/proc/self/fd/" + std::to_string(memfd_.get());
    if (void* still = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
      ::dlclose(still);
      unloaded = false;
    }
  }
  if (!unloaded) {
    (void)memfd_.release();
  } else if (memfd_) {
    wipe_memfd(memfd_.get());
  }
}

SecureBytes Plugin::invoke(ByteView input) const {
  uint8_t* out = nullptr;
  size_t out_len = 0;
  char err[256] = {0};
  if (abi_->invoke(state_, input.data(), input.size(), &out, &out_len, err, sizeof err) != 0)
    throw Error(Errc::kRemote, "plugin " + name_ + " failed: " + reason(err));
  SecureBytes result(ByteView(out, out_len));
  abi_->free_output(state_, out, out_len);
  return result;
}

}  // namespace shield_nitro::enclave
