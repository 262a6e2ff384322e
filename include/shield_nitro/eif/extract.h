// Unpacks an EIF into a folder, the form the enclave simulator runs:
//   DIR/kernel, DIR/cmdline, DIR/ramdisk-0.cpio, DIR/ramdisk-1.cpio, ...,
//   DIR/metadata.json and DIR/signature.cbor when present, and with unpack also
//   DIR/ramdisk-N/ (each cpio expanded; no entry can escape its folder).
// The folder appears complete or not at all (it is built beside DIR, then renamed).
#pragma once

#include <string>
#include <vector>

namespace shield_nitro::eif {

struct ExtractResult {
  std::vector<std::string> files;  // relative names written, in order
};

// out_dir must not exist or be empty. Throws Error(kFormat) for a malformed EIF or ramdisk.
ExtractResult extract_eif(const std::string& eif_path, const std::string& out_dir, bool unpack);

}  // namespace shield_nitro::eif
