// `eif build --runtime`: the supervisor, its libraries and the runtime config packed into the
// image, the command rewritten, the config measured (PCR2), and `eif describe` reporting it.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/cpio.h"
#include "shield_nitro/eif/image.h"
#include "shield_nitro/eif/rootfs.h"
#include "shield_nitro/eif/supervised.h"
#include "support/expect_error.h"
#include "test_util.h"

using namespace shield_nitro;
using namespace shield_nitro::eif;
using eif_test::fixture;
using eif_test::run;
using eif_test::TarWriter;
using eif_test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }
std::string cli() { return std::string(SN_CLI) + " eif "; }

const std::string kRuntime =
    "version: 1\n"
    "app: {user: \"1000:1000\", workdir: /app}\n"
    "egress:\n"
    "  proxy_port: 3128\n"
    "  allow: [\"api.example.com:443\"]\n"
    "ingress:\n"
    "  - {vsock_port: 5000, app_port: 8080}\n";

// A `docker save` tar: /bin/app, /etc, and an /opt that is a symlink when asked.
Bytes image_tar(const nlohmann::json& config, bool opt_symlink = false) {
  TarWriter layer;
  layer.dir("bin/");
  layer.file("bin/app", "#!/bin/sh\necho app\n", 0755);
  layer.dir("etc/");
  if (opt_symlink) layer.symlink("opt", "/srv");
  TarWriter t;
  t.file("c.json", config.dump());
  t.file("l/layer.tar", to_string(layer.finish()));
  t.file("manifest.json", R"([{"Config":"c.json","RepoTags":["app:v1"],"Layers":["l/layer.tar"]}])");
  return t.finish();
}

const nlohmann::json kConfig = {
    {"config", {{"Entrypoint", {"/bin/app"}}, {"Cmd", {"--port", "8080"}}, {"Env", {"A=1", "PATH=/bin"}}}}};

class Supervised : public ::testing::Test {
 protected:
  void SetUp() override {
    eif_test::spit(t / "app.tar", image_tar(kConfig));
    write(t / "rt.yaml", kRuntime);
  }
  static void write(const std::string& path, const std::string& text) { eif_test::spit(path, Bytes(text.begin(), text.end())); }
  std::string build_args(const std::string& runtime) const {
    return "build --blobs " + q(fixture("blobs/x86_64")) + " --kernel " + q(fixture("tiny/kernel.bin")) + " --arch x86_64 --image " +
           q(t / "app.tar") + (runtime.empty() ? "" : " --runtime " + q(runtime));
  }
  // Builds; returns the exit code and the printed measurements.
  int build(const std::string& runtime, const std::string& out, nlohmann::json* m = nullptr,
            const std::string& extra = " --supervisor " + q(SN_ENCLAVE)) {
    std::string stdout_text;
    int rc = run(cli() + build_args(runtime) + (runtime.empty() ? "" : extra) + " -o " + q(out) + " 2>" + q(t / "err"), &stdout_text);
    if (rc == 0 && m) *m = nlohmann::json::parse(stdout_text)["Measurements"];
    return rc;
  }
  std::string err() const { return eif_test::slurp_text(t / "err"); }
  TempDir t;
};

// The names of a file's .debug_* sections, space-separated ("" when it has none).
std::string debug_sections(const std::string& path) {
  std::string out, names;
  if (run("readelf -S --wide " + q(path), &out) != 0) return "readelf failed";
  for (size_t at = out.find(" .debug_"); at != std::string::npos; at = out.find(" .debug_", at + 1))
    names += out.substr(at + 1, out.find(' ', at + 1) - at - 1) + " ";
  return names;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

}  // namespace

TEST(SupervisedImage, ContainerCommandIsEntrypointThenCmd) {
  ImageConfig c;
  c.entrypoint = std::vector<std::string>{"/bin/app"};
  c.cmd = std::vector<std::string>{"--port", "1"};
  EXPECT_EQ(container_command(c), (std::vector<std::string>{"/bin/app", "--port", "1"}));
  EXPECT_EQ(image_command(c), (std::vector<std::string>{"--port", "1"}));  // nitro-cli's rule stays for plain builds
  c.entrypoint.reset();
  EXPECT_EQ(container_command(c), (std::vector<std::string>{"--port", "1"}));
  c.cmd.reset();
  EXPECT_EQ(test_support::code_of([&] { container_command(c); }), Errc::kUsage);
}

