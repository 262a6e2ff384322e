// Tar, docker save / OCI, cpio and ELF readers: semantics and hostile inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/cpio.h"
#include "shield_nitro/eif/image.h"
#include "shield_nitro/eif/ramdisk.h"
#include "shield_nitro/eif/rootfs.h"
#include "shield_nitro/eif/tar.h"
#include "test_util.h"

using namespace shield_nitro;
using namespace shield_nitro::eif;
using eif_test::TarWriter;
using eif_test::TempDir;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<MemorySource> mem(const Bytes& b) { return std::make_shared<MemorySource>(b); }

std::string names(const std::vector<FsEntry>& s) {
  std::string out;
  for (const auto& e : s) out += e.name + (e.type == FileType::kDirectory ? "/" : "") + (e.type == FileType::kHardlink ? "=>" + e.link : "") + " ";
  return out;
}

std::string content(const FsEntry& e) {
  std::string out;
  stream_data(e.data, e.size, [&](ByteView b) { out += to_string(b); });
  return out;
}

const FsEntry* find(const std::vector<FsEntry>& s, const std::string& name) {
  for (const auto& e : s)
    if (e.name == name) return &e;
  return nullptr;
}

Bytes layer1() {
  TarWriter t;
  t.dir("bin/");
  t.file("bin/tool", "tool-v1", 0755);
  t.hardlink("bin/tool2", "bin/tool");
  t.dir("etc/");
  t.file("etc/passwd", "root:x:0:0\n");
  t.dir("opt/");
  t.file("opt/old", "old");
  t.file("gone", "bye");
  return t.finish();
}

Bytes layer2() {
  TarWriter t;
  t.file(".wh.gone", "");
  t.dir("opt/");
  t.file("opt/.wh..wh..opq", "");
  t.file("opt/new", "new");
  t.file("bin/tool", "tool-v2", 0755);  // breaks the hard link, like an overlay copy-up
  return t.finish();
}

Bytes docker_save(const nlohmann::json& config, bool gzip_second) {
  TarWriter t;
  std::string cfg = config.dump();
  t.file("abc.json", cfg);
  t.file("l1/layer.tar", to_string(layer1()));
  Bytes l2 = layer2();
  t.file("l2/layer.tar", to_string(gzip_second ? eif_test::gzip(l2) : l2));
  t.file("manifest.json", R"([{"Config":"abc.json","RepoTags":["hello:v1"],"Layers":["l1/layer.tar","l2/layer.tar"]}])");
  return t.finish();
}

}  // namespace

TEST(EifImage, DockerSaveLayersWhiteoutsOpaqueAndConfig) {
  nlohmann::json cfg = {{"config", {{"Cmd", {"/bin/tool", "-x"}}, {"Entrypoint", {"/ignored"}}, {"Env", {"A=1"}}}}};
  for (bool gz : {false, true}) {
    Bytes tar = docker_save(cfg, gz);
    Image img = load_image_tar(mem(tar), Arch::kX86_64, "");
    EXPECT_EQ(img.name, "hello");
    EXPECT_EQ(img.id.size(), 64u);
    EXPECT_EQ(image_command(img.config), (std::vector<std::string>{"/bin/tool", "-x"}));
    EXPECT_EQ(*img.config.env, std::vector<std::string>{"A=1"});
    const auto& s = img.export_stream;
    EXPECT_EQ(find(s, "gone"), nullptr) << names(s);
    EXPECT_EQ(find(s, "opt/old"), nullptr) << names(s);
    ASSERT_NE(find(s, "opt/new"), nullptr);
    EXPECT_EQ(content(*find(s, "bin/tool")), "tool-v2");
    EXPECT_EQ(content(*find(s, "bin/tool2")), "tool-v1");
    ASSERT_NE(find(s, ".dockerenv"), nullptr);  // Docker's init layer
    EXPECT_EQ(find(s, "etc/mtab")->link, "/proc/mounts");
    // Depth-first lexical order, folders before their contents.
    EXPECT_LT(find(s, "bin/tool") - s.data(), find(s, "dev") - s.data());
    EXPECT_LT(find(s, "dev/pts") - s.data(), find(s, "etc") - s.data());
  }
}

