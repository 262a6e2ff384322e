#include "shield_nitro/sim/image.h"

#include <sys/stat.h>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/eif/cpio.h"
#include "shield_nitro/eif/reader.h"

namespace shield_nitro::sim {

namespace {
constexpr size_t kMaxLinesFile = 1 << 20;
}

std::vector<std::string> parse_lines_file(ByteView content, const std::string& what) {
  if (content.size() > kMaxLinesFile) throw Error(Errc::kFormat, what + " is larger than 1 MiB");
  std::vector<std::string> lines;
  std::string current;
  for (uint8_t c : content) {
    if (c == 0) throw Error(Errc::kFormat, what + " contains a NUL byte");
    if (c == '\n') {
      lines.push_back(std::move(current));
      current.clear();
    } else {
      current.push_back(static_cast<char>(c));
    }
  }
  if (!current.empty()) lines.push_back(std::move(current));
  return lines;
}

std::vector<std::string> parse_cmd_file(ByteView content) {
  auto cmd = parse_lines_file(content, "/cmd");
  if (cmd.empty() || cmd[0].empty()) throw Error(Errc::kFormat, "/cmd names no program");
  return cmd;
}

std::vector<std::string> parse_env_file(ByteView content) {
  auto env = parse_lines_file(content, "/env");
  for (const auto& e : env) {
    size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) throw Error(Errc::kFormat, "/env line is not NAME=VALUE: " + e.substr(0, 64));
  }
  return env;
}

EnclaveImage unpack_image(const std::string& eif_path, const std::string& work_dir) {
  auto source = std::make_shared<FileSource>(eif_path);
  eif::EifReader reader(source);
  auto ramdisks = reader.ramdisks();
  if (ramdisks.size() < 2) throw Error(Errc::kFormat, eif_path + " has no customer ramdisk (only a bootstrap)");
  make_dirs(work_dir, 0700);
  for (size_t i = 1; i < ramdisks.size(); ++i) {
    SliceSource slice(source, ramdisks[i].data_offset, ramdisks[i].size);
    eif::unpack_cpio(slice, work_dir);
  }
  std::string cmd_path = work_dir + "/cmd", env_path = work_dir + "/env";
  if (!file_exists(cmd_path)) throw Error(Errc::kFormat, eif_path + ": the customer ramdisk has no /cmd");
  EnclaveImage image;
  image.cmd = parse_cmd_file(read_file(cmd_path));
  image.env = file_exists(env_path) ? parse_env_file(read_file(env_path)) : std::vector<std::string>{};
  image.rootfs = work_dir + "/rootfs";
  struct stat st{};
  if (::lstat(image.rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error(Errc::kFormat, eif_path + ": the customer ramdisk has no rootfs/ folder");
  return image;
}

}  // namespace shield_nitro::sim
