#include "staging_dir.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/random.h"

namespace shield_nitro::eif {

StagingDir::StagingDir(const std::string& target) : target_(target) {
  while (target_.size() > 1 && target_.back() == '/') target_.pop_back();
  tmp_ = target_ + ".tmp-" + hex_encode(os_random().bytes(6));
  if (::mkdir(tmp_.c_str(), 0755) != 0) throw Error(Errc::kIo, "cannot create " + tmp_ + ": " + std::strerror(errno));
}

StagingDir::~StagingDir() {
  if (committed_) return;
  std::error_code ec;
  std::filesystem::remove_all(tmp_, ec);  // never follows symlinks
}

void StagingDir::commit() {
  if (std::rename(tmp_.c_str(), target_.c_str()) != 0) {
    if (errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR)
      throw Error(Errc::kUsage, target_ + " already exists and is not an empty folder");
    throw Error(Errc::kIo, "cannot rename into " + target_ + ": " + std::strerror(errno));
  }
  committed_ = true;
}

}  // namespace shield_nitro::eif
