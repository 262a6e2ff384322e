#include "test_util.h"

#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sys/wait.h>

namespace eif_test {

std::string fixture(const std::string& rel) { return std::string(SN_FIXTURES_DIR) + "/eif/" + rel; }

Bytes slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

void spit(const std::string& path, const Bytes& data) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

std::string slurp_text(const std::string& path) { return shield_nitro::to_string(slurp(path)); }

void TarWriter::raw(const std::string& name, char type, const std::string& content, const std::string& link, uint32_t mode) {
  uint8_t h[512] = {};
  std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
  std::snprintf(reinterpret_cast<char*>(h + 100), 8, "%07o", mode);
  std::snprintf(reinterpret_cast<char*>(h + 108), 8, "%07o", 0);
  std::snprintf(reinterpret_cast<char*>(h + 116), 8, "%07o", 0);
  std::snprintf(reinterpret_cast<char*>(h + 124), 12, "%011o", static_cast<unsigned>(content.size()));
  std::snprintf(reinterpret_cast<char*>(h + 136), 12, "%011o", 1600000000u);
  h[156] = static_cast<uint8_t>(type);
  std::memcpy(h + 157, link.data(), std::min<size_t>(link.size(), 100));
  std::memcpy(h + 257, "ustar\0" "00", 8);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (uint8_t c : h) sum += c;
  std::snprintf(reinterpret_cast<char*>(h + 148), 8, "%06o", sum);
  out_.insert(out_.end(), h, h + 512);
  out_.insert(out_.end(), content.begin(), content.end());
  out_.resize((out_.size() + 511) / 512 * 512, 0);
}

void TarWriter::file(const std::string& name, const std::string& content, uint32_t mode) { raw(name, '0', content, "", mode); }
void TarWriter::dir(const std::string& name, uint32_t mode) { raw(name, '5', "", "", mode); }
void TarWriter::symlink(const std::string& name, const std::string& target) { raw(name, '2', "", target, 0777); }
void TarWriter::hardlink(const std::string& name, const std::string& target) { raw(name, '1', "", target, 0644); }

Bytes TarWriter::finish() {
  out_.resize(out_.size() + 1024, 0);
  return out_;
}

Bytes gzip(const Bytes& data) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  Bytes out(deflateBound(&z, data.size()) + 64);
  z.next_in = const_cast<uint8_t*>(data.data());
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

int run(const std::string& cmd, std::string* out) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int status = ::pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace eif_test
