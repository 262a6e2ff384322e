// `shield-nitro parent ...` as a script uses it: one process per step against the live stack
// (stack.h), handles carried from step to step; --json shapes, exit codes, usage errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/sealed/sealed.h"
#include "shield_nitro/shield/stream.h"
#include "stack.h"

using namespace shield_nitro;
using sn_test::RunResult;
using sn_test::Stack;
using json = nlohmann::json;

namespace {

class ParentCli : public ::testing::Test {
 protected:
  void SetUp() override { stack = std::make_unique<Stack>(); }
  void TearDown() override { stack.reset(); }

  RunResult cli(std::vector<std::string> args, const std::string& stdin_path = "/dev/null") {
    args.insert(args.begin(), {SN_CLI, "parent"});
    return sn_test::run(args, stack->dir(), stdin_path);
  }
  // The common options of a command that talks to the enclave.
  std::vector<std::string> with_enclave(std::vector<std::string> args) {
    args.push_back("--enclave");
    args.push_back(stack->parent_endpoint());
    return args;
  }
  std::vector<std::string> with_policy(std::vector<std::string> args, const Bytes& pcr0) {
    args = with_enclave(std::move(args));
    for (std::string a : std::vector<std::string>{"--pcr", "0=" + hex_encode(pcr0), "--root", stack->root_pem_path()})
      args.push_back(a);
    return args;
  }
  json ok_json(const RunResult& r) {
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out);
  }
  std::string file(const std::string& name, ByteView data) {
    std::string path = stack->dir() + "/" + name;
    write_file_atomic(path, data);
    return path;
  }

  std::unique_ptr<Stack> stack;
};

}  // namespace

TEST_F(ParentCli, DescribeAndAttestJson) {
  json d = ok_json(cli(with_enclave({"describe", "--json"})));
  EXPECT_EQ(d["pcrs"]["0"], hex_encode(stack->pcr0()));  // measurements as lowercase hex, as everywhere
  EXPECT_TRUE(d["keys"].is_array());
  EXPECT_TRUE(d["artifacts"].is_array());
  EXPECT_EQ(d["credentials"]["present"], false);
  EXPECT_EQ(d["digest"], "SHA384");
  RunResult text = cli(with_enclave({"describe"}));
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("PCR0:        " + hex_encode(stack->pcr0())), std::string::npos) << text.out;

  json a = ok_json(cli(with_policy({"attest", "--json"}, stack->pcr0())));
  EXPECT_EQ(a["verified"], true);
  EXPECT_EQ(a["pcrs"]["0"], hex_encode(stack->pcr0()));
  EXPECT_EQ(a["nonce"].get<std::string>().size(), 64u);
  EXPECT_FALSE(base64_decode(a["document"].get<std::string>()).empty());

  // Fetched now, verified later by `attest verify` with the same nonce.
  std::string nonce = hex_encode(os_random().bytes(32));
  std::string doc = stack->dir() + "/doc.cbor";
  RunResult fetched = cli(with_enclave({"attest", "--no-verify", "--nonce", nonce, "--out", doc}));
  ASSERT_EQ(fetched.status, 0) << fetched.err;
  EXPECT_NE(fetched.out.find("UNVERIFIED"), std::string::npos);
  RunResult verified = sn_test::run({SN_CLI, "attest", "verify", doc, "--root", stack->root_pem_path(), "--nonce", nonce,
                                     "--pcr", "0=" + hex_encode(stack->pcr0())},
                                    stack->dir());
  EXPECT_EQ(verified.status, 0) << verified.err;

  RunResult wrong = cli(with_policy({"attest"}, os_random().bytes(48)));
  EXPECT_EQ(wrong.status, 1);
  EXPECT_NE(wrong.err.find("PCR0"), std::string::npos) << wrong.err;
  EXPECT_EQ(cli(with_enclave({"attest", "--pcr", "0=" + hex_encode(stack->pcr0())})).status, 1);  // AWS root by default
}

