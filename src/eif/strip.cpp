#include "shield_nitro/eif/rootfs.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"

extern char** environ;

namespace shield_nitro::eif {

Bytes stripped_copy(const std::string& binary) {
  parse_elf(FileSource(binary));  // an ELF file, or a kFormat error naming what is wrong
  std::string tmp = (std::filesystem::temp_directory_path() / "sn-strip-XXXXXX").string();
  int out_fd = ::mkstemp(tmp.data());
  if (out_fd < 0) throw Error(Errc::kIo, "cannot create a temporary file in " + tmp + ": " + std::strerror(errno));
  ::close(out_fd);
  std::string err_path = tmp + ".err";
  struct Cleanup {
    const std::string &a, &b;
    ~Cleanup() {
      ::unlink(a.c_str());
      ::unlink(b.c_str());
    }
  } cleanup{tmp, err_path};

  // objcopy (binutils) drops sections and writes no time or path: the same input gives the same bytes.
  std::vector<std::string> args = {"objcopy", "--strip-all", binary, tmp};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, "objcopy", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    throw Error(Errc::kEnvironment, "cannot run objcopy to strip " + binary + ": " + std::strerror(rc) +
                                        " (install binutils)");
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string why = file_exists(err_path) ? read_text_file(err_path) : "";
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    if (auto nl = why.find('\n'); nl != std::string::npos) why = why.substr(0, nl);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
      throw Error(Errc::kEnvironment, "cannot run objcopy to strip " + binary + " (install binutils)");
    throw Error(Errc::kFormat, "objcopy --strip-all " + binary + " failed" + (why.empty() ? "" : ": " + why));
  }
  return read_file(tmp);
}

}  // namespace shield_nitro::eif
