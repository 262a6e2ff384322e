// Test helper: a scratch folder, created fresh under /tmp (short, so unix socket paths inside it
// fit in sun_path) and removed with everything in it when the object goes.
#pragma once

#include <cstddef>
#include <string>

namespace shield_nitro::test_support {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "sn-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  // A unix socket path inside the folder.
  std::string sock(const std::string& name = "s.sock") const { return *this / name; }
  // How many entries the folder holds (to check that a refused command left nothing).
  size_t entries() const;

 private:
  std::string path_;
};

}  // namespace shield_nitro::test_support
