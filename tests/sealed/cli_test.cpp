// `shield-nitro seal` / `unseal` as a user runs them, against kms-local and the NSM simulator
// (tests/kms/local_stack.h): the producer seals with GenerateDataKey, the enclave's role
// unseals only with --recipient-nsm (its key policy denies a plain Decrypt), --show needs no
// KMS, and every refusal (KMS's no, a tampered header or chunk, a pinned context, not a sealed
// file) exits 1 with its reason and leaves no output file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "kms/local_stack.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/kms/sigv4.h"
#include "shield_nitro/sealed/sealed.h"
#include "support/process.h"

using namespace sn_test;
using json = nlohmann::json;

namespace {

constexpr size_t kPlaintextSize = (3u << 20) + 123;  // several 64 KiB chunks and a short last one

class SealedCli : public ::testing::Test {
 protected:
  void SetUp() override {
    nsm_server_ = s_.sim->serve(nsm::simulator_socket_path(s_.dir / "nsm"));
    key_ = kms_call(*s_.admin, "CreateKey", {{"Description", "models"}})["KeyMetadata"]["Arn"];
    other_key_ = kms_call(*s_.admin, "CreateKey", {{"Description", "other"}})["KeyMetadata"]["Arn"];
    put_policy(key_, {{"app", "inference"}});
    put_policy(other_key_, {});
    Bytes pt(kPlaintextSize);
    for (size_t i = 0; i < pt.size(); ++i) pt[i] = static_cast<uint8_t>(i * 31 + (i >> 12));
    write_file_atomic(at("model.bin"), pt);
    for (const char* v : {"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"}) ::unsetenv(v);
  }

  // The attested policy of `shield-nitro policy` for the enclave's role (a plain Decrypt is
  // denied, the context pinned), with the producer (here the admin) allowed to seal.
  void put_policy(const std::string& key, const EncryptionContext& pinned) { s_.put_policy(key, pinned); }

  void as(const std::string& profile) {
    Credentials c = s_.credentials(profile);
    ::setenv("AWS_ACCESS_KEY_ID", c.access_key_id.c_str(), 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", to_string(c.secret_access_key.view()).c_str(), 1);
  }
  RunResult cli(const std::string& cmd, std::vector<std::string> args, bool endpoint = true) {
    std::vector<std::string> argv = {SN_CLI, cmd};
    if (endpoint) argv.insert(argv.end(), {"--endpoint", s_.url()});
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, scratch_.path());
  }
  RunResult seal(const std::string& out, std::vector<std::string> extra = {}) {
    as("admin");
    std::vector<std::string> args = {"--key-id", key_, "--chunk-size", "65536", at("model.bin"), "-o", at(out)};
    args.insert(args.end(), extra.begin(), extra.end());
    return cli("seal", args);
  }
  RunResult unseal(const std::string& in, const std::string& out, std::vector<std::string> extra = {},
                   bool attested = true) {
    as("enclave");
    std::vector<std::string> args = {at(in), "-o", at(out)};
    if (attested) args.insert(args.end(), {"--recipient-nsm", "sim:" + (s_.dir / "nsm")});
    args.insert(args.end(), extra.begin(), extra.end());
    return cli("unseal", args);
  }
  std::string at(const std::string& name) const { return dir_ / name; }
  bool exists(const std::string& name) const { return file_exists(at(name)); }
  Bytes flipped(const std::string& name, size_t offset) {
    Bytes b = read_file(at(name));
    b[offset] ^= 0x01;
    return b;
  }

