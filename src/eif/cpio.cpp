#include "shield_nitro/eif/cpio.h"

#include <unistd.h>

#include <cstdio>

#include "safe_dir.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"

namespace shield_nitro::eif {
namespace {

constexpr size_t kNewcHeader = 110;
constexpr uint64_t kMaxName = 4096;
const std::string kTrailer = "TRAILER!!!";

uint64_t pad4(uint64_t n) { return (4 - (n & 3)) & 3; }

Bytes newc_header(uint32_t ino, const CpioEntry& e, uint32_t nlink) {
  char buf[kNewcHeader + 1];
  std::snprintf(buf, sizeof buf, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x", ino, e.mode, e.uid,
                e.gid, nlink, static_cast<uint32_t>(e.mtime), static_cast<uint32_t>(e.size), 3u, 1u, e.rdev_major,
                e.rdev_minor, static_cast<uint32_t>(e.name.size() + 1), 0u);
  Bytes out(buf, buf + kNewcHeader);
  out.insert(out.end(), e.name.begin(), e.name.end());
  out.push_back(0);
  out.resize(out.size() + pad4(out.size()), 0);
  return out;
}

uint64_t entry_size(const CpioEntry& e) {
  uint64_t head = kNewcHeader + e.name.size() + 1;
  return head + pad4(head) + e.size + pad4(e.size);
}

CpioEntry trailer_entry() {
  CpioEntry t;
  t.name = kTrailer;
  return t;
}

bool parse_hex8(const uint8_t* p, uint32_t& out) {
  out = 0;
  for (int i = 0; i < 8; ++i) {
    uint8_t c = p[i];
    uint32_t v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else return false;
    out = (out << 4) | v;
  }
  return true;
}

[[noreturn]] void bad(const std::string& what) { throw Error(Errc::kFormat, "malformed cpio: " + what); }

}  // namespace

uint64_t cpio_size(const std::vector<CpioEntry>& entries) {
  uint64_t total = entry_size(trailer_entry());
  for (const auto& e : entries) total += entry_size(e);
  return (total + 511) / 512 * 512;
}

void write_cpio(const std::vector<CpioEntry>& entries, const std::function<void(ByteView)>& sink) {
  write_cpio(entries, sink, [&](const DataRef& d, uint64_t size) { stream_data(d, size, sink); });
}

void write_cpio(const std::vector<CpioEntry>& entries, const std::function<void(ByteView)>& sink, const DataSink& data_sink) {
  static const uint8_t zeros[512] = {};
  uint32_t ino = 721;  // gocpio's first inode number
  uint64_t total = 0;
  auto put = [&](ByteView b) {
    sink(b);
    total += b.size();
  };
  for (const auto& e : entries) {
    bool dir = (e.mode & kModeTypeMask) == kModeDir;
    put(newc_header(ino++, e, dir ? 2 : 1));
    data_sink(e.data, e.size);
    total += e.size;
    put(ByteView(zeros, pad4(e.size)));
  }
  CpioEntry t = trailer_entry();
  put(newc_header(ino, t, 1));
  put(ByteView(zeros, (512 - total % 512) % 512));
}

bool CpioReader::next(CpioRecord& out) {
  if (done_) return false;
  uint8_t h[kNewcHeader];
  if (!src_.in_bounds(pos_, kNewcHeader)) bad("truncated header at offset " + std::to_string(pos_));
  src_.read_at(pos_, h, kNewcHeader);
  if (std::string(reinterpret_cast<char*>(h), 6) != "070701" && std::string(reinterpret_cast<char*>(h), 6) != "070702")
    bad("bad magic at offset " + std::to_string(pos_));
  uint32_t f[13];
  for (int i = 0; i < 13; ++i)
    if (!parse_hex8(h + 6 + 8 * i, f[i])) bad("non-hex header field at offset " + std::to_string(pos_));
  uint32_t namesize = f[11];
  if (namesize == 0 || namesize > kMaxName) bad("name size " + std::to_string(namesize) + " out of range");
  uint64_t name_at = pos_ + kNewcHeader;
  if (!src_.in_bounds(name_at, namesize)) bad("truncated name");
  Bytes name = src_.read_bytes(name_at, namesize);
  if (name.back() != 0) bad("name is not NUL-terminated");
  out = CpioRecord{};
  out.name.assign(name.begin(), name.end() - 1);
  out.mode = f[1];
  out.uid = f[2];
  out.gid = f[3];
  out.nlink = f[4];
  out.mtime = f[5];
  out.size = f[6];
  out.rdev_major = f[9];
  out.rdev_minor = f[10];
  uint64_t head = kNewcHeader + namesize;
  out.data_offset = pos_ + head + pad4(head);
  if (!src_.in_bounds(out.data_offset, out.size)) bad("entry '" + out.name + "' passes the end of the archive");
  pos_ = out.data_offset + out.size + pad4(out.size);
  if (out.name == kTrailer) {
    done_ = true;
    return false;
  }
  return true;
}

void unpack_cpio(const RandomAccessSource& src, const std::string& dir) {
  SafeDir root(dir);
  CpioReader reader(src);
  CpioRecord r;
  size_t skipped_nodes = 0;
  while (reader.next(r)) {
    std::string rel = clean_member_path(r.name);
    if (rel.empty()) continue;
    uint32_t type = r.mode & kModeTypeMask, perm = r.mode & 07777;
    if (type == kModeDir) {
      root.make_dir(rel, perm);
    } else if (type == kModeReg) {
      UniqueFd fd = root.create_file(rel, perm);
      for_each_chunk(src, r.data_offset, r.size, [&](ByteView c) {
        if (::write(fd.get(), c.data(), c.size()) != static_cast<ssize_t>(c.size()))
          throw Error(Errc::kIo, "cannot write " + rel);
      });
    } else if (type == kModeLink) {
      if (r.size > kMaxName) bad("symlink target of '" + r.name + "' too long");
      root.make_symlink(rel, to_string(src.read_bytes(r.data_offset, static_cast<size_t>(r.size))));
    } else if (type == kModeFifo || type == kModeChr || type == kModeBlk) {
      if (!root.make_node(rel, r.mode, r.rdev_major, r.rdev_minor)) ++skipped_nodes;
    } else {
      bad("entry '" + r.name + "' has unsupported mode " + std::to_string(r.mode));
    }
  }
  root.finish();
  if (skipped_nodes) log_warn("skipped " + std::to_string(skipped_nodes) + " device nodes (creating them needs root)");
}

}  // namespace shield_nitro::eif
