#include "safe_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"

namespace shield_nitro::eif {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& rel) {
  throw Error(Errc::kIo, what + " " + rel + ": " + std::strerror(errno));
}

std::vector<std::string> split(const std::string& rel) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= rel.size()) {
    size_t j = rel.find('/', i);
    if (j == std::string::npos) j = rel.size();
    std::string c = rel.substr(i, j - i);
    if (c.empty() || c == "." || c == "..") throw Error(Errc::kFormat, "unsafe path '" + rel + "'");
    out.push_back(c);
    i = j + 1;
  }
  return out;
}

}  // namespace

SafeDir::SafeDir(const std::string& root) : root_(root) {
  make_dirs(root, 0755);
  root_fd_.reset(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd_) fail("cannot open folder", root);
}

UniqueFd SafeDir::open_parent(const std::string& rel, std::string& leaf) {
  std::vector<std::string> comps = split(rel);
  leaf = comps.back();
  comps.pop_back();
  UniqueFd fd(::dup(root_fd_.get()));
  if (!fd) fail("cannot open folder for", rel);
  for (const auto& c : comps) {
    UniqueFd next(::openat(fd.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next && errno == ENOENT) {
      if (::mkdirat(fd.get(), c.c_str(), 0755) != 0 && errno != EEXIST) fail("cannot create folder for", rel);
      next.reset(::openat(fd.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    }
    if (!next) throw Error(Errc::kFormat, "refusing " + rel + ": '" + c + "' is not a folder (a symlink or file)");
    fd = std::move(next);
  }
  return fd;
}

void SafeDir::remove_existing(int dfd, const std::string& leaf) {
  struct stat st{};
  if (::fstatat(dfd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (::unlinkat(dfd, leaf.c_str(), AT_REMOVEDIR) != 0) fail("cannot replace non-empty folder", leaf);
  } else if (::unlinkat(dfd, leaf.c_str(), 0) != 0) {
    fail("cannot replace", leaf);
  }
}

void SafeDir::make_dir(const std::string& rel, unsigned perm) {
  if (rel.empty()) return;
  std::string leaf;
  UniqueFd dfd = open_parent(rel, leaf);
  struct stat st{};
  bool exists = ::fstatat(dfd.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (exists && !S_ISDIR(st.st_mode)) remove_existing(dfd.get(), leaf);
  if ((!exists || !S_ISDIR(st.st_mode)) && ::mkdirat(dfd.get(), leaf.c_str(), 0755) != 0)
    fail("cannot create folder", rel);
  auto [it, added] = dir_index_.emplace(rel, dir_modes_.size());
  if (added) dir_modes_.emplace_back(rel, perm & 07777);
  else dir_modes_[it->second].second = perm & 07777;
}

UniqueFd SafeDir::create_file(const std::string& rel, unsigned perm) {
  std::string leaf;
  UniqueFd dfd = open_parent(rel, leaf);
  remove_existing(dfd.get(), leaf);
  UniqueFd fd(::openat(dfd.get(), leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) fail("cannot create", rel);
  ::fchmod(fd.get(), perm & 07777);
  return fd;
}

void SafeDir::make_symlink(const std::string& rel, const std::string& target) {
  std::string leaf;
  UniqueFd dfd = open_parent(rel, leaf);
  remove_existing(dfd.get(), leaf);
  int rc = ::symlinkat(target.c_str(), dfd.get(), leaf.c_str());
  if (rc != 0) fail("cannot create symlink", rel);
}

bool SafeDir::make_node(const std::string& rel, unsigned mode, unsigned major, unsigned minor) {
  std::string leaf;
  UniqueFd dfd = open_parent(rel, leaf);
  remove_existing(dfd.get(), leaf);
  int rc = ::mknodat(dfd.get(), leaf.c_str(), mode, makedev(major, minor));
  int err = errno;
  if (rc != 0 && (err == EPERM || err == EACCES)) return false;
  errno = err;
  if (rc != 0) fail("cannot create node", rel);
  return true;
}

void SafeDir::finish() {
  for (auto it = dir_modes_.rbegin(); it != dir_modes_.rend(); ++it) {
    std::string leaf;
    UniqueFd dfd = open_parent(it->first, leaf);
    UniqueFd fd(::openat(dfd.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) continue;  // replaced by a later non-folder entry
    ::fchmod(fd.get(), it->second);
  }
  dir_modes_.clear();
  dir_index_.clear();
}

}  // namespace shield_nitro::eif
