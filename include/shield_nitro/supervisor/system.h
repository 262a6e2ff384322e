// What the supervisor sets up in the enclave before the app starts: the loopback interface, the
// memory filesystem for decrypted artifacts, and the app's user. Each throws Error with a
// one-line reason; none is needed again once done.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shield_nitro/runtime/config.h"

namespace shield_nitro::supervisor {

// Brings "lo" up (SIOCSIFFLAGS IFF_UP), as the Nitro init leaves it down. Does nothing when it
// is up already (so it needs no privilege then). Error(kEnvironment) with errno's text.
void loopback_up();

// The folder that holds decrypted artifacts, mounted for the supervisor's lifetime.
class Storage {
 public:
  // Mounts a tmpfs of size_mib at path (created, mode 0755, nodev/nosuid; not noexec: an
  // artifact may be a native plugin; huge=within_size where the kernel has it). When the mount is not permitted (not root) it fails,
  // Error(kEnvironment) saying so, unless allow_plain_dir: then the folder is used as it is
  // (tests only: the plaintext is on disk) and plain() is true.
  Storage(const std::string& path, uint64_t size_mib, bool allow_plain_dir);
  // Unmounts (the plaintext goes with it) or, for a plain folder, removes the files placed.
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Whether this is a plain folder (no tmpfs), and how it was set up, for the log.
  bool plain() const { return plain_; }
  // Whether the tmpfs uses 2 MiB pages (huge=within_size) for files that fill them.
  bool huge_pages() const { return huge_pages_; }
  const std::string& description() const { return description_; }
  // Records a file placed under the folder (removed by the destructor of a plain folder).
  void placed(const std::string& file) { placed_.push_back(file); }

 private:
  std::string path_;
  bool mounted_ = false;
  bool plain_ = false;
  bool huge_pages_ = false;
  std::string description_;
  std::vector<std::string> placed_;
};

// Creates the folders between storage_root and file (mode 0755), like mkdir -p.
void make_parent_dirs(const std::string& storage_root, const std::string& file);

// The app's numeric uid/gid from app.user: numbers as the config parser set them, names looked
// up in the image's /etc/passwd and /etc/group (a user name alone takes its primary group).
// Error(kEnvironment) naming the user or group that does not exist.
void resolve_app_user(runtime::AppConfig& app);

}  // namespace shield_nitro::supervisor
