// The two ramdisks nitro-cli builds with linuxkit (spec/eif.md §6.3-6.4), as cpio entry lists:
// the bootstrap ramdisk (init + nsm.ko) and the customer ramdisk (the container filesystem
// under rootfs/, plus /cmd and /env). write_cpio() turns either into the exact bytes.
#pragma once

#include <string>
#include <vector>

#include "shield_nitro/eif/cpio.h"
#include "shield_nitro/eif/fs_entry.h"

namespace shield_nitro::eif {

// dev/, init and nsm.ko, all root-owned with linuxkit's fixed mtime.
std::vector<CpioEntry> bootstrap_ramdisk(const std::string& init_path, const std::string& nsm_ko_path);

// linuxkit's transform of a `docker export` stream: prefix rootfs/, drop Docker's init-layer
// files, touch and replace the fixed ones, turn hard links into relative symlinks, append the
// missing touched entries, the files: section and /cmd, /env.
std::vector<CpioEntry> customer_ramdisk(const std::vector<FsEntry>& export_stream, const std::vector<std::string>& cmd,
                                        const std::vector<std::string>& env);

// One line per item, each ending in "\n" (nitro-cli's /cmd and /env). Throws Error(kUsage) for
// an item containing a newline, which would corrupt the file.
Bytes lines_file(const std::vector<std::string>& items, const char* what);

}  // namespace shield_nitro::eif