TEST(EifImage, HardLinksInOneLayerExportAsLinks) {
  TarWriter l;
  l.file("a", "same");
  l.hardlink("b", "a");
  TarWriter t;
  t.file("c.json", R"({"config":{"Entrypoint":["/a"]}})");
  t.file("l.tar", to_string(l.finish()));
  t.file("manifest.json", R"([{"Config":"c.json","Layers":["l.tar"]}])");
  Bytes tar = t.finish();
  Image img = load_image_tar(mem(tar), Arch::kX86_64, "");
  EXPECT_EQ(find(img.export_stream, "b")->type, FileType::kHardlink);
  EXPECT_EQ(find(img.export_stream, "b")->link, "a");
  EXPECT_EQ(image_command(img.config), std::vector<std::string>{"/a"});  // no CMD: ENTRYPOINT
  EXPECT_FALSE(img.config.env.has_value());
}

TEST(EifImage, OciLayoutWithPlatformIndex) {
  TarWriter l;
  l.file("hello", "hi");
  Bytes layer = eif_test::gzip(l.finish());
  std::string cfg = R"({"config":{"Cmd":["/hello"]}})";
  std::string manifest = R"({"config":{"digest":"sha256:cfg"},"layers":[{"digest":"sha256:layer"}]})";
  std::string inner = R"({"manifests":[{"digest":"sha256:other","platform":{"architecture":"s390x"}},{"digest":"sha256:man","platform":{"architecture":"arm64"}}]})";
  TarWriter t;
  t.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  t.file("index.json", R"({"manifests":[{"digest":"sha256:idx"}]})");
  t.file("blobs/sha256/idx", inner);
  t.file("blobs/sha256/man", manifest);
  t.file("blobs/sha256/cfg", cfg);
  t.file("blobs/sha256/layer", to_string(layer));
  Bytes tar = t.finish();
  Image img = load_image_tar(mem(tar), Arch::kAarch64, "");
  EXPECT_EQ(content(*find(img.export_stream, "hello")), "hi");
  EXPECT_EQ(image_command(img.config), std::vector<std::string>{"/hello"});
}

TEST(EifImage, NoCommandIsAUsageError) {
  ImageConfig c;
  EXPECT_THROW(image_command(c), Error);
  EXPECT_THROW(lines_file({"a\nb"}, "cmd"), Error);
  EXPECT_EQ(to_string(lines_file({}, "env")), "");
}

TEST(EifTarNegative, TraversalAbsoluteDuplicatesAndSymlinkEscapes) {
  using Make = void (*)(TarWriter&);
  const Make hostile[] = {
      [](TarWriter& t) { t.file("../evil", "x"); },
      [](TarWriter& t) { t.file("a/../../evil", "x"); },
      [](TarWriter& t) { t.file("/etc/passwd", "x"); },
      [](TarWriter& t) { t.hardlink("x", "../../etc/shadow"); },
      [](TarWriter& t) {
        t.file("dup", "1");
        t.file("./dup", "2");
      },
  };
  for (Make make : hostile) {
    TarWriter t;
    make(t);
    Bytes b = t.finish();
    EXPECT_THROW(read_export_tar(mem(b)), Error);
  }
  // Layer 1 plants a symlink to /etc, layer 2 writes through it: refused.
  TarWriter l1, l2;
  l1.symlink("evil", "/etc");
  l2.file("evil/passwd", "pwned");
  FsTree tree;
  auto b1 = l1.finish(), b2 = l2.finish();
  tree.apply_layer(read_export_tar(mem(b1)));
  try {
    tree.apply_layer(read_export_tar(mem(b2)));
    ADD_FAILURE() << "symlink escape accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("symlink"), std::string::npos);
  }
}

