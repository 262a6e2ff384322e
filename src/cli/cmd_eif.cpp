// `shield-nitro eif ...`: read, measure, build and unpack Enclave Image Files.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <tuple>
#include <string>

#include "registry.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/eif/cpio.h"
#include "shield_nitro/eif/builder.h"
#include "shield_nitro/eif/describe.h"
#include "shield_nitro/eif/extract.h"
#include "shield_nitro/eif/image.h"
#include "shield_nitro/eif/metadata.h"
#include "shield_nitro/eif/pcr.h"
#include "shield_nitro/eif/ramdisk.h"
#include "shield_nitro/eif/reader.h"
#include "shield_nitro/eif/rootfs.h"
#include "shield_nitro/eif/stand_in_blobs.h"
#include "shield_nitro/eif/supervised.h"
#include "shield_nitro/eif/tar.h"
#include "shield_nitro/runtime/config.h"
#include "util.h"

namespace shield_nitro::cli {
namespace {

using namespace shield_nitro::eif;

struct DescribeOpts {
  std::string input;
  std::string label = "current";
  bool json = false;
  bool runtime = false;
};

// Each artifact's pins as the packed config has them (what the host must serve): name, source,
// KMS key, context and the one digest pinned. Null when the config does not parse here.
nlohmann::ordered_json artifact_pins(const Supervision& s) {
  runtime::RuntimeConfig rc;
  try {
    rc = runtime::parse_runtime_config(s.runtime_yaml, kRuntimeConfigPath);
  } catch (const Error&) {
    return nullptr;
  }
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& a : rc.artifacts) {
    nlohmann::ordered_json j;
    j["Name"] = a.name;
    j["Source"] = a.source;
    j["KeyId"] = a.key_id;
    j["EncryptionContext"] = a.encryption_context;
    if (!a.header_sha256.empty()) j["HeaderSha256"] = a.header_sha256;
    else j["Sha256"] = a.sha256;
    list.push_back(std::move(j));
  }
  return list;
}

nlohmann::ordered_json supervision_json(const Supervision& s) {
  nlohmann::ordered_json j;
  j["Supervised"] = s.supervised;
  j["Command"] = s.command;
  if (s.supervised) {
    j["App"] = s.app;
    j["RuntimeConfigPath"] = kRuntimeConfigPath;
    j["RuntimeConfig"] = s.runtime_yaml;
    j["Artifacts"] = artifact_pins(s);
  }
  return j;
}

void print_supervision_text(const Supervision& s) {
  if (!s.supervised) {
    std::cout << "supervised: no (the EIF runs its command directly)\ncommand: " << nlohmann::json(s.command).dump() << "\n";
    return;
  }
  std::cout << "supervised: yes\napp: " << nlohmann::json(s.app).dump() << "\nruntime config (" << kRuntimeConfigPath
            << ", measured in PCR2):\n" << s.runtime_yaml;
  if (!s.runtime_yaml.empty() && s.runtime_yaml.back() != '\n') std::cout << "\n";
  const auto pins = artifact_pins(s);
  if (pins.is_array() && !pins.empty()) {
    std::cout << "artifact pins:\n";
    for (const auto& a : pins)
      std::cout << "  " << a["Name"].get<std::string>() << " (" << a["Source"].get<std::string>() << "): "
                << (a.contains("HeaderSha256") ? "header_sha256 " + a["HeaderSha256"].get<std::string>()
                                               : "sha256 " + a["Sha256"].get<std::string>())
                << "\n";
  }
}

void run_describe(const DescribeOpts& o) {
  auto reader = EifReader::open(o.input);
  if (o.runtime) {
    Supervision s = supervision_of(reader);
    if (o.json) print_json(supervision_json(s));
    else print_supervision_text(s);
    return;
  }
  auto j = describe_json(reader, parse_hash_label(o.label));
  // Only our supervised images gain a key: any other EIF describes exactly as nitro-cli does,
  // even one whose last ramdisk is no cpio at all (nitro-cli never looks inside).
  std::optional<Supervision> s;
  try {
    s = supervision_of(reader);
  } catch (const Error& e) {
    if (e.code() != Errc::kFormat) throw;
  }
  if (s && s->supervised) j["Supervisor"] = supervision_json(*s);
  print_json(j);
}

void setup_describe(CLI::App& eif) {
  auto o = std::make_shared<DescribeOpts>();
  auto* sub = eif.add_subcommand("describe", "Print what nitro-cli describe-eif prints: version, PCRs, signature, CRC, metadata");
  sub->add_option("eif", o->input, "The .eif file")->required();
  sub->add_flag("--json", o->json, "JSON output (the default, except with --runtime)");
  sub->add_flag("--runtime", o->runtime, "Only whether the image is supervised, its app command and runtime config (text; JSON with --json)");
  sub->add_option("--hash-label", o->label,
                  "HashAlgorithm string: current = \"Sha512_48 { .. }\" (nitro-cli 1.5), legacy = \"Sha384 { ... }\" (<= 1.4)")
      ->capture_default_str();
  sub->footer("The layout is checked against the section table; a CRC mismatch shows as \"CheckCRC\": false.\n"
              "A supervised image (eif build --runtime) also shows \"Supervisor\": its app command and runtime config.\n"
              "Examples:\n  shield-nitro eif describe app.eif --json\n  shield-nitro eif describe app.eif --runtime");
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

// Where the customer filesystem comes from, shared by `eif build` and `eif ramdisk`.
struct RootfsOpts {
  std::string image, rootfs_tar, rootfs_dir, cmd_json, runtime, supervisor;
  std::vector<std::string> env;
  bool env_given = false;
  uint64_t max_layer_mib = kDefaultMaxInflated >> 20;
};

struct CustomerRamdisk {
  std::vector<CpioEntry> entries;
  std::string image_name, image_id;
};

std::vector<std::string> parse_cmd_json(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array() || j.empty())
    throw Error(Errc::kUsage, "--cmd must be a non-empty JSON array of strings, e.g. '[\"/app/server\",\"--port\",\"8000\"]'");
  std::vector<std::string> out;
  for (const auto& v : j) {
    if (!v.is_string()) throw Error(Errc::kUsage, "--cmd must hold only strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

// gzip'd layers are inflated next to the output: on the disk the user chose, not in /tmp.
std::string scratch_dir_for(const std::string& output) {
  if (output == "-") return "";
  std::string dir = std::filesystem::path(output).parent_path().string();
  return dir.empty() ? "." : dir;
}

// The shield-nitro-enclave installed or built beside this shield-nitro.
std::string default_supervisor() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error(Errc::kEnvironment, "cannot find this program's folder (/proc/self/exe): " + ec.message() + "; give --supervisor");
  std::string path = (self.parent_path() / "shield-nitro-enclave").string();
  if (!file_exists(path))
    throw Error(Errc::kEnvironment, "no supervisor at " + path + " (shield-nitro-enclave beside shield-nitro); give --supervisor PATH");
  return path;
}

// --runtime: the app runs under the supervisor, with the config packed (and so measured).
std::vector<std::string> supervise(std::vector<FsEntry>& stream, const RootfsOpts& o, std::vector<std::string> app,
                                   int64_t build_time) {
  SupervisorInput in;
  in.supervisor = o.supervisor.empty() ? default_supervisor() : o.supervisor;
  in.runtime_yaml = read_text_file(o.runtime);
  in.runtime_source = o.runtime;
  in.app = std::move(app);
  in.mtime = build_time;
  try {
    return add_supervisor(stream, in);
  } catch (const Error& e) {
    // A malformed config is the operator's mistake: a usage error (exit 2), like a bad allowlist.
    if (e.code() == Errc::kFormat) throw Error(Errc::kUsage, e.what());
    throw;
  }
}

CustomerRamdisk customer_from(const RootfsOpts& o, Arch arch, int64_t build_time, const std::string& output) {
  if (o.max_layer_mib == 0 || o.max_layer_mib > (uint64_t{1} << 44))
    throw Error(Errc::kUsage, "--max-layer-mib must be between 1 and 2^44");
  uint64_t max_layer = o.max_layer_mib << 20;
  std::string scratch = scratch_dir_for(output);
  int sources = !o.image.empty() + !o.rootfs_tar.empty() + !o.rootfs_dir.empty();
  if (sources != 1) throw Error(Errc::kUsage, "give exactly one of --image, --rootfs-tar, --rootfs");
  CustomerRamdisk out;
  std::vector<FsEntry> stream;
  std::optional<std::vector<std::string>> cmd, env;
  if (!o.supervisor.empty() && o.runtime.empty()) throw Error(Errc::kUsage, "--supervisor goes with --runtime");
  if (!o.image.empty()) {
    Image img = load_image_tar(o.image, arch, scratch, max_layer);
    stream = std::move(img.export_stream);
    // Under the supervisor the app starts as `docker run` would start it (ENTRYPOINT + CMD);
    // without it, nitro-cli's rule (CMD, else ENTRYPOINT) keeps builds identical to nitro-cli's.
    if (o.cmd_json.empty()) cmd = o.runtime.empty() ? image_command(img.config) : container_command(img.config);
    env = img.config.env;
    out.image_name = img.name;
    out.image_id = img.id;
  } else {
    stream = o.rootfs_tar.empty() ? scan_rootfs_dir(o.rootfs_dir, build_time) : read_export_tar(o.rootfs_tar, scratch, max_layer);
    if (o.cmd_json.empty()) throw Error(Errc::kUsage, "--rootfs-tar and --rootfs need --cmd (there is no image config)");
  }
  if (!o.cmd_json.empty()) cmd = parse_cmd_json(o.cmd_json);
  if (!o.runtime.empty()) cmd = supervise(stream, o, *cmd, build_time);
  if (o.env_given) env = o.env;
  out.entries = customer_ramdisk(stream, *cmd, env.value_or(std::vector<std::string>{}));
  return out;
}

void add_rootfs_options(CLI::App* sub, RootfsOpts& o) {
  sub->add_option("--image", o.image, "A `docker save` tar or an OCI image layout tar (layers may be gzip'd)");
  sub->add_option("--rootfs-tar", o.rootfs_tar, "A flat filesystem tar, as `docker export` writes it");
  sub->add_option("--rootfs", o.rootfs_dir, "A folder holding the root filesystem (e.g. from `eif rootfs`)");
  sub->add_option("--cmd", o.cmd_json, "The command as a JSON array; overrides the image's CMD/ENTRYPOINT");
  sub->add_option("--env", o.env, "K=V for /env (repeatable); overrides the image's ENV")
      ->each([&o](const std::string&) { o.env_given = true; });
  sub->add_option("--runtime", o.runtime,
                  "A runtime config (docs/runtime.md): run the app under shield-nitro-enclave with it; the config is measured (PCR2)");
  sub->add_option("--supervisor", o.supervisor,
                  "The shield-nitro-enclave program to pack with --runtime (default: the one beside this shield-nitro)");
  sub->add_option("--max-layer-mib", o.max_layer_mib,
                  "Refuse a gzip'd layer or --rootfs-tar that inflates past this many MiB (inflated next to the output)")
      ->capture_default_str();
}

int64_t build_time_from(const std::string& opt) { return opt.empty() ? default_build_time() : parse_build_time(opt); }

struct RamdiskOpts {
  bool bootstrap = false;
  std::string init, nsm_ko, out, build_time, arch;
  RootfsOpts rootfs;
};

void write_cpio_file(const std::vector<CpioEntry>& entries, const std::string& path) {
  AtomicFileWriter w(path);
  write_cpio(entries, [&](ByteView b) { w.write(b); });
  w.commit();
}

void run_ramdisk(const RamdiskOpts& o) {
  Arch arch = o.arch.empty() ? host_arch() : parse_arch(o.arch);
  if (o.bootstrap) {
    if (o.init.empty() || o.nsm_ko.empty()) throw Error(Errc::kUsage, "--bootstrap needs --init and --nsm-ko");
    write_cpio_file(bootstrap_ramdisk(o.init, o.nsm_ko), o.out);
  } else {
    write_cpio_file(customer_from(o.rootfs, arch, build_time_from(o.build_time), o.out).entries, o.out);
  }
}

void setup_ramdisk(CLI::App& eif) {
  auto o = std::make_shared<RamdiskOpts>();
  auto* sub = eif.add_subcommand("ramdisk", "Write one ramdisk alone, byte-identical to what linuxkit makes for nitro-cli");
  sub->add_flag("--bootstrap", o->bootstrap, "The bootstrap ramdisk (dev/, init, nsm.ko) instead of the customer one");
  sub->add_option("--init", o->init, "nitro-cli's init binary (blobs/<arch>/init)");
  sub->add_option("--nsm-ko", o->nsm_ko, "nitro-cli's nsm.ko (blobs/<arch>/nsm.ko)");
  add_rootfs_options(sub, o->rootfs);
  sub->add_option("--build-time", o->build_time, "mtime of --rootfs entries: Unix seconds or RFC 3339 (default SOURCE_DATE_EPOCH or 0)");
  sub->add_option("--arch", o->arch, "x86_64 or aarch64: picks the platform of a multi-arch OCI image");
  sub->add_option("-o,--output", o->out, "The .cpio to write")->required();
  sub->footer("Pipelines can inspect or hash a ramdisk before building, or pass it to `eif build --ramdisk`.\n"
              "Examples:\n  shield-nitro eif ramdisk --image app.tar -o customer.cpio\n"
              "  shield-nitro eif ramdisk --bootstrap --init blobs/init --nsm-ko blobs/nsm.ko -o bootstrap.cpio");
  sub->callback([o] { run_ramdisk(*o); });
}

struct BuildOpts {
  std::string kernel, cmdline_file, cmdline_text, init, nsm_ko, blobs, arch, name, version, build_time;
  std::string metadata_file, custom_metadata_file, sign_cert, sign_key, out, label = "current";
  std::vector<std::string> ramdisks;
  RootfsOpts rootfs;
  bool json = false;
};

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n\f\v";
  auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// Where blobs come from, for errors about a missing blobs folder or file.
std::string where_blobs_come_from() {
  return std::string("nitro-cli's aws-nitro-enclaves-cli package installs them in ") + kNitroBlobsDir +
         "; without it, `shield-nitro eif blobs --stand-in -o DIR` writes labelled stand-ins "
         "(their PCR0/PCR1 differ from a real build)";
}

void apply_blobs(BuildOpts& o, Arch arch) {
  if (o.blobs.empty()) return;
  if (!file_exists(o.blobs))
    throw Error(Errc::kEnvironment, "--blobs " + o.blobs + ": no such folder; " + where_blobs_come_from());
  auto pick = [&](std::string& field, const std::string& file) {
    if (!field.empty()) return;  // an explicit option wins
    field = o.blobs + "/" + file;
    if (!file_exists(field))
      throw Error(Errc::kEnvironment, "--blobs " + o.blobs + " has no " + file +
                                          " (a blobs folder holds " + kernel_blob_name(arch) +
                                          ", cmdline, init, nsm.ko); " + where_blobs_come_from());
  };
  pick(o.kernel, kernel_blob_name(arch));
  if (o.cmdline_text.empty()) pick(o.cmdline_file, "cmdline");
  if (o.ramdisks.empty()) {  // prebuilt ramdisks already hold init and nsm.ko
    pick(o.init, "init");
    pick(o.nsm_ko, "nsm.ko");
  }
}

std::string metadata_for(const BuildOpts& o, const CustomerRamdisk& c) {
  if (!o.metadata_file.empty()) return read_text_file(o.metadata_file);  // verbatim
  BuildMetadata m;
  m.image_name = o.name.empty() ? c.image_name : o.name;
  m.image_version = o.version.empty() ? c.image_id : o.version;
  m.build_time = format_build_time(build_time_from(o.build_time));
  if (file_exists(o.kernel + ".config"))
    if (auto info = kernel_config_info(read_text_file(o.kernel + ".config"))) std::tie(m.operating_system, m.kernel_version) = *info;
  if (!o.custom_metadata_file.empty()) {
    std::string text = read_text_file(o.custom_metadata_file);
    if (text.size() > 4096) throw Error(Errc::kUsage, "--custom-metadata is larger than 4096 bytes");
    m.custom_metadata = nlohmann::json::parse(text, nullptr, false);
    if (m.custom_metadata.is_discarded()) throw Error(Errc::kUsage, "--custom-metadata is not valid JSON");
  }
  return serialize_metadata(m);
}

void run_build(BuildOpts o) {
  BuildInput in;
  in.arch = o.arch.empty() ? host_arch() : parse_arch(o.arch);
  apply_blobs(o, in.arch);
  if (o.kernel.empty()) throw Error(Errc::kUsage, "give --kernel (or --blobs DIR); " + where_blobs_come_from());
  if (o.cmdline_text.empty() == o.cmdline_file.empty()) throw Error(Errc::kUsage, "give one of --cmdline FILE or --cmdline-text");
  std::string cmdline = o.cmdline_text.empty() ? trim(read_text_file(o.cmdline_file)) : o.cmdline_text;
  in.cmdline = Bytes(cmdline.begin(), cmdline.end());
  in.kernel_path = o.kernel;
  CustomerRamdisk customer;
  if (!o.ramdisks.empty()) {
    if (!o.rootfs.image.empty() || !o.rootfs.rootfs_tar.empty() || !o.rootfs.rootfs_dir.empty())
      throw Error(Errc::kUsage, "--ramdisk replaces --image/--rootfs-tar/--rootfs; give one or the other");
    for (const auto& r : o.ramdisks) in.ramdisks.push_back({r, {}});
  } else {
    if (o.init.empty() || o.nsm_ko.empty()) throw Error(Errc::kUsage, "give --init and --nsm-ko (or --blobs DIR)");
    customer = customer_from(o.rootfs, in.arch, build_time_from(o.build_time), o.out);
    in.ramdisks.push_back({"", bootstrap_ramdisk(o.init, o.nsm_ko)});
    in.ramdisks.push_back({"", std::move(customer.entries)});
  }
  std::string meta = metadata_for(o, customer);
  in.metadata = Bytes(meta.begin(), meta.end());
  if (o.sign_cert.empty() != o.sign_key.empty()) throw Error(Errc::kUsage, "--sign-cert and --sign-key go together");
  if (!o.sign_cert.empty()) in.signing = SigningInput{read_file(o.sign_cert), read_file(o.sign_key)};
  BuildResult r = build_eif(in, o.out);
  print_json(build_output_json(r.measurements, parse_hash_label(o.label)));
  std::cerr << "Enclave Image successfully created." << std::endl;
}

void setup_build(CLI::App& eif) {
  auto o = std::make_shared<BuildOpts>();
  auto* sub = eif.add_subcommand("build", "Build an EIF from a container image or root filesystem, as nitro-cli build-enclave does, without Docker");
  sub->add_option("--kernel", o->kernel, "bzImage (x86_64) or Image (aarch64)");
  sub->add_option("--cmdline", o->cmdline_file, "File with the kernel command line (trimmed, like nitro-cli)");
  sub->add_option("--cmdline-text", o->cmdline_text, "The kernel command line itself");
  sub->add_option("--init", o->init, "nitro-cli's init binary");
  sub->add_option("--nsm-ko", o->nsm_ko, "nitro-cli's nsm.ko");
  sub->add_option("--blobs", o->blobs, "A nitro-cli blobs folder: bzImage|Image, cmdline, init, nsm.ko (explicit options win)");
  add_rootfs_options(sub, o->rootfs);
  sub->add_option("--ramdisk", o->ramdisks, "Prebuilt ramdisk, taken as is (repeat; the first is the bootstrap ramdisk)");
  sub->add_option("--arch", o->arch, "x86_64 or aarch64 (default: this host's); sets the header flag");
  sub->add_option("--name", o->name, "ImageName in the metadata (default: the image's first tag before ':')");
  sub->add_option("--version", o->version, "ImageVersion in the metadata (default: the image id)");
  sub->add_option("--build-time", o->build_time, "BuildTime: Unix seconds or RFC 3339 UTC (default SOURCE_DATE_EPOCH, else 1970-01-01T00:00:00+00:00)");
  sub->add_option("--metadata", o->metadata_file, "Use this file as the metadata section, byte for byte");
  sub->add_option("--custom-metadata", o->custom_metadata_file, "File with JSON (<= 4096 bytes) for CustomMetadata, like nitro-cli --metadata");
  sub->add_option("--sign-cert", o->sign_cert, "PEM certificate for the signature section (PCR8)");
  sub->add_option("--sign-key", o->sign_key, "PEM EC private key (P-256, P-384 or P-521) matching --sign-cert");
  sub->add_option("-o,--output", o->out, "The .eif to write")->required();
  sub->add_flag("--json", o->json, "Print the measurements as JSON (always on; nitro-cli's format)");
  sub->add_option("--hash-label", o->label, "HashAlgorithm string: current (nitro-cli 1.5) or legacy (<= 1.4)")->capture_default_str();
  sub->footer("The same inputs always give the same bytes. PCRs match nitro-cli given the same kernel, cmdline,\n"
              "init and nsm.ko (nitro-cli's blobs) and the same filesystem.\n"
              "Examples:\n  shield-nitro eif build --blobs /usr/share/nitro_enclaves/blobs --image app.tar -o app.eif\n"
              "  shield-nitro eif build --blobs blobs/ --rootfs rootfs/ --cmd '[\"/bin/app\"]' --sign-cert c.pem --sign-key k.pem -o app.eif\n"
              "  shield-nitro eif build --blobs blobs/ --image app.tar --runtime app.runtime.yaml -o app.eif   (supervised)");
  sub->callback([o] { run_build(*o); });
}

struct BlobsOpts {
  std::string out, arch;
  bool stand_in = false;
};

void run_blobs(const BlobsOpts& o) {
  if (!o.stand_in)
    throw Error(Errc::kUsage, std::string("real blobs come with nitro-cli: install the aws-nitro-enclaves-cli package and use --blobs ") +
                                  kNitroBlobsDir + "; for the simulator, --stand-in -o DIR writes stand-ins whose PCR0/PCR1 differ from a real build");
  if (o.out.empty()) throw Error(Errc::kUsage, "give -o DIR, the folder for the stand-in blobs");
  Arch arch = o.arch.empty() ? host_arch() : parse_arch(o.arch);
  for (const auto& path : write_stand_in_blobs(o.out, arch)) std::cout << path << "\n";
  std::cerr << "WARNING: these are STAND-IN blobs, not nitro-cli's: an EIF built with them runs only under `shield-nitro sim`,\n"
               "and its PCR0 and PCR1 differ from a build with the real blobs (PCR2, the app, does not). Do not put\n"
               "their PCR0/PCR1 in a KMS key policy for Nitro. Real blobs: the aws-nitro-enclaves-cli package, "
            << kNitroBlobsDir << "." << std::endl;
}

void setup_blobs(CLI::App& eif) {
  auto o = std::make_shared<BlobsOpts>();
  auto* sub = eif.add_subcommand("blobs", "Write stand-ins for nitro-cli's kernel and bootstrap blobs (for the simulator only)");
  sub->add_flag("--stand-in", o->stand_in, "Write labelled stand-ins (required: real blobs come from nitro-cli)");
  sub->add_option("-o,--output", o->out, "The folder to write (created; an existing file is replaced only by identical bytes)");
  sub->add_option("--arch", o->arch, "x86_64 (bzImage) or aarch64 (Image) (default: this host's)");
  sub->footer(std::string("Writes the kernel (bzImage or Image), its .config, cmdline, init and nsm.ko, the same bytes every time.\n"
              "The simulator measures them and never boots them; PCR0/PCR1 differ from a real build, PCR2 does not.\n"
              "Real blobs: the aws-nitro-enclaves-cli package installs them in ") + kNitroBlobsDir + ".\n"
              "Example: shield-nitro eif blobs --stand-in -o blobs/ && shield-nitro eif build --blobs blobs/ --rootfs rootfs/ --cmd '[\"/bin/app\"]' -o app.eif");
  sub->callback([o] { run_blobs(*o); });
}

struct RootfsCmdOpts {
  std::string binary, dest, out;
  std::vector<std::string> files;
};

void run_rootfs(const RootfsCmdOpts& o) {
  std::vector<std::pair<std::string, std::string>> extra;
  for (const auto& f : o.files) {
    auto colon = f.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == f.size())
      throw Error(Errc::kUsage, "--file takes SRC:DST, e.g. --file model.bin:/data/model.bin");
    extra.emplace_back(f.substr(0, colon), f.substr(colon + 1));
  }
  std::string base = o.binary.substr(o.binary.rfind('/') == std::string::npos ? 0 : o.binary.rfind('/') + 1);
  std::string dest = o.dest.empty() ? "/bin/" + base : o.dest;
  make_rootfs(o.binary, dest, extra, o.out);
  std::cerr << "rootfs written to " << o.out << "; build with --rootfs " << o.out << " --cmd '[\"" << dest << "\"]'" << std::endl;
}

void setup_rootfs(CLI::App& eif) {
  auto o = std::make_shared<RootfsCmdOpts>();
  auto* sub = eif.add_subcommand("rootfs", "Make a minimal root filesystem: a program plus the shared libraries it needs");
  sub->add_option("--binary", o->binary, "The program (ELF64); its DT_NEEDED libraries and interpreter are copied too")->required();
  sub->add_option("--dest", o->dest, "Where the program goes inside the rootfs (default /bin/<name>)");
  sub->add_option("--file", o->files, "SRC:DST, an extra file to copy in (repeatable)");
  sub->add_option("-o,--output", o->out, "The folder to create (must not exist or be empty)")->required();
  sub->footer("Libraries are looked up in DT_RUNPATH/DT_RPATH and then the standard folders, like ld.so.\n"
              "Example: shield-nitro eif rootfs --binary build/my-enclave-app --file cfg.json:/etc/app.json -o rootfs/");
  sub->callback([o] { run_rootfs(*o); });
}

struct ExtractOpts {
  std::string input, out;
  bool unpack = false;
};

void setup_extract(CLI::App& eif) {
  auto o = std::make_shared<ExtractOpts>();
  auto* sub = eif.add_subcommand("extract", "Write an EIF's sections as files (kernel, cmdline, ramdisk-N.cpio, metadata, signature)");
  sub->add_option("eif", o->input, "The .eif file")->required();
  sub->add_option("-o,--output", o->out, "The folder to create (must not exist or be empty)")->required();
  sub->add_flag("--unpack", o->unpack, "Also expand each ramdisk into ramdisk-N/ (no entry can escape it)");
  sub->footer("The enclave simulator runs images from this folder.\n"
              "Example: shield-nitro eif extract app.eif -o app/ --unpack");
  sub->callback([o] {
    for (const auto& f : extract_eif(o->input, o->out, o->unpack).files) std::cout << f << "\n";
  });
}

void setup(CLI::App& app) {
  auto* eif = app.add_subcommand("eif", "Build, measure, describe and unpack Enclave Image Files (no Docker needed)");
  eif->require_subcommand(1);
  setup_describe(*eif);
  setup_pcr(*eif);
  setup_ramdisk(*eif);
  setup_build(*eif);
  setup_blobs(*eif);
  setup_rootfs(*eif);
  setup_extract(*eif);
}

CommandRegistrar reg(70, setup);

}  // namespace
}  // namespace shield_nitro::cli