  LocalStack s_;
  std::unique_ptr<nsm::SimulatorServer> nsm_server_;
  std::string key_, other_key_;
  test_support::TempDir dir_{"sn-sealed-cli"};
  test_support::TempDir scratch_{"sn-sealed-run"};
};

TEST_F(SealedCli, SealShowAndUnsealWithRecipient) {
  auto r = seal("model.sealed", {"--encryption-context", "app=inference", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  json summary = json::parse(r.out);
  EXPECT_EQ(summary["KeyId"], key_);
  EXPECT_EQ(summary["EncryptionContext"], json({{"app", "inference"}}));
  EXPECT_EQ(summary["PlaintextBytes"], kPlaintextSize);
  EXPECT_EQ(summary["SealedBytes"].get<uint64_t>(), read_file(at("model.sealed")).size());
  // The two pins for the runtime config: the prefix's (sealed header + stream header, the first
  // PrefixBytes bytes) and the whole file's digests.
  const Bytes sealed_bytes = read_file(at("model.sealed"));
  EXPECT_EQ(summary["Sha256"], kms::sha256_hex(sealed_bytes));
  const size_t prefix = summary["PrefixBytes"].get<size_t>();
  EXPECT_EQ(prefix, summary["HeaderBytes"].get<size_t>() + 50);
  EXPECT_EQ(summary["HeaderSha256"], kms::sha256_hex(ByteView(sealed_bytes).first(prefix)));
  EXPECT_EQ(summary["HeaderSha256"], sealed::parse_prefix(sealed_bytes).prefix_digest_hex());
  // Without --json, seal prints both pins for the runtime config.
  r = seal("again.sealed", {"--encryption-context", "app=inference"});
  ASSERT_EQ(r.status, 0) << r.err;
  const Bytes again = read_file(at("again.sealed"));
  const sealed::Header again_prefix = sealed::parse_prefix(again);
  EXPECT_NE(r.out.find("header_sha256  " + again_prefix.prefix_digest_hex() + "   (runtime config header_sha256, recommended: "
                       "sha256 of the first " + std::to_string(again_prefix.prefix_size()) + " bytes)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("file sha256    " + kms::sha256_hex(again)), std::string::npos) << r.out;

  // --show: no KMS at all (no endpoint, no credentials), nothing verified.
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  r = cli("unseal", {"--show", "--json", at("model.sealed")}, false);
  ASSERT_EQ(r.status, 0) << r.err;
  json shown = json::parse(r.out);
  EXPECT_EQ(shown["KeyId"], key_);
  EXPECT_EQ(shown["EncryptionContext"], json({{"app", "inference"}}));
  EXPECT_EQ(shown["PlaintextBytes"], kPlaintextSize);
  EXPECT_EQ(shown["ChunkSize"], 65536);
  EXPECT_EQ(shown["HeaderSha256"], summary["HeaderSha256"]);
  EXPECT_FALSE(shown["Verified"].get<bool>());
  r = cli("unseal", {"--show", at("model.sealed")}, false);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("encryption context  app=inference"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(key_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("header_sha256 " + summary["HeaderSha256"].get<std::string>()), std::string::npos) << r.out;

  const int before = s_.decrypts.load();
  r = unseal("model.sealed", "model.out", {"--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file(at("model.out")), read_file(at("model.bin")));
  EXPECT_TRUE(json::parse(r.out)["Recipient"].get<bool>());
  EXPECT_EQ(s_.decrypts.load(), before + 1);
  struct stat st {};
  ::stat(at("model.out").c_str(), &st);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// The key policy requires the attestation: the enclave's role gets nothing from a plain
// Decrypt, and --help says the plain path is for development.
TEST_F(SealedCli, PlainDecryptIsRefusedByThePolicy) {
  ASSERT_EQ(seal("model.sealed", {"--encryption-context", "app=inference"}).status, 0);
  auto r = unseal("model.sealed", "model.out", {}, false);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("AccessDeniedException"), std::string::npos) << r.err;
  EXPECT_FALSE(exists("model.out"));
  r = cli("unseal", {"--help"}, false);
  EXPECT_NE(r.out.find("Without it, a plain Decrypt: for development only"), std::string::npos) << r.out;
}

// The policy pins app=inference: a file sealed for another purpose gets no key from KMS (its
// reason printed), and a caller's own --encryption-context pin refuses it before KMS is asked.
TEST_F(SealedCli, ContextMismatchIsRefused) {
  ASSERT_EQ(seal("training.sealed", {"--encryption-context", "app=training"}).status, 0);
  auto r = unseal("training.sealed", "out");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("AccessDeniedException"), std::string::npos) << r.err;
  const int before = s_.decrypts.load();
  r = unseal("training.sealed", "out", {"--encryption-context", "app=inference"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("encryption context {\"app\":\"training\"} is not the expected {\"app\":\"inference\"}"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(s_.decrypts.load(), before);
  EXPECT_FALSE(exists("out"));
}

TEST_F(SealedCli, WrongKmsKeyIsRefusedWithKmsReason) {
  ASSERT_EQ(seal("model.sealed", {"--encryption-context", "app=inference"}).status, 0);
  auto r = unseal("model.sealed", "out", {"--key-id", other_key_});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("IncorrectKeyException"), std::string::npos) << r.err;
  EXPECT_FALSE(exists("out"));
  // Sealing under a key that does not exist: KMS's reason, no file.
  as("admin");
  r = cli("seal", {"--key-id", "alias/none", at("model.bin"), "-o", at("x.sealed")});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("NotFoundException"), std::string::npos) << r.err;
  EXPECT_FALSE(exists("x.sealed"));
}

// Each part of the file, changed: exit 1 naming what failed, no output file.
TEST_F(SealedCli, TamperedFilesAreRefused) {
  ASSERT_EQ(seal("model.sealed", {"--encryption-context", "app=inference"}).status, 0);
  const Bytes file = read_file(at("model.sealed"));
  const sealed::Header h = sealed::parse_header(file);
  const std::string text = to_string(h.bytes);
  struct Case {
    const char* what;
    size_t offset;
    const char* says;
  };
  const std::vector<Case> cases = {
      // KMS checks the header's context against the policy's pin first, then the blob's.
      {"context value", text.find("inference"), "AccessDeniedException"},
      {"wrapped key's tag", text.find(to_string(h.ciphertext_blob)) + h.ciphertext_blob.size() - 2,
       "InvalidCiphertextException"},
      {"header tag", h.size() - 3, "sealed header: authentication failed"},
      {"first chunk", h.size() + 60, "stream chunk 0: authentication failed"},
      {"last chunk", file.size() - 5, "authentication failed"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    ASSERT_LT(c.offset, file.size());
    write_file_atomic(at("bad.sealed"), flipped("model.sealed", c.offset));
    auto r = unseal("bad.sealed", "out");
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_FALSE(exists("out"));
  }
}

// unseal reading a FIFO, stopped by SIGINT halfway through the data: one line, exit 130, no
// output file (the plaintext written so far was in an anonymous file).
TEST_F(SealedCli, InterruptedUnsealLeavesNoFile) {
  ASSERT_EQ(seal("model.sealed", {"--encryption-context", "app=inference"}).status, 0);
  ASSERT_EQ(::mkfifo(at("in.fifo").c_str(), 0600), 0);
  as("enclave");
  const std::vector<std::string> args = {SN_CLI, "unseal", "--endpoint", s_.url(), "--recipient-nsm",
                                         "sim:" + (s_.dir / "nsm"), at("in.fifo"), "-o", at("out")};
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(at("err.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(SN_CLI, argv.data());
    ::_exit(127);
  }
  ::signal(SIGPIPE, SIG_IGN);
  int fifo = ::open(at("in.fifo").c_str(), O_WRONLY);
  const Bytes file = read_file(at("model.sealed"));
  // A pipe write blocks until the reader takes it: once half went in, unseal has released the
  // key and decrypted (and written) all but the pipe's 64 KiB of it.
  size_t done = 0;
  while (done < file.size() / 2) {
    ssize_t w = ::write(fifo, file.data() + done, file.size() / 2 - done);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  EXPECT_EQ(done, file.size() / 2);
  ::kill(pid, SIGINT);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ::close(fifo);
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 130);
  EXPECT_EQ(read_text_file(at("err.txt")), "shield-nitro: unseal interrupted by SIGINT; no output was written\n");
  EXPECT_FALSE(exists("out"));
}

TEST_F(SealedCli, NotASealedFileAndUsage) {
  const int before = s_.decrypts.load();
  write_file_atomic(at("plain.txt"), as_bytes("just some text\n"));
  auto r = unseal("plain.txt", "out");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("not a sealed file: it starts with 6a75737420736f6d (text \"just som\")"), std::string::npos)
      << r.err;
  r = cli("unseal", {"--show", at("plain.txt")}, false);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(s_.decrypts.load(), before);
  r = cli("unseal", {at("plain.txt")}, false);  // no -o, no --show
  EXPECT_EQ(r.status, 2) << r.err;
  r = cli("seal", {"--key-id", key_, at("model.bin"), "-o", at("model.bin")});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("same file"), std::string::npos) << r.err;
  r = cli("seal", {"--key-id", key_, "--encryption-context", "novalue", at("model.bin"), "-o", at("x")});
  EXPECT_EQ(r.status, 2) << r.err;
  r = cli("seal", {"--key-id", key_, "/nonexistent/in", "-o", at("x")});
  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_FALSE(exists("out"));
  EXPECT_FALSE(exists("x"));
}

}  // namespace
