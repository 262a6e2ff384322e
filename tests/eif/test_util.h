// Helpers for the EIF tests: fixture paths, scratch folders and in-memory tar/gzip writers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "support/temp_dir.h"

namespace eif_test {

using shield_nitro::Bytes;

std::string fixture(const std::string& rel);  // SN_FIXTURES_DIR/eif/rel
Bytes slurp(const std::string& path);
void spit(const std::string& path, const Bytes& data);
std::string slurp_text(const std::string& path);

using shield_nitro::test_support::TempDir;

// ustar writer: enough to build docker save / OCI / export tars, including hostile ones.
class TarWriter {
 public:
  void file(const std::string& name, const std::string& content, uint32_t mode = 0644);
  void dir(const std::string& name, uint32_t mode = 0755);
  void symlink(const std::string& name, const std::string& target);
  void hardlink(const std::string& name, const std::string& target);
  void raw(const std::string& name, char type, const std::string& content, const std::string& link, uint32_t mode);
  Bytes finish();  // appends the two zero blocks

 private:
  Bytes out_;
};

Bytes gzip(const Bytes& data);
// Runs a command line, returns its exit code; stdout captured into out when given.
int run(const std::string& cmd, std::string* out = nullptr);

}  // namespace eif_test
