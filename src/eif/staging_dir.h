// StagingDir: a fresh folder beside the target that becomes the target on commit() (rename)
// and is deleted otherwise, so multi-file outputs appear complete or not at all.
#pragma once

#include <string>

namespace shield_nitro::eif {

class StagingDir {
 public:
  explicit StagingDir(const std::string& target);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;
  const std::string& path() const { return tmp_; }
  void commit();  // target must not exist or be an empty folder

 private:
  std::string target_, tmp_;
  bool committed_ = false;
};

}  // namespace shield_nitro::eif
