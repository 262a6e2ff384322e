// `shield-nitro eif ...`: read, measure, build and unpack Enclave Image Files.
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/eif/cpio.h"
#include "shield_nitro/eif/describe.h"
#include "shield_nitro/eif/pcr.h"
#include "shield_nitro/eif/ramdisk.h"
#include "shield_nitro/eif/reader.h"
#include "shield_nitro/eif/tar.h"
#include "util.h"

namespace shield_nitro::cli {
namespace {

using namespace shield_nitro::eif;

struct DescribeOpts {
  std::string input;
  std::string label = "current";
  bool json = false;
};

void run_describe(const DescribeOpts& o) {
  auto reader = EifReader::open(o.input);
  print_json(describe_json(reader, parse_hash_label(o.label)));
}

void setup_describe(CLI::App& eif) {
  auto o = std::make_shared<DescribeOpts>();
  auto* sub = eif.add_subcommand("describe", "Print what nitro-cli describe-eif prints: version, PCRs, signature, CRC, metadata");
  sub->add_option("eif", o->input, "The .eif file")->required();
  sub->add_flag("--json", o->json, "JSON output (the only format; accepted for symmetry)");
  sub->add_option("--hash-label", o->label,
                  "HashAlgorithm string: current = \"Sha512_48 { .. }\" (nitro-cli 1.5), legacy = \"Sha384 { ... }\" (<= 1.4)")
      ->capture_default_str();
  sub->footer("The layout is checked against the section table; a CRC mismatch shows as \"CheckCRC\": false.\n"
              "Example: shield-nitro eif describe app.eif --json");
  sub->callback([o] { run_describe(*o); });
}

struct PcrOpts {
  std::string input;
  std::string cert;
};

void run_pcr(const PcrOpts& o) {
  nlohmann::ordered_json j;
  if (!o.cert.empty()) j["PCR8"] = hex_encode(pcr8_of_certificate(read_file(o.cert)));
  else j["PCR"] = hex_encode(pcr_of(read_file(o.input)));
  print_json(j);
}

void setup_pcr(CLI::App& eif) {
  auto o = std::make_shared<PcrOpts>();
  auto* sub = eif.add_subcommand("pcr", "The PCR of a file or of a signing certificate, like nitro-cli pcr");
  auto* in = sub->add_option("--input", o->input, "Any file: prints SHA384(0^48 || SHA384(file))");
  auto* cert = sub->add_option("--signing-cert,--signing-certificate", o->cert, "PEM certificate: prints its PCR8");
  in->excludes(cert);
  sub->footer("Use it to predict PCR8 for a KMS key policy before building.\n"
              "Example: shield-nitro eif pcr --signing-cert signer.pem");
  sub->callback([o] {
    if (o->input.empty() && o->cert.empty()) throw Error(Errc::kUsage, "give --input FILE or --signing-cert PEM");
    run_pcr(*o);
  });
}

struct RamdiskOpts {
  bool bootstrap = false;
  std::string init, nsm_ko, rootfs_tar, out;
  std::vector<std::string> cmd_lines, env;
};

void run_ramdisk(const RamdiskOpts& o) {
  std::vector<CpioEntry> entries;
  if (o.bootstrap) entries = bootstrap_ramdisk(o.init, o.nsm_ko);
  else entries = customer_ramdisk(read_export_tar(o.rootfs_tar, ""), o.cmd_lines, o.env);
  AtomicFileWriter w(o.out);
  write_cpio(entries, [&](ByteView b) { w.write(b); });
  w.commit();
}

void setup_ramdisk(CLI::App& eif) {
  auto o = std::make_shared<RamdiskOpts>();
  auto* sub = eif.add_subcommand("ramdisk", "Write one ramdisk (bootstrap or customer) as linuxkit would, to inspect it");
  sub->add_flag("--bootstrap", o->bootstrap, "The bootstrap ramdisk from --init and --nsm-ko");
  sub->add_option("--init", o->init, "nitro-cli's init binary (blobs/<arch>/init)");
  sub->add_option("--nsm-ko", o->nsm_ko, "nitro-cli's nsm.ko (blobs/<arch>/nsm.ko)");
  sub->add_option("--rootfs-tar", o->rootfs_tar, "A flat filesystem tar as docker export writes it");
  sub->add_option("--cmd-line", o->cmd_lines, "");
  sub->add_option("--env", o->env, "");
  sub->add_option("-o,--output", o->out, "The .cpio to write")->required();
  sub->callback([o] { run_ramdisk(*o); });
}

void setup(CLI::App& app) {
  auto* eif = app.add_subcommand("eif", "Build, measure, describe and unpack Enclave Image Files (no Docker needed)");
  eif->require_subcommand(1);
  setup_describe(*eif);
  setup_pcr(*eif);
  setup_ramdisk(*eif);
}

CommandRegistrar reg(70, setup);

}  // namespace
}  // namespace shield_nitro::cli
