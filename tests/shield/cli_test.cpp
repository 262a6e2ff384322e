// The shield-nitro CLI as a user runs it: exit codes, messages, key files, and that a failed
// decrypt leaves nothing behind.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "shield_nitro/core/file_io.h"
#include "test_support.h"

namespace shield_nitro::shield {
namespace {

struct CliResult {
  int code;
  std::string err;
};

class Cli : public ::testing::Test {
 protected:
  testing::TempDir dir;

  // Runs `shield-nitro args` through the shell (args may redirect); captures stderr.
  CliResult cli(const std::string& args) {
    std::string cmd = std::string(SN_CLI) + " " + args + " 2>" + dir.path() + "/.stderr";
    int status = std::system(cmd.c_str());
    CliResult r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text_file(dir / ".stderr")};
    std::remove((dir / ".stderr").c_str());
    return r;
  }
  std::string p(const std::string& name) { return dir / name; }
  void put(const std::string& name, ByteView data) { write_file_atomic(p(name), data); }
  Bytes get(const std::string& name) { return read_file(p(name)); }
  std::string key_args() { return "--key-file " + p("k"); }
};

TEST_F(Cli, KeygenWritesAPrivateKeyAndRefusesToOverwrite) {
  ASSERT_EQ(cli("keygen -o " + p("k")).code, 0);
  struct stat st{};
  ASSERT_EQ(::stat(p("k").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  Bytes first = get("k");
  CliResult again = cli("keygen -o " + p("k"));
  EXPECT_EQ(again.code, 2);
  EXPECT_NE(again.err.find("--force"), std::string::npos);
  EXPECT_EQ(get("k"), first);
  EXPECT_EQ(cli("keygen --force -o " + p("k")).code, 0);
  EXPECT_NE(get("k"), first);
}

TEST_F(Cli, RoundTripsV4AndStreamWithRawAndHexKeys) {
  ASSERT_EQ(cli("keygen -o " + p("k")).code, 0);
  put("hexkey", as_bytes(hex_encode(get("k")) + "\n"));
  Bytes pt = testing::random_bytes(300000);
  put("in", pt);
  ASSERT_EQ(cli("encrypt " + key_args() + " " + p("in") + " " + p("v4")).code, 0);
  EXPECT_EQ(get("v4")[0], 0x13);
  ASSERT_EQ(cli("encrypt " + key_args() + " --stream --chunk-size 4096 --suite chacha20-poly1305 " + p("in") + " " +
                p("st"))
                .code,
            0);
  EXPECT_EQ(to_string(ByteView(get("st")).first(4)), "SNST");
  for (const char* c : {"v4", "st"}) {
    SCOPED_TRACE(c);
    ASSERT_EQ(cli("decrypt --key-file " + p("hexkey") + " " + p(c) + " " + p("out")).code, 0);
    EXPECT_EQ(get("out"), pt);
    struct stat st{};
    ::stat(p("out").c_str(), &st);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
}

TEST_F(Cli, StdinAndStdout) {
  ASSERT_EQ(cli("keygen -o " + p("k")).code, 0);
  put("in", as_bytes("piped plaintext"));
  ASSERT_EQ(cli("encrypt " + key_args() + " --stream - - < " + p("in") + " > " + p("st")).code, 0);
  ASSERT_EQ(cli("decrypt " + key_args() + " - - < " + p("st") + " > " + p("out")).code, 0);
  EXPECT_EQ(to_string(get("out")), "piped plaintext");
}

TEST_F(Cli, TamperedInputExitsOneAndLeavesNothing) {
  ASSERT_EQ(cli("keygen -o " + p("k")).code, 0);
  put("in", testing::random_bytes(100000));
  ASSERT_EQ(cli("encrypt " + key_args() + " " + p("in") + " " + p("v4")).code, 0);
  ASSERT_EQ(cli("encrypt " + key_args() + " --stream --chunk-size 1024 " + p("in") + " " + p("st")).code, 0);
  for (const char* c : {"v4", "st"}) {
    Bytes bad = get(c);
    bad[bad.size() - 100] ^= 1;  // the stream fails in its last chunk, after writing others
    put("bad", bad);
    size_t before = dir.entries();
    CliResult r = cli("decrypt " + key_args() + " " + p("bad") + " " + p("out"));
    EXPECT_EQ(r.code, 1) << c;
    EXPECT_NE(r.err.find("authentication failed"), std::string::npos) << r.err;
    EXPECT_FALSE(file_exists(p("out")));
    EXPECT_EQ(dir.entries(), before) << "a temporary file was left behind";
  }
  // An existing OUT is left as it was.
  put("out", as_bytes("keep me"));
  EXPECT_EQ(cli("decrypt " + key_args() + " " + p("bad") + " " + p("out")).code, 1);
  EXPECT_EQ(to_string(get("out")), "keep me");
}

TEST_F(Cli, WrongKeyAndTruncatedStream) {
  ASSERT_EQ(cli("keygen -o " + p("k")).code, 0);
  ASSERT_EQ(cli("keygen -o " + p("k2")).code, 0);
  put("in", testing::random_bytes(5000));
  ASSERT_EQ(cli("encrypt " + key_args() + " --stream --chunk-size 1000 " + p("in") + " " + p("st")).code, 0);
  EXPECT_EQ(cli("decrypt --key-file " + p("k2") + " " + p("st") + " " + p("out")).code, 1);
  Bytes st = get("st");
  put("cut", ByteView(st).first(50 + 2 * 1016));  // exactly after the second chunk
  CliResult r = cli("decrypt " + key_args() + " " + p("cut") + " " + p("out"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("authentication failed"), std::string::npos);
  EXPECT_FALSE(file_exists(p("out")));
}

TEST_F(Cli, FreshnessWindowOfVectors) {
  std::ifstream f(std::string(SN_FIXTURES_DIR) + "/shield/v4_test_vectors.json");
  auto v = nlohmann::json::parse(f)["deterministic_vectors"][3];  // key_basic
  put("k", hex_decode(v["key_hex"].get<std::string>()));
  put("msg", hex_decode(v["expected_output_hex"].get<std::string>()));
  CliResult stale = cli("decrypt " + key_args() + " " + p("msg") + " " + p("out"));
  EXPECT_EQ(stale.code, 1);
  EXPECT_NE(stale.err.find("expired"), std::string::npos) << stale.err;
  EXPECT_FALSE(file_exists(p("out")));
  ASSERT_EQ(cli("decrypt " + key_args() + " --max-age-ms none " + p("msg") + " " + p("out")).code, 0);
  EXPECT_EQ(hex_encode(get("out")), v["plaintext_hex"]);
  EXPECT_EQ(cli("decrypt " + key_args() + " --max-age-ms soon " + p("msg") + " " + p("out2")).code, 2);
}

TEST_F(Cli, PasswordModeFromTheEnvironment) {
  put("in", as_bytes("password protected"));
  std::string env = "SN_TEST_PW=correct-horse ";
  std::string wrong = "SN_TEST_PW=wrong-horse ";
  ASSERT_EQ(cli("--help > /dev/null").code, 0);
  ASSERT_EQ(std::system((env + SN_CLI + " encrypt --password-env SN_TEST_PW --service svc --stream " + p("in") + " " +
                         p("st"))
                            .c_str()),
            0);
  EXPECT_EQ(get("st")[6], 0x03);
  ASSERT_EQ(
      std::system((env + SN_CLI + " decrypt --password-env SN_TEST_PW --service svc " + p("st") + " " + p("out")).c_str()),
      0);
  EXPECT_EQ(to_string(get("out")), "password protected");
  CliResult r = cli("decrypt --password-env SN_TEST_PW_UNSET --service svc " + p("st") + " " + p("out2"));
  EXPECT_EQ(r.code, 2);
  int status = std::system((wrong + SN_CLI + " decrypt --password-env SN_TEST_PW --service svc " + p("st") + " " +
                            p("out3") + " 2>/dev/null")
                               .c_str());
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_FALSE(file_exists(p("out3")));
}

TEST_F(Cli, UsageAndIoErrors) {
  put("in", as_bytes("x"));
  put("k31", Bytes(31, 1));
  CliResult bad_key = cli("encrypt --key-file " + p("k31") + " " + p("in") + " " + p("out"));
  EXPECT_EQ(bad_key.code, 2);
  EXPECT_NE(bad_key.err.find("32 raw bytes or 64 hex characters"), std::string::npos) << bad_key.err;
  put("khex", as_bytes(std::string(63, 'a') + "z\n"));
  EXPECT_EQ(cli("encrypt --key-file " + p("khex") + " " + p("in") + " " + p("out")).code, 2);
  put("k", Bytes(32, 1));
  EXPECT_EQ(cli("encrypt " + p("in") + " " + p("out")).code, 2);                                      // no key
  EXPECT_EQ(cli("encrypt " + key_args() + " --service s " + p("in") + " " + p("out")).code, 2);       // both
  EXPECT_EQ(cli("encrypt " + key_args() + " --suite aes-128-gcm " + p("in") + " " + p("out")).code, 2);
  EXPECT_EQ(cli("encrypt " + key_args() + " --stream --chunk-size 10 " + p("in") + " " + p("out")).code, 2);
  EXPECT_EQ(cli("encrypt " + key_args() + " --chunk-size 4096 " + p("in") + " " + p("out")).code, 2);  // no --stream
  EXPECT_NE(cli("encrypt --password-env X " + p("in") + " " + p("out")).err.find("--service"), std::string::npos);
  EXPECT_EQ(cli("encrypt " + key_args() + " " + p("missing") + " " + p("out")).code, 3);
  EXPECT_EQ(cli("encrypt --key-file " + p("nokey") + " " + p("in") + " " + p("out")).code, 3);
  EXPECT_EQ(cli("encrypt " + key_args() + " " + p("in") + " " + p("no/such/dir/out")).code, 3);
  EXPECT_FALSE(file_exists(p("out")));
  put("empty", {});
  CliResult empty = cli("decrypt " + key_args() + " " + p("empty") + " " + p("out"));
  EXPECT_EQ(empty.code, 1);
  EXPECT_NE(empty.err.find("empty"), std::string::npos);
  put("v3", Bytes{0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  CliResult v3 = cli("decrypt " + key_args() + " " + p("v3") + " " + p("out"));
  EXPECT_EQ(v3.code, 1);
  EXPECT_NE(v3.err.find("unsupported Shield version 0x02"), std::string::npos) << v3.err;
  EXPECT_FALSE(file_exists(p("out")));
}

}  // namespace
}  // namespace shield_nitro::shield
