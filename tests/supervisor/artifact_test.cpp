// Placing an artifact (install_artifact) in process: the plaintext lands whole and only when
// the sealed file is the pinned one; refusals leave nothing behind. Plus its speed, reported.
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>

#include "shield_nitro/core/byte_io.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/supervisor/artifact.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"

namespace {

using namespace shield_nitro;
using namespace shield_nitro::supervisor;
using shield_nitro::test_support::code_of;
using shield_nitro::test_support::TempDir;

std::string sha256_hex(ByteView b) {
  uint8_t md[SHA256_DIGEST_LENGTH];
  SHA256(b.data(), b.size(), md);
  return hex_encode(ByteView(md, sizeof md));
}

struct Sealed {
  SecureBytes key = SecureBytes(os_random().bytes(32));
  Bytes file;
  runtime::ArtifactConfig config;
  sealed::KeyRelease release() const {
    return [this](const sealed::Header&) { return key.clone(); };
  }
};

// Another file sealed under s's data key, key id and context (KMS would release its key too).
Bytes seal_like(const Sealed& s, ByteView plaintext) {
  return sealed::seal(plaintext, {"arn:aws:kms:us-east-1:111122223333:key/test", Bytes(64, 7), s.key.clone()},
                      s.config.encryption_context);
}

Sealed make(const TempDir& dir, ByteView plaintext) {
  Sealed s;
  s.config.name = "model";
  s.config.path = dir / "model.bin";
  s.config.encryption_context = {{"purpose", "model"}};
  s.file = seal_like(s, plaintext);
  s.config.sha256 = sha256_hex(s.file);
  return s;
}

InstallOptions own_user() { return {.set_owner = false}; }

TEST(SupervisorArtifact, PlacesThePlaintextReadOnly) {
  TempDir dir;
  std::string text(300000, 'p');
  Sealed s = make(dir, as_bytes(text));
  MemorySource in(s.file);
  InstallResult r = install_artifact(s.config, in, s.file.size(), s.release(), own_user());
  EXPECT_EQ(r.sealed_bytes, s.file.size());
  EXPECT_EQ(r.plaintext_bytes, text.size());
  EXPECT_EQ(read_text_file(s.config.path), text);
  struct stat st{};
  ASSERT_EQ(::stat(s.config.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0400u);
  EXPECT_EQ(dir.entries(), 1u) << "no temporary left";
}

TEST(SupervisorArtifact, AnEmptyArtifactIsAnEmptyFile) {
  TempDir dir;
  Sealed s = make(dir, {});
  MemorySource in(s.file);
  EXPECT_EQ(install_artifact(s.config, in, s.file.size(), s.release(), own_user()).plaintext_bytes, 0u);
  EXPECT_EQ(read_text_file(s.config.path), "");
}

TEST(SupervisorArtifact, RefusalsLeaveNothing) {
  TempDir dir;
  Sealed s = make(dir, as_bytes(std::string(100000, 'q')));
  {
    MemorySource in(s.file);  // announced shorter than it is
    EXPECT_EQ(code_of([&] { install_artifact(s.config, in, s.file.size() - 1, s.release(), own_user()); }), Errc::kVerify);
  }
  {
    Bytes cut(s.file.begin(), s.file.end() - 1);  // announced longer than it is
    MemorySource in(cut);
    EXPECT_NE(code_of([&] { install_artifact(s.config, in, s.file.size(), s.release(), own_user()); }), Errc::kInternal);
  }
  {
    runtime::ArtifactConfig other = s.config;  // another pinned digest
    other.sha256 = std::string(64, '0');
    MemorySource in(s.file);
    EXPECT_EQ(code_of([&] { install_artifact(other, in, s.file.size(), s.release(), own_user()); }), Errc::kVerify);
  }
  {
    runtime::ArtifactConfig other = s.config;  // another context: refused before the key is asked for
    other.encryption_context = {{"purpose", "other"}};
    bool asked = false;
    MemorySource in(s.file);
    EXPECT_EQ(code_of([&] {
                install_artifact(other, in, s.file.size(), [&](const sealed::Header&) {
                  asked = true;
                  return s.key.clone();
                }, own_user());
              }),
              Errc::kPolicy);
    EXPECT_FALSE(asked);
  }
  {
    MemorySource in(s.file);  // bigger than the storage allows
    InstallOptions small = own_user();
    small.max_plaintext = 1000;
    EXPECT_EQ(code_of([&] { install_artifact(s.config, in, s.file.size(), s.release(), small); }), Errc::kPolicy);
  }
  {
    Bytes tampered = s.file;  // a stream byte changed, its digest pinned: authentication refuses it
    tampered[tampered.size() - 20] ^= 1;
    runtime::ArtifactConfig pinned = s.config;
    pinned.sha256 = sha256_hex(tampered);
    MemorySource in(tampered);
    EXPECT_EQ(code_of([&] { install_artifact(pinned, in, tampered.size(), s.release(), own_user()); }), Errc::kAuth);
  }
  EXPECT_EQ(dir.entries(), 0u) << "a refused artifact left a file";
}

// Open descriptors whose target lies in dir (an unlinked temporary shows as "dir/#n (deleted)").
size_t open_files_in(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.rfind(dir + "/", 0) == 0) ++n;
  }
  return n;
}