// A sealed file names its KMS key: load-artifact without --key has the enclave release it from
// the file's header (KMS with a Recipient, attested), and the plugin then sees the model.
TEST_F(ParentCli, SealedArtifactsLoadWithoutAKeyHandle) {
  sn_test::KmsKey key = stack->make_key(stack->pcr0(), {{"app", "cli"}});
  auto seal = [&](const std::string& name, ByteView plain, const sealed::EncryptionContext& ctx) {
    return file(name, sealed::seal(plain, {key.arn, key.blob, key.data_key.clone()}, ctx, {.chunk_size = 4096}));
  };
  std::string model = seal("model.sealed", Bytes(5000, 0x42), {{"app", "cli"}});
  std::string plugin = seal("plugin.sealed", read_file(SN_TEST_PLUGIN), {{"app", "cli"}});

  // No credentials in the enclave yet: the release cannot happen (exit 3, environment).
  EXPECT_EQ(cli(with_enclave({"load-artifact", "--kind", "model", model})).status, 3);
  json m = ok_json(cli(with_enclave({"load-artifact", "--json", "--credentials-file", stack->credentials_file(), "--profile",
                                     "enclave", "--kind", "model", "--name", "weights", "--chunk-kib", "1", model})));
  EXPECT_EQ(m["size"], 5000);
  json c = ok_json(cli(with_enclave({"load-artifact", "--json", "--kind", "code", "--model", m["handle"], plugin})));
  std::string input = file("input.bin", as_bytes("hello enclave"));
  std::string output = stack->dir() + "/output.bin";
  RunResult inv = cli(with_policy({"invoke", "--artifact", c["handle"], "--input", input, "--output", output}, stack->pcr0()));
  ASSERT_EQ(inv.status, 0) << inv.err;
  EXPECT_EQ(read_text_file(output), "weights:5000|evalcne olleh");

  // KMS refuses another encryption context than the key was generated with; a changed byte fails.
  EXPECT_EQ(cli(with_enclave({"load-artifact", "--kind", "model", seal("other.sealed", Bytes(10, 1), {{"app", "other"}})})).status, 1);
  Bytes bad = read_file(model);
  bad[bad.size() - 5] ^= 1;
  EXPECT_EQ(cli(with_enclave({"load-artifact", "--kind", "model", file("bad.sealed", bad)})).status, 1);
  // A key handle with a sealed file is a usage error; so is a Shield container without one.
  json k = ok_json(cli(with_enclave({"load-key", "--json", "--credentials-file", stack->credentials_file(), "--profile",
                                     "enclave", "--blob", file("data.key.enc", key.blob), "--key-id", key.arn,
                                     "--encryption-context", "app=cli"})));
  EXPECT_EQ(cli(with_enclave({"load-artifact", "--key", k["handle"], "--kind", "model", model})).status, 2);
  std::string snst = file("model.snst", shield::encrypt_stream(shield::Shield::with_key(shield::ShieldKey::from_bytes(key.data_key.view())),
                                                               Bytes(100, 1)));
  EXPECT_EQ(cli(with_enclave({"load-artifact", "--kind", "model", snst})).status, 2);
}

TEST_F(ParentCli, ScriptedLoadKeyArtifactsInvokeAcrossConnections) {
  sn_test::KmsKey key = stack->make_key(stack->pcr0(), {{"app", "cli"}});
  shield::Shield s = shield::Shield::with_key(shield::ShieldKey::from_bytes(key.data_key.view()));
  std::string blob = file("data.key.enc", key.blob);
  std::string model = file("model.snst", shield::encrypt_stream(s, Bytes(5000, 0x42)));
  std::string plugin = file("plugin.snst", shield::encrypt_stream(s, read_file(SN_TEST_PLUGIN)));

  json k = ok_json(cli(with_enclave({"load-key", "--json", "--credentials-file", stack->credentials_file(), "--profile",
                                     "enclave", "--blob", blob, "--key-id", key.arn, "--encryption-context", "app=cli"})));
  EXPECT_EQ(k["key_id"], key.arn);
  std::string kh = k["handle"];
  json m = ok_json(cli(with_enclave({"load-artifact", "--json", "--key", kh, "--kind", "model", "--name", "weights",
                                     "--chunk-kib", "1", model})));
  EXPECT_EQ(m["size"], 5000);
  EXPECT_EQ(m["kind"], "model");
  json c = ok_json(cli(with_enclave({"load-artifact", "--json", "--key", kh, "--kind", "code", "--model", m["handle"], plugin})));
  EXPECT_EQ(c["name"], "plugin.snst");  // the file name by default
  std::string code = c["handle"];

  std::string input = file("input.bin", as_bytes("hello enclave"));
  std::string output = stack->dir() + "/output.bin";
  RunResult inv = cli(with_policy({"invoke", "--artifact", code, "--input", input, "--output", output}, stack->pcr0()));
  ASSERT_EQ(inv.status, 0) << inv.err;
  EXPECT_EQ(read_text_file(output), "weights:5000|evalcne olleh");
  EXPECT_EQ(std::filesystem::status(output).permissions() & std::filesystem::perms::others_read, std::filesystem::perms::none);
  json ij = ok_json(cli(with_policy({"invoke", "--json", "--artifact", code}, stack->pcr0()), input));  // stdin
  EXPECT_EQ(to_string(base64_decode(ij["output"].get<std::string>())), "weights:5000|evalcne olleh");

  // encrypt (plain) then decrypt (channel), each its own connection.
  std::string ct = stack->dir() + "/ct.bin", pt = stack->dir() + "/pt.bin";
  ASSERT_EQ(cli(with_enclave({"encrypt", "--key", kh, "--input", input, "--output", ct})).status, 0);
  EXPECT_EQ(to_string(s.decrypt(read_file(ct)).view()), "hello enclave");
  RunResult dec = cli(with_policy({"decrypt", "--key", kh, "--input", ct, "--output", pt}, stack->pcr0()));
  ASSERT_EQ(dec.status, 0) << dec.err;
  EXPECT_EQ(read_text_file(pt), "hello enclave");
  Bytes tampered = read_file(ct);
  tampered[tampered.size() - 3] ^= 1;
  EXPECT_EQ(cli(with_policy({"decrypt", "--key", kh, "--input", file("bad.bin", tampered)}, stack->pcr0())).status, 1);

  json st = ok_json(cli(with_enclave({"stats", "--json"})));
  EXPECT_GE(st["requests"]["invoke"].get<int>(), 2);
  ASSERT_EQ(cli(with_enclave({"unload", code})).status, 0);
  RunResult gone = cli(with_policy({"invoke", "--artifact", code, "--input", input}, stack->pcr0()));
  EXPECT_EQ(gone.status, 1);
  EXPECT_NE(gone.err.find("no artifact loaded under handle '" + code + "'"), std::string::npos) << gone.err;
}

