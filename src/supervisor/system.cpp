#include "shield_nitro/supervisor/system.h"

#include <grp.h>
#include <net/if.h>
#include <pwd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/unique_fd.h"

namespace shield_nitro::supervisor {
namespace {

std::string errno_text(int err = errno) { return std::strerror(err); }

bool is_digits(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }

void mkdir_one(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw Error(Errc::kEnvironment, "cannot create " + dir + ": " + errno_text());
}

}  // namespace

void loopback_up() {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) throw Error(Errc::kEnvironment, "loopback: cannot open a socket: " + errno_text());
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, "lo", 3);
  if (::ioctl(fd.get(), SIOCGIFFLAGS, &ifr) != 0) throw Error(Errc::kEnvironment, "loopback: SIOCGIFFLAGS lo: " + errno_text());
  if (ifr.ifr_flags & IFF_UP) return;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (::ioctl(fd.get(), SIOCSIFFLAGS, &ifr) != 0)
    throw Error(Errc::kEnvironment, "loopback: cannot bring lo up: " + errno_text());
}

void make_parent_dirs(const std::string& root, const std::string& file) {
  size_t pos = root.size();
  while ((pos = file.find('/', pos + 1)) != std::string::npos) mkdir_one(file.substr(0, pos));
}

Storage::Storage(const std::string& path, uint64_t size_mib, bool allow_plain_dir) : path_(path) {
  make_parent_dirs("", path + "/");
  std::string opts = "size=" + std::to_string(size_mib) + "m,mode=0755";
  // Not noexec: an artifact may be code the app loads (a native plugin is mapped executable).
  // Huge pages for what fits in them: placing a 1 GiB artifact allocates 512 pages instead of
  // 262144 (about a third less CPU per GiB, docs/performance.md "Runtime"); a kernel without
  // transparent huge pages for tmpfs refuses the option (EINVAL), and then it goes without.
  for (bool huge : {true, false}) {
    if (::mount("tmpfs", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                (opts + (huge ? ",huge=within_size" : "")).c_str()) == 0) {
      mounted_ = true;
      huge_pages_ = huge;
      description_ = "tmpfs of " + std::to_string(size_mib) + " MiB at " + path +
                     (huge ? " (2 MiB pages where a file fills them)" : " (4 KiB pages: the kernel has no huge pages for tmpfs)");
      return;
    }
    if (errno != EINVAL) break;
  }
  int err = errno;
  if ((err == EPERM || err == EACCES) && allow_plain_dir) {
    plain_ = true;
    description_ = "a plain folder " + path + " (mounting a tmpfs is not permitted: " + errno_text(err) +
                   "; allowed for tests only: the plaintext is on disk)";
    return;
  }
  throw Error(Errc::kEnvironment, "cannot mount a tmpfs at " + path + ": " + errno_text(err) +
                                      (err == EPERM ? " (the supervisor must run as root inside the enclave)" : ""));
}

Storage::~Storage() {
  if (mounted_) {
    ::umount2(path_.c_str(), MNT_DETACH);
  } else {
    for (const auto& f : placed_) ::unlink(f.c_str());
  }
}

void resolve_app_user(runtime::AppConfig& app) {
  if (app.user.empty()) return;
  size_t colon = app.user.find(':');
  std::string u = app.user.substr(0, colon);
  std::string g = colon == std::string::npos ? "" : app.user.substr(colon + 1);
  std::vector<char> buf(16384);
  if (!is_digits(u)) {
    passwd pw{}, *found = nullptr;
    int rc = ::getpwnam_r(u.c_str(), &pw, buf.data(), buf.size(), &found);
    if (rc != 0 || !found)
      throw Error(Errc::kEnvironment, "app.user: no user '" + u + "' in the image's /etc/passwd" + (rc ? ": " + errno_text(rc) : ""));
    app.uid = pw.pw_uid;
    if (g.empty()) app.gid = pw.pw_gid;
  }
  if (!g.empty() && !is_digits(g)) {
    group gr{}, *found = nullptr;
    int rc = ::getgrnam_r(g.c_str(), &gr, buf.data(), buf.size(), &found);
    if (rc != 0 || !found)
      throw Error(Errc::kEnvironment, "app.user: no group '" + g + "' in the image's /etc/group" + (rc ? ": " + errno_text(rc) : ""));
    app.gid = gr.gr_gid;
  }
}

}  // namespace shield_nitro::supervisor