// Many times the hasher's queue (8 x 1 MiB), with bytes that differ everywhere: the digest the
// background thread computes must be of every block, in order.
Bytes varied(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  return b;
}

TEST(SupervisorArtifact, ALargeArtifactIsHashedWhole) {
  TempDir dir;
  Bytes plain = varied(20u << 20);
  Sealed s = make(dir, plain);
  MemorySource in(s.file);
  InstallResult r = install_artifact(s.config, in, s.file.size(), s.release(), own_user());
  EXPECT_EQ(r.sealed_bytes, s.file.size());
  EXPECT_EQ(read_text_file(s.config.path), to_string(plain));
}

// A file sealed under the same key whose plaintext differs only in its last byte: every record
// authenticates, so only the digest, known after the last byte, refuses it; by then the
// plaintext is decrypted, and none of it may stay reachable (no file, no open temporary).
TEST(SupervisorArtifact, AFileThatDiffersOnlyAtItsEndLeavesNothing) {
  TempDir dir;
  Bytes plain = varied(20u << 20);
  Sealed s = make(dir, plain);
  Bytes other_plain = plain;
  other_plain.back() ^= 1;
  Bytes other = seal_like(s, other_plain);
  MemorySource in(other);
  EXPECT_EQ(code_of([&] { install_artifact(s.config, in, other.size(), s.release(), own_user()); }), Errc::kVerify);
  EXPECT_FALSE(std::filesystem::exists(s.config.path));
  EXPECT_EQ(dir.entries(), 0u) << "a refused artifact left a file";
  EXPECT_EQ(open_files_in(dir.path()), 0u) << "the refused plaintext is still open";
}

// The same sealed file pinned by its prefix's digest (sealed header + stream header) instead of
// the whole file's.
Sealed header_pinned(Sealed s) {
  s.config.header_sha256 = sealed::parse_prefix(s.file).prefix_digest_hex();
  s.config.sha256.clear();
  return s;
}

// A release that counts its calls (KMS's stand-in).
struct CountingRelease {
  const Sealed& s;
  int calls = 0;
  sealed::KeyRelease fn() {
    return [this](const sealed::Header&) {
      ++calls;
      return s.key.clone();
    };
  }
};

// install_artifact refuses file on its prefix digest (kVerify naming both digests) before KMS is asked.
void expect_header_pin_refused(const runtime::ArtifactConfig& config, const Bytes& file, CountingRelease& kms) {
  MemorySource in(file);
  auto e = test_support::thrown<Error>([&] { install_artifact(config, in, file.size(), kms.fn(), own_user()); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), Errc::kVerify);
  EXPECT_NE(std::string(e->what()).find("header_sha256 is " + sealed::parse_prefix(file).prefix_digest_hex() +
                                        ", the runtime config pins " + config.header_sha256),
            std::string::npos)
      << e->what();
  EXPECT_EQ(kms.calls, 0) << "KMS was asked for a substituted file's key";
}

TEST(SupervisorArtifact, AHeaderPinPlacesThePlaintext) {
  TempDir dir;
  Bytes plain = varied(3u << 20);
  Sealed s = header_pinned(make(dir, plain));
  CountingRelease kms{s};
  MemorySource in(s.file);
  InstallResult r = install_artifact(s.config, in, s.file.size(), kms.fn(), own_user());
  EXPECT_EQ(r.sealed_bytes, s.file.size());
  EXPECT_EQ(read_text_file(s.config.path), to_string(plain));
  EXPECT_EQ(kms.calls, 1);
}