TEST_F(ParentCli, RefusalsUsageErrorsAndUnreachableEnclaves) {
  sn_test::KmsKey elsewhere = stack->make_key(os_random().bytes(48), {});
  std::string blob = file("other.key.enc", elsewhere.blob);
  RunResult denied = cli(with_enclave({"load-key", "--credentials-file", stack->credentials_file(), "--profile", "enclave",
                                       "--blob", blob}));
  EXPECT_EQ(denied.status, 1);
  EXPECT_NE(denied.err.find("AccessDenied"), std::string::npos) << denied.err;
  EXPECT_EQ(cli(with_enclave({"load-key", "--credentials-file", stack->credentials_file(), "--profile", "nobody", "--blob",
                              blob}))
                .status,
            3);  // no such credentials: the environment's to fix

  std::string input = file("in.bin", as_bytes("x"));
  RunResult no_policy = cli(with_enclave({"invoke", "--artifact", "art-1", "--input", input}));
  EXPECT_EQ(no_policy.status, 2);
  EXPECT_NE(no_policy.err.find("--pcr"), std::string::npos) << no_policy.err;
  RunResult wrong_pcr = cli(with_policy({"invoke", "--artifact", "art-1", "--input", input}, os_random().bytes(48)));
  EXPECT_EQ(wrong_pcr.status, 1);
  EXPECT_EQ(cli(with_policy({"decrypt", "--key", "key-1", "--input", input}, os_random().bytes(48))).status, 1);

  EXPECT_EQ(cli({"describe", "--enclave", "unix:" + stack->dir() + "/nobody.sock"}).status, 3);
  EXPECT_EQ(cli({"describe", "--enclave", "tcp://127.0.0.1:1"}).status, 3);
  EXPECT_EQ(cli({"describe", "--enclave", "bogus://x"}).status, 2);
  EXPECT_EQ(cli({"describe", "--enclave", "vsock://16"}).status, 2);
  EXPECT_EQ(cli({"describe"}).status, 2);  // --enclave is required
  EXPECT_EQ(cli({"frobnicate"}).status, 2);
  EXPECT_EQ(cli(with_enclave({"load-artifact", "--key", "key-1", "--kind", "binary", input})).status, 2);
  EXPECT_EQ(cli(with_enclave({"load-artifact", "--key", "key-1", stack->dir() + "/missing.snst"})).status, 3);
  EXPECT_EQ(cli(with_enclave({"load-artifact", "--key", "key-404", input})).status, 1);
  EXPECT_EQ(cli(with_enclave({"attest", "--pcr", "0=zz"})).status, 2);
  EXPECT_EQ(cli(with_enclave({"attest", "--pcr", "0=abcd"})).status, 2);
  RunResult long_nonce = cli(with_enclave({"attest", "--nonce", std::string(2 * 513, 'a')}));
  EXPECT_EQ(long_nonce.status, 2);  // over the NSM's 512 bytes
  EXPECT_NE(long_nonce.err.find("1..512"), std::string::npos) << long_nonce.err;
  EXPECT_EQ(cli(with_enclave({"attest", "--nonce", "0"})).status, 2);  // not whole bytes
  // One byte is a nonce the CLI sends (whatever the enclave then makes of it).
  EXPECT_NE(cli(with_enclave({"attest", "--no-verify", "--nonce", "00"})).status, 2);
  EXPECT_EQ(cli(with_enclave({"load-key", "--blob", blob, "--encryption-context", "novalue"})).status, 2);
  EXPECT_EQ(cli(with_enclave({"describe", "--timeout", "0"})).status, 2);
  RunResult help = cli({"--help"});
  EXPECT_EQ(help.status, 0);
  for (const char* cmd : {"describe", "attest", "load-key", "load-artifact", "invoke", "encrypt", "decrypt"})
    EXPECT_NE(help.out.find(cmd), std::string::npos) << cmd;
}
