#include "shield_nitro/eif/stand_in_blobs.h"

#include <memory>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"

namespace shield_nitro::eif {
namespace {

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

std::string label(const std::string& what, const std::string& real) {
  return "shield-nitro STAND-IN " + what + ": not a real " + real +
         "; an EIF built with it is measured (PCR0/PCR1 differ from nitro-cli's blobs) and never boots\n";
}

}  // namespace

const char* kernel_blob_name(Arch arch) { return arch == Arch::kAarch64 ? "Image" : "bzImage"; }

std::array<BlobFile, 5> stand_in_blobs(Arch arch) {
  std::string kernel = kernel_blob_name(arch);
  // A few KiB, so the kernel section is not trivially small when hashed or streamed.
  std::string kernel_text;
  for (int i = 0; i < 256; ++i) kernel_text += label("kernel", "Linux kernel");
  // The first three lines are what eif build reads for OperatingSystem and KernelVersion.
  std::string config = std::string("#\n# Automatically generated file; DO NOT EDIT.\n# Linux/") +
                       (arch == Arch::kAarch64 ? "arm64" : "x86") +
                       " 0.0.0-shield-nitro-stand-in Kernel Configuration\n# " + label("kernel configuration", "one");
  // The kernel passes a parameter it does not know to init: harmless, and it shows in the EIF.
  std::string cmdline = "reboot=k panic=30 pci=off nomodules console=ttyS0 random.trust_cpu=on shield_nitro_stand_in=1\n";
  return {BlobFile{kernel, bytes_of(kernel_text)}, BlobFile{kernel + ".config", bytes_of(config)},
          BlobFile{"cmdline", bytes_of(cmdline)}, BlobFile{"init", bytes_of(label("init", "enclave init"))},
          BlobFile{"nsm.ko", bytes_of(label("nsm.ko", "NSM driver"))}};
}

std::vector<std::string> write_stand_in_blobs(const std::string& dir, Arch arch) {
  auto files = stand_in_blobs(arch);
  std::vector<std::string> paths;
  for (const auto& f : files) {
    std::string path = dir + "/" + f.name;
    if (file_exists(path) && read_file(path) != f.content)
      throw Error(Errc::kUsage, path + " exists and is not this stand-in (a real blob?): not replacing it; choose an empty folder");
    paths.push_back(path);
  }
  make_dirs(dir);
  std::array<std::unique_ptr<AtomicFileWriter>, std::tuple_size_v<decltype(files)>> w;
  for (size_t i = 0; i < files.size(); ++i) {
    w[i] = std::make_unique<AtomicFileWriter>(paths[i]);
    w[i]->write(files[i].content);
  }
  AtomicFileWriter::commit_all({w[0].get(), w[1].get(), w[2].get(), w[3].get(), w[4].get()});
  return paths;
}

}  // namespace shield_nitro::eif