TEST_F(Supervised, PacksSupervisorLibrariesAndConfigAndRewritesTheCommand) {
  ASSERT_EQ(build(t / "rt.yaml", t / "a.eif"), 0) << err();
  ASSERT_EQ(run(cli() + "extract " + q(t / "a.eif") + " -o " + q(t / "x") + " --unpack >/dev/null 2>&1"), 0);
  std::string root = t / "x/ramdisk-1/rootfs";
  EXPECT_EQ(eif_test::slurp_text(root + kRuntimeConfigPath), kRuntime);
  EXPECT_EQ(fs::status(root + kRuntimeConfigPath).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  // The supervisor is packed stripped: the build output keeps its symbols and debug info.
  Bytes packed = eif_test::slurp(root + kSupervisorPath);
  EXPECT_EQ(packed, stripped_copy(SN_ENCLAVE));
  EXPECT_LT(packed.size(), fs::file_size(SN_ENCLAVE));
  EXPECT_EQ(debug_sections(SN_ENCLAVE).empty(), false) << "the build output lost its debug info";
  EXPECT_EQ(debug_sections(root + kSupervisorPath), "");
  EXPECT_TRUE(fs::exists(root + "/bin/app"));  // the image is all still there

  std::vector<std::string> cmd = lines(eif_test::slurp_text(t / "x/ramdisk-1/cmd"));
  const std::vector<std::string> want_tail = {kSupervisorPath, "run", "--config", kRuntimeConfigPath, "--", "/bin/app", "--port", "8080"};
  ASSERT_GE(cmd.size(), want_tail.size());
  EXPECT_EQ(std::vector<std::string>(cmd.end() - want_tail.size(), cmd.end()), want_tail);
  ASSERT_EQ(cmd.size(), want_tail.size() + 3);  // the packed ld.so --library-path DIR first
  EXPECT_EQ(cmd[0], "/opt/shield-nitro/lib/ld-linux-x86-64.so.2");
  EXPECT_EQ(cmd[1], "--library-path");
  EXPECT_EQ(cmd[2], "/opt/shield-nitro/lib");
  EXPECT_EQ(lines(eif_test::slurp_text(t / "x/ramdisk-1/env")), (std::vector<std::string>{"A=1", "PATH=/bin"}));

  // The packed supervisor runs with the packed loader, and every library comes from the pack.
  std::string lib = root + "/opt/shield-nitro/lib";
  std::string debug;
  ASSERT_EQ(run("LD_DEBUG=libs " + q(lib + "/ld-linux-x86-64.so.2") + " --library-path " + q(lib) + " " + q(root + kSupervisorPath) +
                    " --help 2>&1 >/dev/null",
                &debug),
            0)
      << debug;
  size_t inits = 0;
  for (const auto& line : lines(debug)) {
    size_t at = line.find("calling init: ");
    if (at == std::string::npos) continue;
    ++inits;
    std::string path = line.substr(at + 14);
    EXPECT_TRUE(path.starts_with(lib + "/")) << path;
  }
  EXPECT_GT(inits, 3u) << debug;
  // And the stripped program answers as the built one does.
  std::string packed_version, built_version;
  ASSERT_EQ(run(q(lib + "/ld-linux-x86-64.so.2") + " --library-path " + q(lib) + " " + q(root + kSupervisorPath) + " --version",
                &packed_version),
            0);
  ASSERT_EQ(run(q(SN_ENCLAVE) + " --version", &built_version), 0);
  EXPECT_EQ(packed_version, built_version);
  EXPECT_FALSE(packed_version.empty());
}

// What is measured is the stripped program: debug info (a -g build, a -g1 one) does not move
// PCR2, the program's code does.
TEST_F(Supervised, DebugInfoIsNotMeasured) {
  ASSERT_EQ(run("objcopy --strip-debug " + q(SN_ENCLAVE) + " " + q(t / "nodebug")), 0);
  ASSERT_EQ(debug_sections(t / "nodebug"), "");
  nlohmann::json a, b, other;
  ASSERT_EQ(build(t / "rt.yaml", t / "a.eif", &a), 0) << err();
  ASSERT_EQ(build(t / "rt.yaml", t / "b.eif", &b, " --supervisor " + q(t / "nodebug")), 0) << err();
  EXPECT_EQ(a["PCR2"], b["PCR2"]);
  EXPECT_EQ(eif_test::slurp(t / "a.eif"), eif_test::slurp(t / "b.eif"));
  // A code change is measured: one byte of .text flipped.
  // An explicit output file: without one, objcopy rewrites its input in place, and for a moment
  // the shared enclave program is empty under tests running beside this one.
  ASSERT_EQ(run("objcopy --dump-section .text=" + q(t / "text") + " " + q(SN_ENCLAVE) + " " + q(t / "scratch")), 0);
  Bytes text = eif_test::slurp(t / "text");
  ASSERT_FALSE(text.empty());
  text[text.size() / 2] ^= 0xff;
  eif_test::spit(t / "text", text);
  ASSERT_EQ(run("objcopy --update-section .text=" + q(t / "text") + " " + q(SN_ENCLAVE) + " " + q(t / "changed")), 0);
  ASSERT_EQ(build(t / "rt.yaml", t / "c.eif", &other, " --supervisor " + q(t / "changed")), 0) << err();
  EXPECT_NE(a["PCR2"], other["PCR2"]);
}

TEST(SupervisedImage, StrippedCopyIsReproducibleAndRefusesNonElf) {
  Bytes a = stripped_copy(SN_ENCLAVE), b = stripped_copy(SN_ENCLAVE);
  EXPECT_EQ(a, b);
  EXPECT_LT(a.size(), fs::file_size(SN_ENCLAVE));
  TempDir t;
  eif_test::spit(t / "notelf", Bytes{'#', '!', '/', 'b', 'i', 'n', '/', 's', 'h', '\n'});
  EXPECT_EQ(test_support::code_of([&] { stripped_copy(t / "notelf"); }), Errc::kFormat);
  EXPECT_EQ(test_support::code_of([&] { stripped_copy(t / "missing"); }), Errc::kIo);
}

TEST_F(Supervised, OneLineOfTheConfigChangesPcr2) {
  nlohmann::json a, again, b;
  ASSERT_EQ(build(t / "rt.yaml", t / "a.eif", &a), 0) << err();
  ASSERT_EQ(build(t / "rt.yaml", t / "again.eif", &again), 0) << err();
  EXPECT_EQ(eif_test::slurp(t / "a.eif"), eif_test::slurp(t / "again.eif"));  // reproducible
  std::string changed = kRuntime;
  changed.replace(changed.find("api.example.com:443"), 19, "api.example.com:444");
  write(t / "rt2.yaml", changed);
  ASSERT_EQ(build(t / "rt2.yaml", t / "b.eif", &b), 0) << err();
  EXPECT_NE(a["PCR2"], b["PCR2"]);
  EXPECT_EQ(a["PCR1"], b["PCR1"]);  // kernel and bootstrap ramdisk: untouched
  // A comment is a change too: the file is measured byte for byte, as described.
  write(t / "rt3.yaml", kRuntime + "# reviewed\n");
  nlohmann::json c;
  ASSERT_EQ(build(t / "rt3.yaml", t / "c.eif", &c), 0) << err();
  EXPECT_NE(a["PCR2"], c["PCR2"]);
  // And supervising at all changes it.
  nlohmann::json plain;
  ASSERT_EQ(build("", t / "plain.eif", &plain), 0) << err();
  EXPECT_NE(a["PCR2"], plain["PCR2"]);
}

TEST_F(Supervised, DescribeShowsTheRuntimeConfig) {
  ASSERT_EQ(build(t / "rt.yaml", t / "a.eif"), 0) << err();
  std::string out;
  ASSERT_EQ(run(cli() + "describe " + q(t / "a.eif"), &out), 0);
  auto j = nlohmann::json::parse(out);
  EXPECT_TRUE(j.contains("Measurements"));
  ASSERT_TRUE(j.contains("Supervisor")) << out;
  EXPECT_TRUE(j["Supervisor"]["Supervised"].get<bool>());
  EXPECT_EQ(j["Supervisor"]["App"], (nlohmann::json{"/bin/app", "--port", "8080"}));
  EXPECT_EQ(j["Supervisor"]["RuntimeConfig"], kRuntime);
  EXPECT_EQ(j["Supervisor"]["RuntimeConfigPath"], kRuntimeConfigPath);

  ASSERT_EQ(run(cli() + "describe --runtime " + q(t / "a.eif"), &out), 0);
  EXPECT_EQ(out, "supervised: yes\napp: [\"/bin/app\",\"--port\",\"8080\"]\nruntime config (" + std::string(kRuntimeConfigPath) +
                     ", measured in PCR2):\n" + kRuntime);
  ASSERT_EQ(run(cli() + "describe --runtime --json " + q(t / "a.eif"), &out), 0);
  j = nlohmann::json::parse(out);
  EXPECT_TRUE(j["Supervised"].get<bool>());
  EXPECT_EQ(j["RuntimeConfig"], kRuntime);

  EXPECT_EQ(j["Artifacts"], nlohmann::json::array());

  // With artifacts: each one's pin, as configured, in JSON and after the config's text.
  const std::string header(64, 'a'), whole(64, 'b');
  write(t / "pins.yaml", kRuntime + "kms: {region: us-east-1}\nartifacts:\n"
                         "  - {name: model, source: host, path: /run/shield/m, key_id: alias/m, header_sha256: " + header + "}\n"
                         "  - {name: vocab, source: host, path: /run/shield/v, key_id: alias/v, sha256: " + whole + "}\n");
  ASSERT_EQ(build(t / "pins.yaml", t / "pins.eif"), 0) << err();
  ASSERT_EQ(run(cli() + "describe " + q(t / "pins.eif"), &out), 0);
  j = nlohmann::json::parse(out)["Supervisor"]["Artifacts"];
  ASSERT_EQ(j.size(), 2u) << out;
  EXPECT_EQ(j[0]["Name"], "model");
  EXPECT_EQ(j[0]["HeaderSha256"], header);
  EXPECT_FALSE(j[0].contains("Sha256"));
  EXPECT_EQ(j[1]["Name"], "vocab");
  EXPECT_EQ(j[1]["Sha256"], whole);
  ASSERT_EQ(run(cli() + "describe --runtime " + q(t / "pins.eif"), &out), 0);
  EXPECT_NE(out.find("\nartifact pins:\n  model (host): header_sha256 " + header + "\n  vocab (host): sha256 " + whole + "\n"),
            std::string::npos)
      << out;

  // Not supervised: describe is nitro-cli's, with no extra key.
  ASSERT_EQ(build("", t / "plain.eif"), 0) << err();
  ASSERT_EQ(run(cli() + "describe " + q(t / "plain.eif"), &out), 0);
  EXPECT_FALSE(nlohmann::json::parse(out).contains("Supervisor"));
  ASSERT_EQ(run(cli() + "describe --runtime " + q(t / "plain.eif"), &out), 0);
  EXPECT_EQ(out, "supervised: no (the EIF runs its command directly)\ncommand: [\"--port\",\"8080\"]\n");
  ASSERT_EQ(run(cli() + "describe --runtime --json " + q(t / "plain.eif"), &out), 0);
  EXPECT_FALSE(nlohmann::json::parse(out)["Supervised"].get<bool>());
}

TEST_F(Supervised, TheDefaultSupervisorIsTheOneBesideTheCli) {
  // SN_CLI and SN_ENCLAVE are built into the same folder.
  ASSERT_EQ(fs::path(SN_CLI).parent_path(), fs::path(SN_ENCLAVE).parent_path());
  ASSERT_EQ(build(t / "rt.yaml", t / "d.eif", nullptr, ""), 0) << err();
  ASSERT_EQ(build(t / "rt.yaml", t / "e.eif"), 0) << err();
  EXPECT_EQ(eif_test::slurp(t / "d.eif"), eif_test::slurp(t / "e.eif"));
}

TEST_F(Supervised, Refusals) {
  // A malformed config: a usage error naming the file and the key; nothing written.
  write(t / "bad.yaml", kRuntime + "egres: {}\n");
  EXPECT_EQ(build(t / "bad.yaml", t / "bad.eif"), 2);
  EXPECT_NE(err().find(t / "bad.yaml" + ": egres: unknown key"), std::string::npos) << err();
  EXPECT_NE(err().find("(line 8)"), std::string::npos) << err();
  EXPECT_FALSE(fs::exists(t / "bad.eif"));

  EXPECT_EQ(build(t / "missing.yaml", t / "m.eif"), 3);
  EXPECT_EQ(build(t / "rt.yaml", t / "n.eif", nullptr, " --supervisor " + q(t / "nope")), 3);
  EXPECT_FALSE(fs::exists(t / "n.eif"));
  // --supervisor alone is a usage error.
  EXPECT_EQ(run(cli() + build_args("") + " --supervisor " + q(SN_ENCLAVE) + " -o " + q(t / "s.eif") + " 2>/dev/null"), 2);

  // An image whose /opt is a symlink: the supervisor is never written through it.
  eif_test::spit(t / "app.tar", image_tar(kConfig, true));
  EXPECT_EQ(build(t / "rt.yaml", t / "l.eif"), 2);
  EXPECT_NE(err().find("/opt as a symlink"), std::string::npos) << err();
  EXPECT_FALSE(fs::exists(t / "l.eif"));
}

TEST(SupervisedImage, AddSupervisorRefusesAnAlreadySupervisedFilesystem) {
  std::vector<FsEntry> stream;
  SupervisorInput in;
  in.supervisor = SN_ENCLAVE;
  in.runtime_yaml = "version: 1\n";
  in.app = {"/bin/app"};
  std::vector<std::string> cmd = add_supervisor(stream, in);
  EXPECT_EQ(cmd.back(), "/bin/app");
  // Parent folders come before what they hold.
  for (size_t i = 0; i < stream.size(); ++i)
    for (size_t j = i + 1; j < stream.size(); ++j) EXPECT_FALSE(stream[i].name.starts_with(stream[j].name + "/")) << stream[i].name;
  auto again = test_support::thrown<Error>([&] { add_supervisor(stream, in); });
  ASSERT_TRUE(again);
  EXPECT_EQ(again->code(), Errc::kUsage);
  EXPECT_NE(std::string(again->what()).find("already has /opt/shield-nitro/bin/shield-nitro-enclave"), std::string::npos);
  in.app.clear();
  EXPECT_EQ(test_support::code_of([&] { std::vector<FsEntry> s; add_supervisor(s, in); }), Errc::kUsage);
  in.app = {"/bin/app"};
  in.runtime_yaml = "version: 1\nkms: {region: us-east-1}\nartifacts:\n"
                    "  - {name: m, source: /opt/m.sealed, path: /run/shield/m, key_id: alias/m, sha256: " + std::string(64, 'a') + "}\n";
  in.runtime_source = "rt.yaml";
  std::vector<FsEntry> without;
  EXPECT_EQ(test_support::message_of([&] { add_supervisor(without, in); }),
            "rt.yaml: artifacts[0].source: /opt/m.sealed is not a file in the image");
  std::vector<FsEntry> with(1);
  with[0].name = "opt/m.sealed";
  EXPECT_EQ(add_supervisor(with, in).back(), "/bin/app");
  in.runtime_yaml = "version: 2\n";
  EXPECT_EQ(test_support::code_of([&] { std::vector<FsEntry> s; add_supervisor(s, in); }), Errc::kFormat);
}

TEST_F(Supervised, RamdiskTakesTheSameOptions) {
  ASSERT_EQ(run(cli() + "ramdisk --image " + q(t / "app.tar") + " --runtime " + q(t / "rt.yaml") + " --supervisor " + q(SN_ENCLAVE) +
                " -o " + q(t / "c.cpio") + " 2>" + q(t / "err")),
            0)
      << err();
  FileSource cpio(t / "c.cpio");
  CpioReader records(cpio);
  CpioRecord r;
  std::string config, cmd;
  while (records.next(r)) {
    Bytes b = cpio.read_bytes(r.data_offset, static_cast<size_t>(r.size));
    if (r.name == "rootfs/etc/shield-nitro/runtime.yaml") config = to_string(b);
    if (r.name == "cmd") cmd = to_string(b);
  }
  EXPECT_EQ(config, kRuntime);
  EXPECT_NE(cmd.find(std::string(kSupervisorPath) + "\nrun\n--config\n"), std::string::npos) << cmd;
}
