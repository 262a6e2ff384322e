#include "shield_nitro/eif/tar.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <unordered_set>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/random.h"

namespace shield_nitro::eif {
namespace {

constexpr uint64_t kBlock = 512;
constexpr uint64_t kMaxExtension = 1 << 20;

[[noreturn]] void bad(const std::string& what) { throw Error(Errc::kFormat, "malformed tar: " + what); }

uint64_t round_up(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

std::string field(const uint8_t* p, size_t n) {
  size_t len = 0;
  while (len < n && p[len]) ++len;
  return std::string(reinterpret_cast<const char*>(p), len);
}

uint64_t number(const uint8_t* p, size_t n, const char* what) {
  if (p[0] & 0x80) {  // GNU base-256
    uint64_t v = p[0] & 0x3f;
    for (size_t i = 1; i < n; ++i) {
      if (v >> 56) bad(std::string(what) + " out of range");
      v = (v << 8) | p[i];
    }
    return v;
  }
  uint64_t v = 0;
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == 0)) ++i;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (v >> 60) bad(std::string(what) + " out of range");
    v = v * 8 + (p[i] - '0');
  }
  for (; i < n; ++i)
    if (p[i] != ' ' && p[i] != 0) bad(std::string("non-octal ") + what);
  return v;
}

bool checksum_ok(const uint8_t* h) {
  uint64_t want = number(h + 148, 8, "checksum");
  uint64_t usum = 0;
  int64_t ssum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    uint8_t c = (i >= 148 && i < 156) ? ' ' : h[i];
    usum += c;
    ssum += static_cast<int8_t>(c);
  }
  return want == usum || static_cast<int64_t>(want) == ssum;
}

bool all_zero(const uint8_t* h) {
  for (size_t i = 0; i < kBlock; ++i)
    if (h[i]) return false;
  return true;
}

struct Overrides {
  std::string path, linkpath;
  std::optional<uint64_t> size, uid, gid;
  std::optional<int64_t> mtime;
};

uint64_t pax_number(const std::string& v, const char* key) {
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (errno || end == v.c_str() || (*end && *end != '.')) bad(std::string("bad pax ") + key);
  return n;
}

void parse_pax(const Bytes& body, Overrides& o) {
  size_t i = 0;
  while (i < body.size()) {
    size_t sp = i;
    uint64_t len = 0;
    while (sp < body.size() && body[sp] >= '0' && body[sp] <= '9' && len < kMaxExtension) len = len * 10 + (body[sp++] - '0');
    if (sp >= body.size() || body[sp] != ' ' || len <= sp - i || len > body.size() - i) bad("bad pax record");
    std::string rec(body.begin() + static_cast<long>(sp + 1), body.begin() + static_cast<long>(i + len));
    if (rec.empty() || rec.back() != '\n') bad("bad pax record");
    rec.pop_back();
    size_t eq = rec.find('=');
    if (eq == std::string::npos) bad("bad pax record");
    std::string key = rec.substr(0, eq), val = rec.substr(eq + 1);
    if (key == "path") o.path = val;
    else if (key == "linkpath") o.linkpath = val;
    else if (key == "size") o.size = pax_number(val, "size");
    else if (key == "uid") o.uid = pax_number(val, "uid");
    else if (key == "gid") o.gid = pax_number(val, "gid");
    else if (key == "mtime") o.mtime = static_cast<int64_t>(pax_number(val, "mtime"));
    i += len;
  }
}

bool has_body(char type) { return type == '0' || type == '\0' || type == '7'; }

}  // namespace

bool TarReader::next(TarHeader& out) {
  Overrides ov;
  for (;;) {
    if (!src_.in_bounds(pos_, kBlock)) {
      if (pos_ == src_.size()) return false;
      bad("truncated header at offset " + std::to_string(pos_));
    }
    uint8_t h[kBlock];
    src_.read_at(pos_, h, kBlock);
    if (all_zero(h)) return false;
    if (!checksum_ok(h)) bad("header checksum mismatch at offset " + std::to_string(pos_));
    char type = static_cast<char>(h[156]);
    uint64_t size = number(h + 124, 12, "size");
    uint64_t data = pos_ + kBlock;
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
      if (size > kMaxExtension || !src_.in_bounds(data, size)) bad("extension header too large or truncated");
      Bytes body = src_.read_bytes(data, static_cast<size_t>(size));
      if (type == 'x') parse_pax(body, ov);
      if (type == 'L') ov.path = field(body.data(), body.size());
      if (type == 'K') ov.linkpath = field(body.data(), body.size());
      pos_ = data + round_up(size);
      continue;
    }
    out = TarHeader{};
    out.name = field(h, 100);
    if (std::memcmp(h + 257, "ustar", 5) == 0 && h[345]) out.name = field(h + 345, 155) + "/" + out.name;
    if (!ov.path.empty()) out.name = ov.path;
    out.type = type;
    out.mode = static_cast<uint32_t>(number(h + 100, 8, "mode"));
    out.uid = static_cast<uint32_t>(ov.uid.value_or(number(h + 108, 8, "uid")));
    out.gid = static_cast<uint32_t>(ov.gid.value_or(number(h + 116, 8, "gid")));
    out.mtime = ov.mtime.value_or(static_cast<int64_t>(number(h + 136, 12, "mtime")));
    out.size = has_body(type) ? ov.size.value_or(size) : 0;
    out.linkname = ov.linkpath.empty() ? field(h + 157, 100) : ov.linkpath;
    out.dev_major = static_cast<uint32_t>(number(h + 329, 8, "devmajor"));
    out.dev_minor = static_cast<uint32_t>(number(h + 337, 8, "devminor"));
    out.data_offset = data;
    if (!src_.in_bounds(data, out.size)) bad("member '" + out.name + "' passes the end of the archive");
    pos_ = data + round_up(out.size);
    return true;
  }
}

