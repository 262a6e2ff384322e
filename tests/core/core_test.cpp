#include <gtest/gtest.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/core/reader.h"
#include "shield_nitro/core/secure_bytes.h"
#include "support/temp_dir.h"

using namespace shield_nitro;

TEST(Hex, RoundTripAndRejects) {
  Bytes b = {0x00, 0x7f, 0x80, 0xff};
  EXPECT_EQ(hex_encode(b), "007f80ff");
  EXPECT_EQ(hex_decode("007F80ff"), b);
  EXPECT_THROW(hex_decode("abc"), Error);
  EXPECT_THROW(hex_decode("zz"), Error);
  EXPECT_TRUE(hex_decode("").empty());
}

TEST(Base64, Rfc4648Vectors) {
  const char* plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char* enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(base64_encode(as_bytes(plain[i])), enc[i]);
    EXPECT_EQ(to_string(base64_decode(enc[i])), plain[i]);
  }
  EXPECT_EQ(to_string(base64_decode(" Zm9v\n")), "foo");
  EXPECT_THROW(base64_decode("Zm9"), Error);
  EXPECT_THROW(base64_decode("Zm=v"), Error);
  EXPECT_THROW(base64_decode("Zm9v!A=="), Error);
}

TEST(CtEqual, ComparesContentAndLength) {
  Bytes a = {1, 2, 3}, b = {1, 2, 3}, c = {1, 2, 4}, d = {1, 2};
  EXPECT_TRUE(ct_equal(a, b));
  EXPECT_FALSE(ct_equal(a, c));
  EXPECT_FALSE(ct_equal(a, d));
}

TEST(ByteReader, NeverOverruns) {
  Bytes buf = {0x01, 0x02, 0x03, 0x04, 0x05};
  ByteReader r(buf);
  uint16_t v16;
  ASSERT_TRUE(r.u16be(v16));
  EXPECT_EQ(v16, 0x0102);
  uint32_t v32;
  EXPECT_FALSE(r.u32be(v32));  // only 3 left: fails, consumes nothing
  EXPECT_EQ(r.remaining(), 3u);
  ByteView v;
  EXPECT_TRUE(r.take(3, v));
  EXPECT_EQ(v[2], 0x05);
  uint8_t b;
  EXPECT_FALSE(r.u8(b));
  ByteReader le(buf);
  ASSERT_TRUE(le.u32le(v32));
  EXPECT_EQ(v32, 0x04030201u);
}

TEST(SecureBytes, MoveAndResize) {
  SecureBytes s(as_bytes("secret"));
  SecureBytes t = std::move(s);
  EXPECT_EQ(t.size(), 6u);
  EXPECT_EQ(s.size(), 0u);
  t.append(as_bytes("!!"));
  EXPECT_EQ(to_string(t.view()), "secret!!");
  t.resize(3);
  EXPECT_EQ(to_string(t.view()), "sec");
  SecureBytes c = t.clone();
  t.clear();
  EXPECT_EQ(to_string(c.view()), "sec");
}

TEST(SecureBytes, ResizeZeroFillsButResizeForOverwriteKeepsOnlyThePrefix) {
  SecureBytes s(as_bytes("key"));
  s.resize(6);
  EXPECT_EQ(s.view()[3], 0);
  EXPECT_EQ(s.view()[5], 0);
  s.resize_for_overwrite(2);
  EXPECT_EQ(to_string(s.view()), "ke");
  s.resize_for_overwrite(1024);  // reallocates: the prefix moves with it
  ASSERT_EQ(s.size(), 1024u);
  EXPECT_EQ(to_string(s.view().first(2)), "ke");
  uint8_t buf[16];
  std::memset(buf, 0xAB, sizeof buf);
  secure_wipe(buf, sizeof buf);
  for (uint8_t b : buf) EXPECT_EQ(b, 0);
  secure_wipe(nullptr, 0);  // a no-op, not a crash
}

