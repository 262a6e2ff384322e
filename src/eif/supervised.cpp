#include "shield_nitro/eif/supervised.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/cpio.h"
#include "shield_nitro/eif/rootfs.h"
#include "shield_nitro/runtime/config.h"

namespace shield_nitro::eif {
namespace {

constexpr uint64_t kMaxSmallFile = 1 << 20;  // /cmd and the runtime config, read from untrusted EIFs

std::string base_name(const std::string& p) { return p.substr(p.rfind('/') + 1); }
std::string rel(const std::string& abs) { return abs.substr(1); }  // stream names have no leading '/'

// Every folder above path ("a/b/c" → "a", "a/b"), outermost first.
std::vector<std::string> parents_of(const std::string& name) {
  std::vector<std::string> out;
  for (size_t at = name.find('/'); at != std::string::npos; at = name.find('/', at + 1)) out.push_back(name.substr(0, at));
  return out;
}

FsEntry folder(const std::string& name, int64_t mtime) {
  FsEntry e;
  e.name = name;
  e.type = FileType::kDirectory;
  e.perm = 0755;
  e.mtime = mtime;
  return e;
}

// Reads a section of an EIF as its own source (CpioReader offsets start at 0).
class SectionSource final : public RandomAccessSource {
 public:
  SectionSource(const RandomAccessSource& base, const SectionInfo& s) : base_(base), offset_(s.data_offset), size_(s.size) {}
  uint64_t size() const override { return size_; }
  void read_at(uint64_t offset, uint8_t* out, size_t n) const override {
    if (!in_bounds(offset, n)) throw Error(Errc::kFormat, "read past the end of a ramdisk section");
    base_.read_at(offset_ + offset, out, n);
  }
  std::string name() const override { return base_.name(); }

