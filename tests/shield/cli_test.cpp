// The shield-nitro CLI as a user runs it: exit codes, messages, key files, and that a failed
// decrypt leaves nothing behind.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

// Files written by Guard8's own CLI and Python StreamCipher (tests/shield/data/guard8).
std::string guard8_data(const std::string& name) {
  return std::string(SN_SOURCE_DIR) + "/tests/shield/data/guard8/" + name;
}
const char* kGuard8Pw = "SN_TEST_PW=guard8-migration-pw ";

TEST_F(Cli, DecryptsGuard8StreamFiles) {
  put("cli.bin.enc", read_file(guard8_data("cli.bin.enc")));
  // The key is salted with the original name: by default IN's base name without ".enc".
  std::string decrypt = std::string(kGuard8Pw) + SN_CLI + " decrypt --from guard8-stream --password-env SN_TEST_PW ";
  ASSERT_EQ(std::system((decrypt + p("cli.bin.enc") + " " + p("out")).c_str()), 0);
  Bytes out = get("out");
  ASSERT_EQ(out.size(), 65537u);
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], static_cast<uint8_t>((i * 31 + 7) % 256)) << i;
  struct stat st{};
  ::stat(p("out").c_str(), &st);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A renamed file needs --original-name; a wrong one fails authentication and writes nothing.
  put("renamed", read_file(guard8_data("cli.bin.enc")));
  EXPECT_EQ(WEXITSTATUS(std::system((decrypt + p("renamed") + " " + p("out2") + " 2>/dev/null").c_str())), 2);
  ASSERT_EQ(std::system((decrypt + "--original-name cli.bin " + p("renamed") + " " + p("out2")).c_str()), 0);
  EXPECT_EQ(get("out2"), out);
  EXPECT_EQ(WEXITSTATUS(std::system((decrypt + "--original-name other.bin " + p("renamed") + " " + p("out3") +
                                     " 2>/dev/null")
                                        .c_str())),
            1);
  EXPECT_FALSE(file_exists(p("out3")));
  // Key mode: a StreamCipher made from a raw 32-byte key.
  put("k", hex_decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
  ASSERT_EQ(cli("decrypt --from guard8-stream " + key_args() + " " + guard8_data("keyed.bin.enc") + " " + p("keyed"))
                .code,
            0);
  EXPECT_EQ(get("keyed").size(), 250u);
}

TEST_F(Cli, Guard8StreamRefusalsSayWhichChunk) {
  put("k", hex_decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
  Bytes file = read_file(guard8_data("keyed.bin.enc"));
  put("cut.enc", ByteView(file).first(file.size() - 36));  // the end marker and tag dropped
  CliResult cut = cli("decrypt --from guard8-stream " + key_args() + " " + p("cut.enc") + " " + p("out"));
  EXPECT_EQ(cut.code, 1);
  EXPECT_NE(cut.err.find("ends after 4 chunks without its end tag"), std::string::npos) << cut.err;
  file[20 + 2 * 100 + 40] ^= 1;
  put("bad.enc", file);
  CliResult bad = cli("decrypt --from guard8-stream " + key_args() + " " + p("bad.enc") + " " + p("out"));
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("chunk 2: authentication failed"), std::string::npos) << bad.err;
  EXPECT_FALSE(file_exists(p("out")));
  // Usage: a service, --original-name or --pbkdf2-iterations where they mean nothing, an unknown format.
  EXPECT_EQ(cli("decrypt --from guard8-stream --password-env X --service s " + p("bad.enc") + " " + p("out")).code, 2);
  EXPECT_EQ(
      cli("decrypt --from guard8-stream " + key_args() + " --original-name x " + p("bad.enc") + " " + p("o")).code, 2);
  EXPECT_EQ(
      cli("decrypt --from guard8-stream " + key_args() + " --pbkdf2-iterations 200000 " + p("bad.enc") + " " + p("o"))
          .code,
      2);
  EXPECT_EQ(cli("decrypt " + key_args() + " --original-name x " + p("bad.enc") + " " + p("o")).code, 2);
  EXPECT_EQ(cli("decrypt --from guard9 " + key_args() + " " + p("bad.enc") + " " + p("o")).code, 2);
  CliResult no_name = cli("decrypt --from guard8-stream --password-env HOME - " + p("o") + " < " + p("bad.enc"));
  EXPECT_EQ(no_name.code, 2);
  EXPECT_NE(no_name.err.find("--original-name"), std::string::npos) << no_name.err;
}

