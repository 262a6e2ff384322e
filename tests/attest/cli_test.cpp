// `shield-nitro attest verify|show` end to end through the built CLI: exit codes 0 (valid),
// 1 (refused, one line naming why), 2 (usage), 3 (I/O).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "shield_nitro/attest/document.h"
#include "shield_nitro/attest/trust_anchor.h"
#include "shield_nitro/core/file_io.h"
#include "support/temp_dir.h"
#include "test_pki.h"

namespace shield_nitro {
namespace {

namespace fs = std::filesystem;
const std::string kNsm = std::string(SN_FIXTURES_DIR) + "/nsm";
const std::string kAnjuna = kNsm + "/real/anjuna_prod_2021-03-17.cbor";
const std::string kAnjunaAt = "2021-03-17T22:30:00Z";

struct CliRun {
  int code;
  std::string out, err;
};

struct AttestCli : ::testing::Test {
  test_support::TempDir dir;

  CliRun run(const std::string& args, const std::string& stdin_file = "") {
    std::string out = dir / "out", err = dir / "err";
    std::string cmd = std::string(SN_CLI) + " " + args + " >" + out + " 2>" + err;
    if (!stdin_file.empty()) cmd += " <" + stdin_file;
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text_file(out), read_text_file(err)};
  }
  std::string write(const std::string& name, ByteView data) {
    std::string path = dir / name;
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data.data()), static_cast<long>(data.size()));
    return path;
  }
};

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

TEST_F(AttestCli, VerifiesAStoredDocumentAtAnExplicitTime) {
  CliRun r = run("attest verify " + kAnjuna + " --at " + kAnjunaAt);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("i-078824548edcf6519-enc01784234ec227b58"), std::string::npos);
  EXPECT_NE(r.out.find("PCR0:  2d151586641b790f"), std::string::npos);
  EXPECT_NE(r.out.find("nonce:      null"), std::string::npos);
  EXPECT_EQ(run("attest verify " + kAnjuna + " --aws-root --at 1616020000").code, 0);
}

TEST_F(AttestCli, JsonClaims) {
  CliRun r = run("attest verify " + kNsm + "/real/evervault_prod_2022-10-13.cbor --at 1665651482 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["valid"].get<bool>());
  EXPECT_EQ(j["digest"], "SHA384");
  EXPECT_EQ(j["nonce"]["presence"], "bytes");
  EXPECT_EQ(j["nonce"]["length"], 256);
  EXPECT_EQ(j["public_key"]["presence"], "null");
  EXPECT_EQ(j["pcrs"].size(), 16u);
  EXPECT_EQ(j["trust_anchor_sha256"], attest::kAwsRootG1Sha256Hex);
}

TEST_F(AttestCli, ExpiredAtNowIsOneLineExitOne) {
  CliRun r = run("attest verify " + kAnjuna);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(lines(r.err), 1u);
  EXPECT_NE(r.err.find("certificate expired"), std::string::npos);
  EXPECT_TRUE(r.out.empty());
  CliRun j = run("attest verify " + kAnjuna + " --json");
  EXPECT_EQ(j.code, 1);
  EXPECT_EQ(nlohmann::json::parse(j.out)["error"]["code"], "expired");
}

TEST_F(AttestCli, DebugDocumentsNeedAllowDebug) {
  std::string doc = kNsm + "/real/evervault_debug_2022-10-12.cbor --at 1665582606";
  CliRun r = run("attest verify " + doc);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("debug-mode"), std::string::npos);
  CliRun ok = run("attest verify " + doc + " --allow-debug");
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("debug:      YES"), std::string::npos);
}