TEST(SecureBytes, LargeBuffersKeepTheSameSemantics) {
  // From 4 MiB on, SecureBytes maps its own huge-page-aligned memory; nothing else changes.
  const size_t big = (size_t{5} << 20) + 3;
  SecureBytes s(as_bytes("model"));
  s.resize(big);  // small -> mapped: the prefix moves, the rest is zero
  ASSERT_EQ(s.size(), big);
  EXPECT_EQ(to_string(s.view().first(5)), "model");
  EXPECT_EQ(s.view()[big - 1], 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s.data()) % (size_t{2} << 20), 0u);
  s.data()[big - 1] = 0x7f;
  s.append(Bytes(size_t{4} << 20, 0x11));  // mapped -> bigger mapped
  EXPECT_EQ(s.view()[big - 1], 0x7f);
  EXPECT_EQ(s.view()[s.size() - 1], 0x11);
  SecureBytes moved = std::move(s);
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(to_string(moved.view().first(5)), "model");
  moved.resize(4);  // shrinking keeps the mapping; clear() wipes and unmaps it
  EXPECT_EQ(to_string(moved.view()), "mode");
  moved.clear();
  EXPECT_TRUE(moved.empty());
  SecureBytes exact;
  exact.resize_for_overwrite(size_t{8} << 20);  // what an artifact of announced size gets
  std::memset(exact.data(), 0x22, exact.size());
  EXPECT_EQ(exact.clone().view()[(size_t{8} << 20) - 1], 0x22);
}

namespace {
// The VmFlags of the mapping that holds p, from /proc/self/smaps ("dd" = excluded from core dumps).
std::string vm_flags_of(const void* p) {
  std::string smaps = read_text_file("/proc/self/smaps");
  auto addr = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  size_t pos = 0;
  while (pos < smaps.size()) {
    size_t end = smaps.find('\n', pos);
    std::string line = smaps.substr(pos, end - pos);
    pos = end == std::string::npos ? smaps.size() : end + 1;
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) {  // a mapping's header line
      inside = addr >= lo && addr < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}
}  // namespace

TEST(SecureBytes, EveryAllocationIsExcludedFromCoreDumps) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under ASan small buffers stay on the heap (see secure_bytes.cpp)";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  GTEST_SKIP() << "under ASan small buffers stay on the heap (see secure_bytes.cpp)";
#endif
#endif
  for (size_t n : {size_t{1}, size_t{32}, size_t{100}, size_t{4096}, size_t{3} << 20, size_t{8} << 20}) {
    SecureBytes s(n);
    std::string flags = vm_flags_of(s.data());
    ASSERT_FALSE(flags.empty()) << n << " bytes: no mapping found";
    EXPECT_NE((flags + " ").find(" dd "), std::string::npos) << n << " bytes: " << flags;
  }
}

TEST(Random, ScriptedAndUniform) {
  ScriptedRandom r(Bytes{250, 5, 1, 2});
  // uniform_small(32,128): range 97, limit 194: 250 is rejected, 5 -> 37.
  EXPECT_EQ(r.uniform_small(32, 128), 37u);
  Bytes two(2);
  r.fill(two);
  EXPECT_EQ(two, (Bytes{1, 2}));
  EXPECT_THROW(r.fill(two), Error);
  EXPECT_NE(os_random().bytes(32), os_random().bytes(32));
}

TEST(Errors, ExitCodes) {
  EXPECT_EQ(exit_code(Errc::kAuth), 1);
  EXPECT_EQ(exit_code(Errc::kUsage), 2);
  EXPECT_EQ(exit_code(Errc::kIo), 3);
  EXPECT_EQ(errc_from_name(errc_name(Errc::kPolicy)), Errc::kPolicy);
}

TEST(FileIo, AtomicWriteLeavesNothingOnFailure) {
  test_support::TempDir dir;
  std::string path = dir / "out.bin";
  {
    AtomicFileWriter w(path, 0600);
    w.write(as_bytes("partial"));
    // destroyed without commit: as if an exception unwound
  }
  EXPECT_FALSE(file_exists(path));
  EXPECT_EQ(dir.entries(), 0u);
  write_file_atomic(path, as_bytes("whole"), 0600);
  EXPECT_EQ(read_text_file(path), "whole");
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_THROW(read_file(dir / "missing"), Error);
}

TEST(FileIo, AnonymousOutputHasNoNameUntilCommit) {
  test_support::TempDir dir;
  std::string path = dir / "out.bin";
  write_file_atomic(path, as_bytes("old contents"), 0644);
  {
    AtomicFileWriter w(path, 0600);
    ASSERT_TRUE(w.anonymous()) << "the test folder's filesystem has no O_TMPFILE";
    w.write(as_bytes("new ..... data"));
    w.write_at(4, as_bytes("whole"));
    EXPECT_EQ(dir.entries(), 1u);  // only the old file: nothing visible while writing
    EXPECT_EQ(read_text_file(path), "old contents");
    w.commit();
  }
  EXPECT_EQ(read_text_file(path), "new whole data");
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_nlink, 1u);  // the hidden name used to replace the old file is gone
  EXPECT_EQ(dir.entries(), 1u);
}

