// What the simulator runs from an EIF: the customer ramdisk's root filesystem, and the command
// and environment nitro-cli wrote beside it as /cmd and /env (spec/eif.md §6.2).
#pragma once

#include <string>
#include <vector>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::sim {

// Each line of /cmd or /env is one element, newline-terminated, with no escaping. The Nitro init
// strips the final newline of each line; a last line without one is still an element.
// Throws Error(kFormat) on a NUL byte or a file over 1 MiB.
std::vector<std::string> parse_lines_file(ByteView content, const std::string& what);

// /cmd must name a program; /env lines must be NAME=VALUE.
std::vector<std::string> parse_cmd_file(ByteView content);
std::vector<std::string> parse_env_file(ByteView content);

struct EnclaveImage {
  std::string rootfs;  // host folder holding the enclave's "/"
  std::vector<std::string> cmd;
  std::vector<std::string> env;
};

// Unpacks the customer ramdisks of the EIF (ramdisk 1, 2, ... in order, as the kernel merges
// them into one initramfs) into work_dir, then reads work_dir/cmd, work_dir/env and takes
// work_dir/rootfs as the root filesystem. Throws Error(kFormat) when the image has no customer
// ramdisk, no /cmd or no rootfs.
EnclaveImage unpack_image(const std::string& eif_path, const std::string& work_dir);

}  // namespace shield_nitro::sim