TEST_F(AttestCli, PolicyOptions) {
  std::string base = "attest verify " + kAnjuna + " --at " + kAnjunaAt;
  std::string pcr0 = "2d151586641b790f3b1b92b8f89678c3aa86e73dd97969c892124be9d2b7fdc62b58a55cd9ee8216f6f5689cebf590ad";
  EXPECT_EQ(run(base + " --pcr 0=" + pcr0 + " --pcr 3=" + std::string(96, '0')).code, 0);
  CliRun bad = run(base + " --pcr 0=" + std::string(96, 'a'));
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("PCR0"), std::string::npos);
  EXPECT_EQ(run(base + " --pcr 0=" + std::string(96, 'a') + " --pcr 0=" + pcr0).code, 0);  // allow-list
  EXPECT_EQ(run(base + " --nonce 00112233").code, 1);
  EXPECT_EQ(run(base + " --user-data 00").code, 1);
  EXPECT_EQ(run(base + " --max-age 3600").code, 0);
  EXPECT_EQ(run(base + " --max-age 60").code, 1);
}

TEST_F(AttestCli, NonceMatch) {
  std::string path = kNsm + "/real/evervault_prod_2022-10-13.cbor";
  attest::Document d = attest::decode_document(read_file(path));
  std::string base = "attest verify " + path + " --at 1665651482 --nonce ";
  EXPECT_EQ(run(base + hex_encode(d.nonce.value)).code, 0);
  Bytes other = d.nonce.value;
  other[0] ^= 1;
  EXPECT_EQ(run(base + hex_encode(other)).code, 1);
}

TEST_F(AttestCli, Base64AndStdinInput) {
  std::string b64 = write("doc.b64", as_bytes(base64_encode(read_file(kAnjuna)) + "\n"));
  EXPECT_EQ(run("attest verify " + b64 + " --at " + kAnjunaAt).code, 0);
  EXPECT_EQ(run("attest verify - --at " + kAnjunaAt, kAnjuna).code, 0);
  EXPECT_EQ(run("attest show -", b64).code, 0);
  std::string junk = write("junk", as_bytes("hello world"));
  EXPECT_EQ(run("attest verify " + junk).code, 1);
}

TEST_F(AttestCli, IndefiniteOuterArrayIsSniffedAsADocument) {
  Bytes doc = read_file(kAnjuna);
  Bytes indef = {0x9f};
  indef.insert(indef.end(), doc.begin() + 1, doc.end());
  indef.push_back(0xff);
  std::string raw = write("indef.cbor", indef);
  CliRun r = run("attest verify " + raw + " --at " + kAnjunaAt);
  EXPECT_EQ(r.code, 0) << r.err;
  std::string b64 = write("indef.b64", as_bytes(base64_encode(indef) + "\n"));
  EXPECT_EQ(run("attest verify " + b64 + " --at " + kAnjunaAt).code, 0);
  CliRun j = run("attest show " + raw + " --json");
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_TRUE(nlohmann::json::parse(j.out)["indefinite_envelope"].get<bool>());
}

TEST_F(AttestCli, InputThatIsNoDocumentSaysWhatItLooksLike) {
  testpki::Chain chain = testpki::make_chain(1750000000);
  Bytes big_elf(40000, 0);
  std::copy_n("\x7f" "ELF", 4, big_elf.begin());
  const std::string N = "not an attestation document (neither a COSE_Sign1 nor base64 of one): ";
  const std::pair<std::string, std::string> cases[] = {
      {write("empty", {}), N + "empty"},
      {write("root.pem", as_bytes(chain.root.pem())),
       N + "looks like PEM text (CERTIFICATE)"},
      {kNsm + "/manifest.json", N + "looks like JSON"},
      {write("elf", Bytes{0x7f, 'E', 'L', 'F', 2, 1, 1, 0}), N + "binary, first bytes 7f454c46"},
      {write("big.elf", big_elf), "not an attestation document (40000 bytes, more than any document): binary, first bytes 7f454c46"},
      {write("hello", as_bytes("hello world\n")),
       N + "looks like text starting 'hello world'"},
      {write("map.b64", as_bytes(base64_encode(Bytes{0xa1, 0x01, 0x02}))),
       "not an attestation document (base64 of something else): binary, first bytes a10102"},
  };
  for (const auto& [path, expected] : cases) {
    for (const char* cmd : {"attest verify ", "attest show "}) {
      CliRun r = run(cmd + path);
      EXPECT_EQ(r.code, 1) << cmd << path;
      EXPECT_EQ(lines(r.err), 1u) << r.err;
      EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
    }
  }
}