FsEntry tar_to_entry(const TarHeader& h, const std::shared_ptr<const RandomAccessSource>& src) {
  FsEntry e;
  e.name = clean_member_path(h.name);
  e.perm = h.mode & 07777;
  e.uid = h.uid;
  e.gid = h.gid;
  e.mtime = h.mtime;
  switch (h.type) {
    case '0':
    case '\0':
    case '7':
      e.type = FileType::kRegular;
      e.size = h.size;
      e.data.source = src;
      e.data.offset = h.data_offset;
      break;
    case '1':
      e.type = FileType::kHardlink;
      e.link = clean_member_path(h.linkname);
      if (e.link.empty()) bad("hard link '" + h.name + "' has no target");
      break;
    case '2':
      e.type = FileType::kSymlink;
      e.link = h.linkname;
      if (e.link.empty()) bad("symlink '" + h.name + "' has no target");
      break;
    case '3':
    case '4':
      e.type = h.type == '3' ? FileType::kCharDevice : FileType::kBlockDevice;
      e.dev_major = h.dev_major;
      e.dev_minor = h.dev_minor;
      break;
    case '5': e.type = FileType::kDirectory; break;
    case '6': e.type = FileType::kFifo; break;
    default: bad("member '" + h.name + "' has unsupported type '" + std::string(1, h.type) + "'");
  }
  return e;
}

std::vector<FsEntry> read_export_tar(std::shared_ptr<const RandomAccessSource> src) {
  std::vector<FsEntry> out;
  std::unordered_set<std::string> seen;
  TarReader reader(*src);
  TarHeader h;
  while (reader.next(h)) {
    FsEntry e = tar_to_entry(h, src);
    if (e.name.empty()) continue;  // "./", the root itself
    if (!seen.insert(e.name).second) bad("duplicate entry '" + e.name + "'");
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<FsEntry> read_export_tar(const std::string& path, const std::string& scratch_dir, uint64_t max_inflated) {
  return read_export_tar(maybe_gunzip(std::make_shared<FileSource>(path), scratch_dir, max_inflated));
}

std::shared_ptr<const RandomAccessSource> maybe_gunzip(std::shared_ptr<const RandomAccessSource> src, const std::string& scratch_dir,
                                               uint64_t max_inflated) {
  uint8_t magic[2] = {0, 0};
  if (src->size() < 2) return src;
  src->read_at(0, magic, 2);
  if (magic[0] != 0x1f || magic[1] != 0x8b) return src;
  std::string dir = scratch_dir.empty() ? (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") : scratch_dir;
  std::string tmp = dir + "/.sn-gunzip-" + hex_encode(os_random().bytes(8));
  UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) throw Error(Errc::kIo, "cannot create scratch file in " + dir + ": " + std::strerror(errno));
  z_stream z{};
  inflateInit2(&z, 15 + 32);
  Bytes outbuf(1 << 20);
  int rc = Z_OK;
  uint64_t inflated = 0;
  try {
    for_each_chunk(*src, 0, src->size(), [&](ByteView in) {
      z.next_in = const_cast<uint8_t*>(in.data());
      z.avail_in = static_cast<uInt>(in.size());
      while (z.avail_in > 0) {
        if (rc == Z_STREAM_END) inflateReset(&z);  // concatenated members
        z.next_out = outbuf.data();
        z.avail_out = static_cast<uInt>(outbuf.size());
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) bad("gzip data is corrupt");
        size_t n = outbuf.size() - z.avail_out;
        inflated += n;
        if (inflated > max_inflated)
          throw Error(Errc::kPolicy, "gzip data of " + std::to_string(src->size()) + " bytes inflates past " +
                                         (max_inflated % (1 << 20) ? std::to_string(max_inflated) + " bytes"
                                                                   : std::to_string(max_inflated >> 20) + " MiB") +
                                         " (raise --max-layer-mib if the image is trusted)");
        if (n && ::write(fd.get(), outbuf.data(), n) != static_cast<ssize_t>(n))
          throw Error(Errc::kIo, "cannot write scratch file " + tmp + ": " + std::strerror(errno));
        if (rc == Z_BUF_ERROR && n == 0) break;
      }
    });
    if (rc != Z_STREAM_END) bad("gzip data is truncated");
  } catch (...) {
    inflateEnd(&z);
    ::unlink(tmp.c_str());
    throw;
  }
  inflateEnd(&z);
  fd.reset();
  auto out = std::make_shared<FileSource>(tmp);
  ::unlink(tmp.c_str());  // the open descriptor keeps the bytes until the source is dropped
  return out;
}

}  // namespace shield_nitro::eif
