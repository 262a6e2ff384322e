#include "shield_nitro/eif/ramdisk.h"

#include <map>
#include <set>
#include <sys/stat.h>

#include "shield_nitro/core/error.h"

namespace shield_nitro::eif {
namespace {

const char kHosts[] =
    "127.0.0.1       localhost\n::1     localhost ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\n"
    "ff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n";
const char kResolvTarget[] = "/run/resolvconf/resolv.conf";
const char kMtabTarget[] = "/proc/mounts";

const std::set<std::string> kExcluded = {".dockerenv", "Dockerfile", "dev/console", "dev/pts", "dev/shm", "etc/hostname"};
const std::set<std::string> kTouched = {"dev/", "dev/pts/", "dev/shm/", "etc/", "etc/mtab", "etc/resolv.conf",
                                        "etc/hosts", "proc/", "sys/"};

CpioEntry inline_entry(std::string name, uint32_t mode, Bytes data) {
  CpioEntry e;
  e.name = std::move(name);
  e.mode = mode;
  e.mtime = kLinuxkitMtime;
  e.size = data.size();
  e.data.inline_data = std::move(data);
  return e;
}

CpioEntry dir_entry(std::string name) { return inline_entry(std::move(name), kModeDir | 0755, {}); }

CpioEntry file_entry(std::string name, uint32_t mode, const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) throw Error(Errc::kIo, "cannot read " + path);
  CpioEntry e = inline_entry(std::move(name), mode, {});
  e.size = static_cast<uint64_t>(st.st_size);
  e.data.path = path;
  return e;
}

// Go's filepath.Rel(filepath.Dir(name), target) for clean relative paths.
std::string relative_link(const std::string& name, const std::string& target) {
  auto split = [](const std::string& p) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < p.size()) {
      size_t j = p.find('/', i);
      if (j == std::string::npos) j = p.size();
      out.push_back(p.substr(i, j - i));
      i = j + 1;
    }
    return out;
  };
  std::vector<std::string> base = split(name), to = split(target);
  base.pop_back();
  size_t common = 0;
  while (common < base.size() && common < to.size() && base[common] == to[common]) ++common;
  std::string out;
  for (size_t i = common; i < base.size(); ++i) out += out.empty() ? ".." : "/..";
  for (size_t i = common; i < to.size(); ++i) out += (out.empty() ? "" : "/") + to[i];
  return out.empty() ? "." : out;
}

uint32_t type_bits(FileType t) {
  switch (t) {
    case FileType::kDirectory: return kModeDir;
    case FileType::kSymlink:
    case FileType::kHardlink: return kModeLink;
    case FileType::kCharDevice: return kModeChr;
    case FileType::kBlockDevice: return kModeBlk;
    case FileType::kFifo: return kModeFifo;
    default: return kModeReg;
  }
}

CpioEntry from_stream(const FsEntry& f, const std::string& tar_name) {
  CpioEntry e;
  e.name = "rootfs/" + tar_name;
  e.mode = type_bits(f.type) | (f.perm & 07777);
  e.uid = f.uid;
  e.gid = f.gid;
  e.mtime = f.mtime;
  if (f.type == FileType::kRegular) {
    e.size = f.size;
    e.data = f.data;
  } else if (f.type == FileType::kSymlink || f.type == FileType::kHardlink) {
    std::string target = f.type == FileType::kHardlink ? relative_link(f.name, f.link) : f.link;
    e.data.inline_data = Bytes(target.begin(), target.end());
    e.size = target.size();
  } else if (f.type == FileType::kCharDevice || f.type == FileType::kBlockDevice) {
    e.rdev_major = f.dev_major;
    e.rdev_minor = f.dev_minor;
  }
  return e;
}

void make_symlink(CpioEntry& e, const char* target) {
  e.mode = kModeLink | (e.mode & 07777);
  e.data = DataRef{};
  e.data.inline_data = Bytes(target, target + std::char_traits<char>::length(target));
  e.size = e.data.inline_data.size();
}

CpioEntry missing_touch(const std::string& key) {
  std::string name = "rootfs/" + (key.back() == '/' ? key.substr(0, key.size() - 1) : key);
  if (key.back() == '/') return dir_entry(name);
  if (key == "etc/hosts") return inline_entry(name, kModeReg | 0644, Bytes(kHosts, kHosts + sizeof kHosts - 1));
  CpioEntry e = inline_entry(name, key == "etc/mtab" ? 0755 : 0644, {});
  make_symlink(e, key == "etc/mtab" ? kMtabTarget : kResolvTarget);
  return e;
}

}  // namespace

Bytes lines_file(const std::vector<std::string>& items, const char* what) {
  Bytes out;
  for (const auto& s : items) {
    if (s.find('\n') != std::string::npos)
      throw Error(Errc::kUsage, std::string(what) + " item contains a newline, which nitro-cli's init cannot read: " + s);
    out.insert(out.end(), s.begin(), s.end());
    out.push_back('\n');
  }
  return out;
}

std::vector<CpioEntry> bootstrap_ramdisk(const std::string& init_path, const std::string& nsm_ko_path) {
  return {dir_entry("dev"), file_entry("init", kModeReg | 0755, init_path),
          file_entry("nsm.ko", kModeReg | 0755, nsm_ko_path)};
}

std::vector<CpioEntry> customer_ramdisk(const std::vector<FsEntry>& stream, const std::vector<std::string>& cmd,
                                        const std::vector<std::string>& env) {
  std::vector<CpioEntry> out{dir_entry("rootfs")};
  std::set<std::string> touched_seen;
  for (const auto& f : stream) {
    std::string tar_name = f.name + (f.type == FileType::kDirectory ? "/" : "");
    if (kExcluded.count(tar_name)) continue;
    CpioEntry e = from_stream(f, tar_name);
    if (kTouched.count(tar_name)) {
      touched_seen.insert(tar_name);
      e.mtime = kLinuxkitMtime;
      if (tar_name == "etc/hosts") {
        e.mode = kModeReg | (e.mode & 07777);
        e.data = DataRef{};
        e.data.inline_data = Bytes(kHosts, kHosts + sizeof kHosts - 1);
        e.size = e.data.inline_data.size();
      } else if (tar_name == "etc/resolv.conf") {
        make_symlink(e, kResolvTarget);
      }
    }
    out.push_back(std::move(e));
  }
  for (const auto& key : kTouched)  // std::set: sorted, as linuxkit appends them
    if (!touched_seen.count(key)) out.push_back(missing_touch(key));
  out.push_back(dir_entry("rootfs"));
  for (const char* d : {"rootfs/dev", "rootfs/run", "rootfs/sys", "rootfs/var", "rootfs/proc", "rootfs/tmp"})
    out.push_back(dir_entry(d));
  out.push_back(inline_entry("cmd", kModeReg | 0644, lines_file(cmd, "cmd")));
  out.push_back(inline_entry("env", kModeReg | 0644, lines_file(env, "env")));
  return out;
}

}  // namespace shield_nitro::eif