TEST_F(Cli, Pbkdf2IterationsForPasswordMode) {
  std::string v4 = std::string(kGuard8Pw) + SN_CLI +
                   " decrypt --password-env SN_TEST_PW --service migration.example --max-age-ms none ";
  auto run = [&](const std::string& args) {
    return WEXITSTATUS(std::system((v4 + args + " 2>" + p("err")).c_str()));
  };
  // Sealed by Guard8 with 150000 and 50000 iterations.
  EXPECT_EQ(run("--pbkdf2-iterations 150000 " + guard8_data("v4_150000.shield") + " " + p("out")), 0);
  EXPECT_EQ(to_string(get("out")), "v4 sealed by Guard8 with 150000 PBKDF2 iterations");
  EXPECT_EQ(run(guard8_data("v4_150000.shield") + " " + p("out2")), 1);  // the default 600000
  EXPECT_EQ(run("--pbkdf2-iterations 50000 " + guard8_data("v4_50000.shield") + " " + p("out2")), 2);
  EXPECT_NE(to_string(get("err")).find("--allow-weak-kdf"), std::string::npos);
  EXPECT_FALSE(file_exists(p("out2")));
  EXPECT_EQ(run("--pbkdf2-iterations 50000 --allow-weak-kdf " + guard8_data("v4_50000.shield") + " " + p("out2")), 0);
  EXPECT_EQ(to_string(get("out2")), "v4 sealed by Guard8 with 50000 PBKDF2 iterations");
  EXPECT_EQ(run("--allow-weak-kdf " + guard8_data("v4_50000.shield") + " " + p("out3")), 2);
  EXPECT_EQ(run("--pbkdf2-iterations 0 --allow-weak-kdf " + guard8_data("v4_50000.shield") + " " + p("out3")), 2);
  EXPECT_EQ(run("--pbkdf2-iterations many " + guard8_data("v4_50000.shield") + " " + p("out3")), 2);
  // Encryption takes the count too, for v4 and streams; a key file refuses it.
  put("in", as_bytes("counted"));
  std::string enc = std::string(kGuard8Pw) + SN_CLI + " encrypt --password-env SN_TEST_PW --service s ";
  std::string dec = std::string(kGuard8Pw) + SN_CLI + " decrypt --password-env SN_TEST_PW --service s ";
  for (const char* mode : {"", "--stream "}) {
    SCOPED_TRACE(mode);
    ASSERT_EQ(std::system((enc + mode + "--pbkdf2-iterations 200000 " + p("in") + " " + p("ct")).c_str()), 0);
    EXPECT_EQ(std::system((dec + "--pbkdf2-iterations 200000 " + p("ct") + " " + p("pt")).c_str()), 0);
    EXPECT_EQ(to_string(get("pt")), "counted");
    EXPECT_NE(std::system((dec + p("ct") + " " + p("pt2") + " 2>/dev/null").c_str()), 0);
  }
  put("k", Bytes(32, 1));
  EXPECT_EQ(cli("encrypt " + key_args() + " --pbkdf2-iterations 200000 " + p("in") + " " + p("o")).code, 2);
}

TEST_F(Cli, SameInputAndOutputIsRefused) {
  put("k", Bytes(32, 1));
  put("x", as_bytes("precious"));
  ASSERT_EQ(cli("encrypt " + key_args() + " " + p("x") + " " + p("ct")).code, 0);
  ASSERT_EQ(::link(p("x").c_str(), p("hard").c_str()), 0);
  ASSERT_EQ(::symlink(p("x").c_str(), p("sym").c_str()), 0);
  const std::string dot = dir.path() + "/./x";
  for (const std::string& out : {p("x"), dot, p("hard"), p("sym")}) {
    SCOPED_TRACE(out);
    CliResult r = cli("encrypt " + key_args() + " " + p("x") + " " + out);
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("are the same file"), std::string::npos) << r.err;
    EXPECT_EQ(cli("encrypt " + key_args() + " --stream " + p("x") + " " + out).code, 2);
    EXPECT_EQ(to_string(get("x")), "precious");
  }
  Bytes ct = get("ct");
  ASSERT_EQ(::link(p("ct").c_str(), p("ct2").c_str()), 0);
  EXPECT_EQ(cli("decrypt " + key_args() + " --max-age-ms none " + p("ct") + " " + p("ct2")).code, 2);
  EXPECT_EQ(cli("decrypt --from guard8-stream " + key_args() + " " + p("ct") + " " + p("ct")).code, 2);
  EXPECT_EQ(get("ct"), ct);
  // Different files are fine, also when OUT exists.
  EXPECT_EQ(cli("decrypt " + key_args() + " --max-age-ms none " + p("ct") + " " + p("other")).code, 0);
  EXPECT_EQ(cli("decrypt " + key_args() + " --max-age-ms none " + p("ct") + " " + p("other")).code, 0);
}

TEST_F(Cli, HelpShowsAnExampleOfEachMigrationOption) {
  ASSERT_EQ(cli("decrypt --help > " + p("dhelp")).code, 0);
  ASSERT_EQ(cli("encrypt --help > " + p("ehelp")).code, 0);
  std::string d = to_string(get("dhelp")), e = to_string(get("ehelp"));
  const std::string examples = d.substr(d.find("Examples:"));
  for (const char* opt : {"--from guard8-stream", "--original-name ", "--pbkdf2-iterations ", "--allow-weak-kdf"})
    EXPECT_NE(examples.find(opt), std::string::npos) << opt;
  const std::string enc_examples = e.substr(e.find("Examples:"));
  for (const char* opt : {"--pbkdf2-iterations ", "--allow-weak-kdf"})
    EXPECT_NE(enc_examples.find(opt), std::string::npos) << opt;
}

}  // namespace
}  // namespace shield_nitro::shield