TEST(EifTarNegative, ChecksumTruncationAndTypes) {
  TarWriter t;
  t.file("a", std::string(1000, 'x'));
  Bytes good = t.finish();
  Bytes bad = good;
  bad[0] ^= 1;
  EXPECT_THROW(read_export_tar(mem(bad)), Error);
  Bytes cut(good.begin(), good.begin() + 700);
  EXPECT_THROW(read_export_tar(mem(cut)), Error);
  TarWriter s;
  s.raw("sock", 'S', "", "", 0644);  // GNU sparse: unsupported
  EXPECT_THROW(read_export_tar(mem(s.finish())), Error);
  EXPECT_TRUE(read_export_tar(mem(Bytes{})).empty());
  TarWriter img;
  img.file("x", "y");
  EXPECT_THROW(load_image_tar(mem(img.finish()), Arch::kX86_64, ""), Error);  // no manifest
  Bytes notgz = {0x1f, 0x8b, 1, 2, 3};
  EXPECT_THROW(maybe_gunzip(mem(notgz), ""), Error);
}

// A gzip bomb stops at the bound (Error(kPolicy)) and leaves no scratch file; within the bound
// the scratch file has no name either.
TEST(EifTarNegative, GzipInflatesOnlyUpToTheBound) {
  TempDir scratch;
  Bytes zeros(size_t{3} << 20, 0);
  Bytes gz = eif_test::gzip(zeros);
  try {
    maybe_gunzip(mem(gz), scratch.path(), uint64_t{1} << 20);
    ADD_FAILURE() << "3 MiB inflated under a 1 MiB bound";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kPolicy);
    EXPECT_NE(std::string(e.what()).find("inflates past 1 MiB"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(scratch.path()));
  auto src = maybe_gunzip(mem(gz), scratch.path(), zeros.size());  // exactly at the bound: fine
  EXPECT_EQ(src->size(), zeros.size());
  EXPECT_TRUE(fs::is_empty(scratch.path()));
  // Through an image: the error names the layer.
  TarWriter l;
  l.file("big", to_string(zeros));
  TarWriter t;
  t.file("c.json", R"({"config":{"Cmd":["/big"]}})");
  t.file("bomb.tar.gz", to_string(eif_test::gzip(l.finish())));
  t.file("manifest.json", R"([{"Config":"c.json","Layers":["bomb.tar.gz"]}])");
  Bytes tar = t.finish();
  try {
    load_image_tar(mem(tar), Arch::kX86_64, scratch.path(), uint64_t{1} << 20);
    ADD_FAILURE() << "image with a bomb layer loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kPolicy);
    EXPECT_NE(std::string(e.what()).find("layer 'bomb.tar.gz'"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(scratch.path()));
}

TEST(EifCpio, ReaderRoundTripAndLimits) {
  std::vector<CpioEntry> entries = customer_ramdisk({}, {"/x"}, {});
  Bytes b;
  write_cpio(entries, [&](ByteView v) { b.insert(b.end(), v.begin(), v.end()); });
  EXPECT_EQ(b.size() % 512, 0u);
  MemorySource src(b);
  CpioReader r(src);
  CpioRecord rec;
  size_t n = 0;
  while (r.next(rec)) ++n;
  EXPECT_EQ(n, entries.size());
  Bytes bad = b;
  bad[0] = 'x';
  MemorySource bsrc(bad);
  CpioReader br(bsrc);
  EXPECT_THROW(br.next(rec), Error);
  Bytes cut(b.begin(), b.begin() + 50);
  MemorySource csrc(cut);
  CpioReader cr(csrc);
  EXPECT_THROW(cr.next(rec), Error);
}

namespace {

Bytes cpio_of(const std::vector<CpioEntry>& entries) {
  Bytes b;
  write_cpio(entries, [&](ByteView v) { b.insert(b.end(), v.begin(), v.end()); });
  return b;
}

CpioEntry entry(const std::string& name, uint32_t mode, const std::string& data = "") {
  CpioEntry e;
  e.name = name;
  e.mode = mode;
  e.size = data.size();
  e.data.inline_data = Bytes(data.begin(), data.end());
  return e;
}

}  // namespace

TEST(EifCpio, UnpackNeverWritesOutside) {
  TempDir t;
  fs::create_directories(t / "outside");
  // Symlink to outside, then a file through it.
  Bytes evil = cpio_of({entry("link", kModeLink | 0777, t / "outside"), entry("link/pwned", kModeReg | 0644, "x")});
  EXPECT_THROW(unpack_cpio(MemorySource(evil), t / "out1"), Error);
  EXPECT_TRUE(fs::is_empty(t / "outside"));
  Bytes dots = cpio_of({entry("../escaped", kModeReg | 0644, "x")});
  EXPECT_THROW(unpack_cpio(MemorySource(dots), t / "out2"), Error);
  EXPECT_FALSE(fs::exists(t / "escaped"));
  // An absolute name is refused rather than written at the host path.
  Bytes abs = cpio_of({entry("/abs", kModeReg | 0644, "x")});
  EXPECT_THROW(unpack_cpio(MemorySource(abs), t / "out3"), Error);
  // Duplicates replace, like the kernel's unpacker; a symlink replaced by a file is not followed.
  Bytes dup = cpio_of({entry("d", kModeDir | 0755), entry("f", kModeLink | 0777, t / "outside/victim"),
                       entry("f", kModeReg | 0600, "second"), entry("d", kModeDir | 0700), entry("fifo", kModeFifo | 0644)});
  unpack_cpio(MemorySource(dup), t / "out4");
  EXPECT_EQ(eif_test::slurp_text(t / "out4/f"), "second");
  EXPECT_FALSE(fs::exists(t / "outside/victim"));
  EXPECT_EQ(fs::status(t / "out4/d").permissions(), fs::perms(0700));
}

TEST(EifElf, ParsesTheCliAndBuildsARootfs) {
  Bytes zeros(100, 0);
  MemorySource junk(zeros);
  EXPECT_THROW(parse_elf(junk), Error);
  FileSource cli(SN_CLI);
  ElfInfo info = parse_elf(cli);
  EXPECT_FALSE(info.interpreter.empty());
  EXPECT_NE(std::find(info.needed.begin(), info.needed.end(), "libc.so.6"), info.needed.end());
  TempDir t;
  eif_test::spit(t / "cfg", Bytes{'c'});
  make_rootfs(SN_CLI, "/bin/app", {{t / "cfg", "/etc/app.json"}}, t / "root");
  EXPECT_TRUE(fs::is_regular_file(t / "root/bin/app"));
  EXPECT_TRUE(fs::is_regular_file(t / ("root" + info.interpreter)));
  // The program is packed stripped (the build output keeps its symbols) and still runs, with
  // the packed loader.
  EXPECT_EQ(eif_test::slurp(t / "root/bin/app"), stripped_copy(SN_CLI));
  EXPECT_LT(fs::file_size(t / "root/bin/app"), fs::file_size(SN_CLI));
  std::string packed_version, built_version;
  ASSERT_EQ(eif_test::run(t / ("root" + info.interpreter) + " " + t / "root/bin/app --version", &packed_version), 0);
  ASSERT_EQ(eif_test::run(std::string(SN_CLI) + " --version", &built_version), 0);
  EXPECT_EQ(packed_version, built_version);
  EXPECT_EQ(eif_test::slurp_text(t / "root/etc/app.json"), "c");
  EXPECT_THROW(make_rootfs(SN_CLI, "/bin/app", {}, t / "root"), Error);  // exists, not empty
  EXPECT_THROW(make_rootfs(t / "cfg", "/bin/app", {}, t / "r2"), Error);  // not ELF
  EXPECT_FALSE(fs::exists(t / "r2"));
}