// Another sealed file (its own data key, the same key id and context, so KMS would release its
// key to the enclave) under a header pin: refused on its header, before KMS is asked.
TEST(SupervisorArtifact, AHeaderPinRefusesASubstitutedFileBeforeKms) {
  TempDir dir;
  Sealed s = header_pinned(make(dir, as_bytes(std::string(200000, 'm'))));
  Sealed other = make(dir, as_bytes(std::string(200000, 'm')));
  CountingRelease kms{other};
  expect_header_pin_refused(s.config, other.file, kms);
  // A changed header byte (the context's value: still well-formed) is refused the same way.
  Bytes changed = s.file;
  const std::string_view value = "model";
  auto at = std::search(changed.begin(), changed.end(), value.begin(), value.end());
  ASSERT_NE(at, changed.end());
  *at = 'M';
  MemorySource in2(changed);
  runtime::ArtifactConfig any_context = s.config;
  any_context.encryption_context = {{"purpose", "Model"}};
  EXPECT_EQ(code_of([&] { install_artifact(any_context, in2, changed.size(), kms.fn(), own_user()); }), Errc::kVerify);
  EXPECT_EQ(kms.calls, 0);
  EXPECT_EQ(dir.entries(), 0u);
}

// A body byte changed under the pinned header: the header passes, the record does not, and the
// plaintext written before it is gone.
TEST(SupervisorArtifact, AHeaderPinRefusesATamperedBodyLeavingNothing) {
  TempDir dir;
  Sealed s = header_pinned(make(dir, varied(5u << 20)));
  for (size_t from_end : {size_t{20}, s.file.size() / 2}) {
    Bytes tampered = s.file;
    tampered[tampered.size() - from_end] ^= 1;
    CountingRelease kms{s};
    MemorySource in(tampered);
    EXPECT_EQ(code_of([&] { install_artifact(s.config, in, tampered.size(), kms.fn(), own_user()); }), Errc::kAuth);
    EXPECT_EQ(kms.calls, 1);
  }
  {
    Bytes cut(s.file.begin(), s.file.end() - 17);  // cut, and announced so
    MemorySource in(cut);
    EXPECT_EQ(code_of([&] { install_artifact(s.config, in, cut.size(), s.release(), own_user()); }), Errc::kAuth);
  }
  EXPECT_FALSE(std::filesystem::exists(s.config.path));
  EXPECT_EQ(dir.entries(), 0u) << "a refused artifact left a file";
  EXPECT_EQ(open_files_in(dir.path()), 0u) << "the refused plaintext is still open";
}

// Two files sealed under ONE data key have the same sealed header (it holds no random value of
// its own), but not the same prefix: the stream header's random salt follows it. So the
// header_sha256 pin tells them apart as a whole-file pin does, and refuses the substitution
// before KMS is asked; and the other file's records behind the pinned prefix do not open.
TEST(SupervisorArtifact, AHeaderPinTellsApartFilesSealedUnderOneDataKeyBeforeKms) {
  TempDir dir;
  Sealed s = header_pinned(make(dir, as_bytes(std::string(70000, 'a'))));
  Bytes other = seal_like(s, as_bytes(std::string(70000, 'b')));
  ASSERT_EQ(sealed::parse_header(other).digest_hex(), sealed::parse_header(s.file).digest_hex());
  const std::string other_pin = sealed::parse_prefix(other).prefix_digest_hex();
  ASSERT_NE(other_pin, s.config.header_sha256);
  CountingRelease kms{s};
  expect_header_pin_refused(s.config, other, kms);
  // The other file's records behind the pinned prefix: the pin passes, the first record fails.
  const size_t prefix = sealed::parse_prefix(s.file).prefix_size();
  Bytes spliced(s.file.begin(), s.file.begin() + static_cast<ptrdiff_t>(prefix));
  spliced.insert(spliced.end(), other.begin() + static_cast<ptrdiff_t>(prefix), other.end());
  MemorySource spliced_in(spliced);
  EXPECT_EQ(code_of([&] { install_artifact(s.config, spliced_in, spliced.size(), kms.fn(), own_user()); }), Errc::kAuth);
  EXPECT_EQ(kms.calls, 1);
  EXPECT_EQ(dir.entries(), 0u) << "a refused artifact left a file";
}

TEST(SupervisorArtifact, AConfigWithBothOrNeitherPinIsRefused) {
  TempDir dir;
  Sealed s = make(dir, as_bytes(std::string(1000, 'b')));
  runtime::ArtifactConfig both = s.config, neither = s.config;
  both.header_sha256 = sealed::parse_prefix(s.file).prefix_digest_hex();
  neither.sha256.clear();
  for (const auto* c : {&both, &neither}) {
    MemorySource in(s.file);
    EXPECT_EQ(code_of([&] { install_artifact(*c, in, s.file.size(), s.release(), own_user()); }), Errc::kUsage);
  }
  EXPECT_EQ(dir.entries(), 0u);
}

}  // namespace