 private:
  const RandomAccessSource& base_;
  uint64_t offset_, size_;
};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

}  // namespace

std::vector<std::string> container_command(const ImageConfig& c) {
  std::vector<std::string> out = c.entrypoint.value_or(std::vector<std::string>{});
  if (c.cmd) out.insert(out.end(), c.cmd->begin(), c.cmd->end());
  if (out.empty()) throw Error(Errc::kUsage, "the image has neither ENTRYPOINT nor CMD; give --cmd");
  return out;
}

std::vector<std::string> add_supervisor(std::vector<FsEntry>& stream, const SupervisorInput& in) {
  // The enclave checks the config again at start; here a mistake costs a rebuild, not a deploy.
  runtime::RuntimeConfig rc = runtime::parse_runtime_config(in.runtime_yaml, in.runtime_source);
  if (in.app.empty()) throw Error(Errc::kUsage, "the supervised app needs a command");
  for (size_t i = 0; i < rc.artifacts.size(); ++i) {
    const auto& a = rc.artifacts[i];
    if (a.from_host()) continue;
    auto it = std::find_if(stream.begin(), stream.end(), [&](const FsEntry& e) { return "/" + e.name == a.source; });
    if (it == stream.end() || (it->type != FileType::kRegular && it->type != FileType::kSymlink && it->type != FileType::kHardlink))
      throw Error(Errc::kUsage, in.runtime_source + ": artifacts[" + std::to_string(i) + "].source: " + a.source +
                                    " is not a file in the image");
  }

  // (source on this machine, absolute destination): the program, then its libraries under lib/.
  std::vector<std::pair<std::string, std::string>> files;
  std::string interpreter;
  std::map<std::string, std::string> by_soname;
  const std::string lib_dir = std::string(kSupervisorRoot) + "/lib";
  for (const auto& [src, dst] : binary_closure(in.supervisor, kSupervisorPath)) {
    if (dst == kSupervisorPath) {
      files.emplace_back(src, dst);
      continue;
    }
    std::string soname = base_name(src);
    auto [it, fresh] = by_soname.emplace(soname, src);
    if (!fresh) {
      // The same file reached by two paths (/lib64/ld.so and libc's DT_NEEDED copy) is one library.
      std::error_code ec;
      if (it->second != src && !std::filesystem::equivalent(it->second, src, ec)) throw Error(Errc::kUsage, "the supervisor needs two different " + soname + ": " + it->second + " and " + src);
      continue;
    }
    files.emplace_back(src, lib_dir + "/" + soname);
  }
  interpreter = parse_elf(FileSource(in.supervisor)).interpreter;

  // Types by name, not pointers into `stream`: it grows below, which moves its entries.
  std::map<std::string, FileType> existing;
  for (const auto& e : stream) existing[e.name] = e.type;
  std::set<std::string> added;
  auto need_folder = [&](const std::string& name) {
    auto it = existing.find(name);
    if (it != existing.end()) {
      if (it->second != FileType::kDirectory)
        throw Error(Errc::kUsage, "the image has /" + name + " as a " +
                                      (it->second == FileType::kSymlink ? "symlink" : "non-folder") +
                                      "; the supervisor needs a folder there");
      return;
    }
    if (added.insert(name).second) stream.push_back(folder(name, in.mtime));
  };
  auto need_free = [&](const std::string& name) {
    if (existing.count(name))
      throw Error(Errc::kUsage, "the image already has /" + name + " (is it supervised already?)");
  };

  for (const auto& [src, dst] : files) {
    std::string name = rel(dst);
    need_free(name);
    for (const auto& p : parents_of(name)) need_folder(p);
    struct stat st{};
    if (::stat(src.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) throw Error(Errc::kIo, "cannot read " + src);
    FsEntry e;
    e.name = name;
    e.perm = 0755;
    e.mtime = in.mtime;
    if (dst == kSupervisorPath) {  // the trusted program, without its debug info (measured, and in enclave memory)
      e.data.inline_data = stripped_copy(src);
      e.size = e.data.inline_data.size();
    } else {
      e.size = static_cast<uint64_t>(st.st_size);
      e.data.path = src;
    }
    stream.push_back(std::move(e));
  }
  std::string config = rel(kRuntimeConfigPath);
  need_free(config);
  for (const auto& p : parents_of(config)) need_folder(p);
  FsEntry c;
  c.name = config;
  c.perm = 0444;
  c.mtime = in.mtime;
  c.data.inline_data = Bytes(in.runtime_yaml.begin(), in.runtime_yaml.end());
  c.size = c.data.inline_data.size();
  stream.push_back(std::move(c));

  std::vector<std::string> cmd;
  if (!interpreter.empty()) cmd = {lib_dir + "/" + base_name(interpreter), "--library-path", lib_dir};
  for (const char* a : {kSupervisorPath, "run", "--config", kRuntimeConfigPath, "--"}) cmd.emplace_back(a);
  cmd.insert(cmd.end(), in.app.begin(), in.app.end());
  return cmd;
}

Supervision supervision_of(const EifReader& reader) {
  std::vector<SectionInfo> ramdisks = reader.ramdisks();
  Supervision out;
  if (ramdisks.empty()) return out;
  SectionSource cpio(reader.source(), ramdisks.back());
  CpioReader records(cpio);
  CpioRecord r;
  std::optional<std::string> cmd, config;
  auto small = [&](const CpioRecord& rec) {
    if ((rec.mode & kModeTypeMask) != kModeReg) throw Error(Errc::kFormat, "ramdisk entry " + rec.name + " is not a regular file");
    if (rec.size > kMaxSmallFile) throw Error(Errc::kFormat, "ramdisk entry " + rec.name + " is larger than 1 MiB");
    Bytes b = cpio.read_bytes(rec.data_offset, static_cast<size_t>(rec.size));
    return std::string(b.begin(), b.end());
  };
  // Later duplicates replace earlier ones, as in the kernel's unpacker.
  while (records.next(r)) {
    if (r.name == "cmd") cmd = small(r);
    else if (r.name == "rootfs" + std::string(kRuntimeConfigPath)) config = small(r);
  }
  if (cmd) out.command = split_lines(*cmd);
  if (!config) return out;
  auto run = std::find(out.command.begin(), out.command.end(), std::string(kSupervisorPath));
  const std::vector<std::string> tail = {"run", "--config", kRuntimeConfigPath, "--"};
  if (run == out.command.end() || static_cast<size_t>(out.command.end() - run) < 1 + tail.size() ||
      !std::equal(tail.begin(), tail.end(), run + 1))
    return out;
  out.supervised = true;
  out.app.assign(run + 1 + static_cast<std::ptrdiff_t>(tail.size()), out.command.end());
  out.runtime_yaml = *config;
  return out;
}

}  // namespace shield_nitro::eif
