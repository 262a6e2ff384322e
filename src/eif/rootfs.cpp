#include "shield_nitro/eif/rootfs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <optional>
#include <set>

#include "safe_dir.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/reader.h"
#include "shield_nitro/eif/fs_entry.h"
#include "staging_dir.h"

namespace shield_nitro::eif {
namespace {

constexpr uint32_t kPtLoad = 1, kPtDynamic = 2, kPtInterp = 3;
constexpr int64_t kDtNull = 0, kDtNeeded = 1, kDtStrtab = 5, kDtStrsz = 10, kDtRpath = 15, kDtRunpath = 29;

[[noreturn]] void bad(const std::string& what) { throw Error(Errc::kFormat, "malformed ELF: " + what); }

struct Phdr {
  uint32_t type = 0;
  uint64_t offset = 0, vaddr = 0, filesz = 0;
};

std::vector<Phdr> read_phdrs(const RandomAccessSource& src) {
  if (src.size() < 64) bad("shorter than an ELF header");
  Bytes eh = src.read_bytes(0, 64);
  if (eh[0] != 0x7f || eh[1] != 'E' || eh[2] != 'L' || eh[3] != 'F') bad("no ELF magic");
  if (eh[4] != 2 || eh[5] != 1) throw Error(Errc::kUnsupported, "only 64-bit little-endian ELF files are supported");
  ByteReader r(ByteView(eh).subspan(32));
  uint64_t phoff = 0;
  uint16_t phentsize = 0, phnum = 0;
  r.u64le(phoff);
  ByteReader r2(ByteView(eh).subspan(54));
  r2.u16le(phentsize);
  r2.u16le(phnum);
  if (phentsize < 56 || phnum > 256 || !src.in_bounds(phoff, uint64_t{phentsize} * phnum)) bad("bad program header table");
  Bytes table = src.read_bytes(phoff, size_t{phentsize} * phnum);
  std::vector<Phdr> out;
  for (size_t i = 0; i < phnum; ++i) {
    ByteReader p(ByteView(table).subspan(i * phentsize, phentsize));
    Phdr h;
    uint32_t flags;
    p.u32le(h.type);
    p.u32le(flags);
    p.u64le(h.offset);
    p.u64le(h.vaddr);
    p.skip(8);
    p.u64le(h.filesz);
    out.push_back(h);
  }
  return out;
}

uint64_t vaddr_to_offset(const std::vector<Phdr>& ph, uint64_t vaddr) {
  for (const auto& p : ph)
    if (p.type == kPtLoad && vaddr >= p.vaddr && vaddr - p.vaddr < p.filesz) return p.offset + (vaddr - p.vaddr);
  bad("string table address outside every loaded segment");
}

std::string c_string(ByteView table, uint64_t at) {
  if (at >= table.size()) bad("string offset outside the string table");
  std::string s;
  for (uint64_t i = at; i < table.size() && table[i]; ++i) s += static_cast<char>(table[i]);
  return s;
}

std::vector<std::string> split_colon(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(':', i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::vector<std::string> standard_dirs(uint16_t machine) {
  std::string triple = machine == 183 ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
  return {"/lib/" + triple, "/usr/lib/" + triple, "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"};
}

bool is_file(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string dir_of(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? "." : p.substr(0, s);
}

std::string find_library(const std::string& name, const ElfInfo& who, const std::string& who_path) {
  if (name.find('/') != std::string::npos) return name;
  std::vector<std::string> dirs;
  for (std::string d : who.runpath) {
    auto o = d.find("$ORIGIN");
    if (o != std::string::npos) d.replace(o, 7, dir_of(who_path));
    dirs.push_back(d);
  }
  for (const auto& d : standard_dirs(who.machine)) dirs.push_back(d);
  for (const auto& d : dirs)
    if (is_file(d + "/" + name)) return d + "/" + name;
  throw Error(Errc::kNotFound, "library " + name + " needed by " + who_path + " was not found");
}

}  // namespace

ElfInfo parse_elf(const RandomAccessSource& src) {
  std::vector<Phdr> ph = read_phdrs(src);
  Bytes eh = src.read_bytes(18, 2);
  ElfInfo info;
  info.machine = static_cast<uint16_t>(eh[0] | (eh[1] << 8));
  const Phdr* dyn = nullptr;
  for (const auto& p : ph) {
    if (p.type == kPtInterp) {
      if (p.filesz > 4096 || !src.in_bounds(p.offset, p.filesz)) bad("bad PT_INTERP");
      Bytes s = src.read_bytes(p.offset, static_cast<size_t>(p.filesz));
      info.interpreter = c_string(s, 0);
    }
    if (p.type == kPtDynamic) dyn = &p;
  }
  if (!dyn) return info;
  if (dyn->filesz > (1 << 20) || !src.in_bounds(dyn->offset, dyn->filesz)) bad("bad PT_DYNAMIC");
  Bytes d = src.read_bytes(dyn->offset, static_cast<size_t>(dyn->filesz));
  ByteReader r(d);
  uint64_t strtab = 0, strsz = 0;
  std::vector<uint64_t> needed;
  std::optional<uint64_t> rpath, runpath;
  int64_t tag = 0;
  uint64_t val = 0;
  while (r.u64le(reinterpret_cast<uint64_t&>(tag)) && r.u64le(val) && tag != kDtNull) {
    if (tag == kDtNeeded) needed.push_back(val);
    else if (tag == kDtStrtab) strtab = val;
    else if (tag == kDtStrsz) strsz = val;
    else if (tag == kDtRpath) rpath = val;
    else if (tag == kDtRunpath) runpath = val;
  }
  if (needed.empty() && !rpath && !runpath) return info;
  uint64_t off = vaddr_to_offset(ph, strtab);
  if (strsz > (16 << 20) || !src.in_bounds(off, strsz)) bad("bad string table");
  Bytes table = src.read_bytes(off, static_cast<size_t>(strsz));
  for (uint64_t n : needed) info.needed.push_back(c_string(table, n));
  if (runpath) info.runpath = split_colon(c_string(table, *runpath));
  else if (rpath) info.runpath = split_colon(c_string(table, *rpath));
  return info;
}

std::vector<std::pair<std::string, std::string>> binary_closure(const std::string& binary, const std::string& dest) {
  std::vector<std::pair<std::string, std::string>> out{{binary, dest}};
  std::set<std::string> seen;
  std::deque<std::string> todo{binary};
  while (!todo.empty()) {
    std::string path = todo.front();
    todo.pop_front();
    ElfInfo info = parse_elf(FileSource(path));
    std::vector<std::string> deps;
    if (!info.interpreter.empty()) deps.push_back(info.interpreter);
    for (const auto& n : info.needed) deps.push_back(find_library(n, info, path));
    for (const auto& dep : deps) {
      if (!seen.insert(dep).second) continue;
      if (!is_file(dep)) throw Error(Errc::kNotFound, "ELF interpreter or library not found: " + dep);
      out.emplace_back(dep, dep);
      todo.push_back(dep);
    }
  }
  return out;
}

void make_rootfs(const std::string& binary, const std::string& dest,
                 const std::vector<std::pair<std::string, std::string>>& extra, const std::string& out_dir) {
  auto files = binary_closure(binary, dest);
  files.insert(files.end(), extra.begin(), extra.end());
  StagingDir stage(out_dir);
  {
    SafeDir root(stage.path());
    for (const auto& [src, dst] : files) {
      std::string rel = clean_member_path(dst.substr(dst.find_first_not_of('/') == std::string::npos ? dst.size() : dst.find_first_not_of('/')));
      if (rel.empty()) throw Error(Errc::kUsage, "destination '" + dst + "' names the root folder");
      struct stat st{};
      if (::stat(src.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) throw Error(Errc::kIo, "cannot read " + src);
      UniqueFd fd = root.create_file(rel, st.st_mode & 07777);
      if (src == binary && dst == dest) {  // the program itself: no debug info in the image
        Bytes b = stripped_copy(binary);
        if (::write(fd.get(), b.data(), b.size()) != static_cast<ssize_t>(b.size())) throw Error(Errc::kIo, "cannot write " + rel);
        continue;
      }
      stream_data(DataRef{{}, nullptr, src, 0}, static_cast<uint64_t>(st.st_size), [&](ByteView b) {
        if (::write(fd.get(), b.data(), b.size()) != static_cast<ssize_t>(b.size()))
          throw Error(Errc::kIo, "cannot write " + rel);
      });
    }
    root.finish();
  }
  stage.commit();
}

}  // namespace shield_nitro::eif
