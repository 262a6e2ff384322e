// Supervised images (`eif build --runtime FILE`): the container image plus our supervisor
// (`shield-nitro-enclave run`, with the shared libraries it needs) and the runtime config, so the
// EIF runs the app under the supervisor and the config is measured with the filesystem (PCR2).
//
// Layout added to the image's root filesystem (nothing of the image is replaced):
//   /opt/shield-nitro/bin/shield-nitro-enclave     the supervisor
//   /opt/shield-nitro/lib/<soname>...              its libraries and ELF interpreter (ld.so)
//   /etc/shield-nitro/runtime.yaml                 the runtime config, byte for byte (0444)
// The supervisor is started through its own ld.so with --library-path, so it never mixes with
// the image's libc (an image may carry a different glibc, or none). The EIF's command becomes
//   /opt/shield-nitro/lib/ld-linux-x86-64.so.2 --library-path /opt/shield-nitro/lib
//     /opt/shield-nitro/bin/shield-nitro-enclave run --config /etc/shield-nitro/runtime.yaml -- APP...
// (a static supervisor starts directly). The image's environment stays in /env.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shield_nitro/eif/fs_entry.h"
#include "shield_nitro/eif/image.h"
#include "shield_nitro/eif/reader.h"

namespace shield_nitro::eif {

inline constexpr char kSupervisorRoot[] = "/opt/shield-nitro";
inline constexpr char kSupervisorPath[] = "/opt/shield-nitro/bin/shield-nitro-enclave";
inline constexpr char kRuntimeConfigPath[] = "/etc/shield-nitro/runtime.yaml";

// What a container of the image runs, as Docker starts it: ENTRYPOINT followed by CMD.
// Throws Error(kUsage) when the image has neither.
std::vector<std::string> container_command(const ImageConfig& c);

struct SupervisorInput {
  std::string supervisor;         // the shield-nitro-enclave program on this machine
  std::string runtime_yaml;       // the runtime config's bytes, packed verbatim
  std::string runtime_source;     // its name in messages (the path given)
  std::vector<std::string> app;   // the app's command (after "--")
  int64_t mtime = 0;              // of the added entries (reproducible builds)
};

// Validates the runtime config (Error(kFormat) naming the key, as runtime::parse_runtime_config),
// appends the supervisor (stripped: eif/rootfs.h stripped_copy), its libraries and the config to stream (with any missing parent
// folders), and returns the EIF's command. Refuses (kUsage) an image that already has one of
// these paths, a symlink or file where a folder is needed, or no file at an artifact's `source`;
// kNotFound for a missing library.
std::vector<std::string> add_supervisor(std::vector<FsEntry>& stream, const SupervisorInput& in);

struct Supervision {
  bool supervised = false;
  std::vector<std::string> command;      // the EIF's /cmd, as init runs it
  std::vector<std::string> app;          // what the supervisor starts (after "--"); empty if not supervised
  std::string runtime_yaml;              // the packed runtime config; empty if not supervised
};

// Reads the customer ramdisk (the last) of an EIF: its /cmd and the runtime config. An image is
// supervised when it carries kRuntimeConfigPath and its command runs the supervisor with it.
// Throws Error(kFormat) for a malformed ramdisk, or a /cmd or config over 1 MiB.
Supervision supervision_of(const EifReader& reader);

}  // namespace shield_nitro::eif