TEST(FileIo, NamedFallbackIsRemovedWhenAbandoned) {
  test_support::TempDir dir;
  std::string path = dir / "out.bin";
  {
    AtomicFileWriter w(path, 0600, AtomicFileWriter::Temp::kNamed);
    EXPECT_FALSE(w.anonymous());
    w.write(as_bytes("partial"));
    EXPECT_EQ(dir.entries(), 1u);  // the hidden temporary
  }
  EXPECT_EQ(dir.entries(), 0u);
  {
    AtomicFileWriter w(path, 0600, AtomicFileWriter::Temp::kNamed);
    w.write(as_bytes("done"));
    w.commit();
  }
  EXPECT_EQ(read_text_file(path), "done");
  EXPECT_EQ(dir.entries(), 1u);
}

// An interrupt in the middle of a write: exit 128+signal, one line, and no file of any kind.
TEST(FileIo, InterruptRemovesUnfinishedOutputs) {
  for (int sig : {SIGINT, SIGTERM}) {
    for (auto temp : {AtomicFileWriter::Temp::kAnonymous, AtomicFileWriter::Temp::kNamed}) {
      test_support::TempDir dir;
      std::string path = dir / "plain.bin";
      const char* expected = sig == SIGINT ? "^shield-nitro: decrypt interrupted by SIGINT; no output was written\n$"
                                           : "^shield-nitro: decrypt interrupted by SIGTERM; no output was written\n$";
      EXPECT_EXIT(
          {
            exit_cleanly_on_interrupt("decrypt");
            AtomicFileWriter w(path, 0600, temp);
            w.write(as_bytes("secret plaintext"));
            ::raise(sig);
          },
          ::testing::ExitedWithCode(128 + sig), expected);
      EXPECT_EQ(dir.entries(), 0u) << "signal " << sig;
    }
  }
}

TEST(FileIo, CommitAllLeavesNeitherWhenOneFails) {
  test_support::TempDir dir;
  std::string first = dir / "key.bin";
  std::filesystem::create_directories(dir / "taken");  // a folder where the second file should go
  {
    AtomicFileWriter a(first, 0600), b(dir / "taken", 0600);
    a.write(as_bytes("data key"));
    b.write(as_bytes("blob"));
    EXPECT_THROW(AtomicFileWriter::commit_all({&a, &b}), Error);
  }
  EXPECT_FALSE(file_exists(first));
  EXPECT_EQ(dir.entries(), 1u);  // only the folder
}

TEST(Clock, FormatUtc) {
  EXPECT_EQ(format_utc(0, "%Y-%m-%dT%H:%M:%SZ"), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_utc(1440938160, "%Y%m%dT%H%M%SZ"), "20150830T123600Z");  // the SigV4 suite's stamp
  EXPECT_EQ(format_utc(784111777, "%a, %d %b %Y %H:%M:%S GMT"), "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 7231
  EXPECT_EQ(format_utc(INT64_MAX, "%Y"), std::to_string(INT64_MAX));  // out of range: the number
}

TEST(Clock, FixedClock) {
  FixedClock c(1000);
  c.advance_ms(500);
  EXPECT_EQ(c.now_ms(), 1500);
  EXPECT_GT(system_clock().now_s(), 1700000000);
}

TEST(Log, RepeatedLinesBecomeOneLineWithACount) {
  LogLevel saved = log_level();
  set_log_level(LogLevel::kInfo);
  testing::internal::CaptureStderr();
  log_info("log test: first");
  for (int i = 0; i < 1000; ++i) log_warn("log test: the same line");
  log_info("log test: the same line");  // another level is another line
  log_info("log test: the same line");
  log_flush_repeats();
  log_flush_repeats();  // nothing pending: prints nothing
  log_debug("log test: below the level, neither printed nor counted");
  log_info("log test: last");
  std::string out = testing::internal::GetCapturedStderr();
  set_log_level(saved);
  EXPECT_EQ(out,
            "shield-nitro: info: log test: first\n"
            "shield-nitro: warn: log test: the same line\n"
            "shield-nitro: warn: log test: the same line (repeated 999 more times)\n"
            "shield-nitro: info: log test: the same line\n"
            "shield-nitro: info: log test: the same line (repeated 1 more times)\n"
            "shield-nitro: info: log test: last\n");
}