TEST_F(AttestCli, NegativeFixtures) {
  for (const char* f : {"basenv_corrupted_as_stored_upstream.cbor", "blocky_selfsigned_not_aws.cbor"}) {
    CliRun r = run("attest verify " + kNsm + "/negative/" + f + " --at 1725719859 --allow-debug");
    EXPECT_EQ(r.code, 1) << f;
    EXPECT_EQ(lines(r.err), 1u) << f;
  }
}

TEST_F(AttestCli, ExplicitRootForOtherIssuers) {
  const int64_t t0 = 1750000000;
  testpki::Chain chain = testpki::make_chain(t0);
  std::string doc = write("sim.cbor", testpki::sign(testpki::payload(chain, t0 * 1000ull), chain.leaf.key.get()));
  std::string root = write("root.pem", as_bytes(chain.root.pem()));
  CliRun ok = run("attest verify " + doc + " --root " + root + " --at " + std::to_string(t0));
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("caller-supplied root"), std::string::npos);
  CliRun aws = run("attest verify " + doc + " --at " + std::to_string(t0));
  EXPECT_EQ(aws.code, 1);
  EXPECT_NE(aws.err.find("not the trusted root"), std::string::npos);
}

TEST_F(AttestCli, UsageAndIoErrors) {
  std::string base = "attest verify " + kAnjuna + " --at " + kAnjunaAt;
  EXPECT_EQ(run(base + " --pcr 0=zz").code, 2);
  EXPECT_EQ(run(base + " --pcr 0=00").code, 2);
  EXPECT_EQ(run(base + " --pcr 32=" + std::string(96, '0')).code, 2);
  EXPECT_EQ(run(base + " --nonce xyz").code, 2);
  EXPECT_EQ(run(base + " --aws-root --root /tmp/x.pem").code, 2);
  EXPECT_EQ(run("attest verify " + kAnjuna + " --at yesterday").code, 2);
  EXPECT_EQ(run("attest verify " + kAnjuna + " --at 2021-03-17T22:30:00").code, 2);
  EXPECT_EQ(run("attest verify " + dir / "missing.cbor").code, 3);
  EXPECT_EQ(run("attest verify " + kAnjuna + " --at 2021-03-17T23:30:00+01:00").code, 0);
  EXPECT_EQ(run("attest verify " + kAnjuna + " --at 2021-03-17T22:30:00.5Z").code, 0);
}

TEST_F(AttestCli, ShowDecodesWithoutVerifying) {
  CliRun r = run("attest show " + kAnjuna);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("UNVERIFIED"), std::string::npos);
  EXPECT_NE(r.out.find("CN=aws.nitro-enclaves"), std::string::npos);
  CliRun j = run("attest show " + kNsm + "/real/basenv_indefinite_2026-01-03.cbor --json");
  ASSERT_EQ(j.code, 0) << j.err;
  auto doc = nlohmann::json::parse(j.out);
  EXPECT_FALSE(doc["verified"].get<bool>());
  EXPECT_TRUE(doc["indefinite_payload_map"].get<bool>());
  ASSERT_EQ(doc["cabundle"].size(), 4u);
  EXPECT_EQ(doc["cabundle"][0]["subject"], "C=US, O=Amazon, OU=AWS, CN=aws.nitro-enclaves");
  EXPECT_EQ(doc["certificate"]["key_type"], "EC P-384");
  EXPECT_EQ(run("attest show " + kNsm + "/negative/basenv_corrupted_as_stored_upstream.cbor").code, 1);
}

}  // namespace
}  // namespace shield_nitro
