// SafeDir: creates files under one root folder through directory descriptors, opening every
// path component with O_NOFOLLOW, so no name and no symlink inside the tree can lead a write
// outside the root. Used by cpio unpacking and EIF extraction.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/unique_fd.h"

namespace shield_nitro::eif {

class SafeDir {
 public:
  explicit SafeDir(const std::string& root);  // created if missing

  // rel is a clean relative path (see clean_member_path); missing parents are created 0755.
  void make_dir(const std::string& rel, unsigned perm);
  // Returns a writable fd for a new regular file, replacing an existing non-directory.
  UniqueFd create_file(const std::string& rel, unsigned perm);
  void make_symlink(const std::string& rel, const std::string& target);
  // Fifo or device node; returns false when the kernel refuses (EPERM without root).
  bool make_node(const std::string& rel, unsigned mode, unsigned major, unsigned minor);
  // Applies directory permissions last, so a read-only folder can still be filled.
  void finish();

 private:
  UniqueFd open_parent(const std::string& rel, std::string& leaf);
  void remove_existing(int dfd, const std::string& leaf);
  std::string root_;
  UniqueFd root_fd_;
  std::vector<std::pair<std::string, unsigned>> dir_modes_;  // creation order; last mode wins
  std::unordered_map<std::string, size_t> dir_index_;
};

}  // namespace shield_nitro::eif
