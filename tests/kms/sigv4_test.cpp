// SigV4 conformance: every header-signing case of the AWS suite, the KMS vectors, and the
// verifier's accept/reject behaviour.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "shield_nitro/core/file_io.h"
#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/kms/sigv4.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;
namespace fs = std::filesystem;

namespace {

const std::string kSuite = std::string(SN_FIXTURES_DIR) + "/kms/sigv4-suite";

struct SuiteRequest {
  SignableRequest req;
  std::string body;
};

// request.txt: "METHOD PATH HTTP/1.1", headers (continuation lines start with whitespace), blank, body.
SuiteRequest parse_request_txt(const std::string& text) {
  SuiteRequest out;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  auto first = line.find(' '), last = line.rfind(' ');
  out.req.method = line.substr(0, first);
  std::string target = line.substr(first + 1, last - first - 1);
  auto q = target.find('?');
  out.req.path = target.substr(0, q);
  out.req.query = q == std::string::npos ? "" : target.substr(q + 1);
  bool in_body = false;
  while (std::getline(in, line)) {
    if (in_body) {
      out.body += (out.body.empty() ? "" : "\n") + line;
    } else if (line.empty()) {
      in_body = true;
    } else if (line[0] == ' ' || line[0] == '\t') {
      out.req.headers.back().second += "\n" + line;
    } else {
      auto colon = line.find(':');
      out.req.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
    }
  }
  return out;
}

std::string iso_to_amz(const std::string& iso) {  // 2015-08-30T12:36:00Z -> 20150830T123600Z
  std::string s;
  for (char c : iso)
    if (c != '-' && c != ':') s += c;
  return s;
}

std::string read(const fs::path& p) { return read_text_file(p.string()); }

std::string authorization_line(const std::string& signed_request) {
  std::istringstream in(signed_request);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Authorization:", 0) == 0) return line.substr(14);
  return "";
}

}  // namespace

TEST(SigV4Suite, EveryHeaderSigningCaseMatches) {
  int cases = 0;
  for (const auto& dir : fs::directory_iterator(kSuite)) {
    if (!dir.is_directory()) continue;
    SCOPED_TRACE(dir.path().filename().string());
    auto ctx = nlohmann::json::parse(read(dir.path() / "context.json"));
    SuiteRequest sr = parse_request_txt(read(dir.path() / "request.txt"));
    sr.req.body = as_bytes(sr.body);
    std::string secret = ctx["credentials"]["secret_access_key"];
    SigV4Params p;
    p.access_key_id = ctx["credentials"]["access_key_id"];
    p.secret_access_key = as_bytes(secret);
    p.session_token = ctx["credentials"].value("token", "");
    p.region = ctx["region"];
    p.service = ctx["service"];
    p.amz_date = iso_to_amz(ctx["timestamp"]);
    p.normalize_path = ctx["normalize"];
    p.sign_body_header = ctx["sign_body"];
    p.sign_session_token = !ctx.value("omit_session_token", false);
    SigV4Result r = sigv4_sign(sr.req, p);
    EXPECT_EQ(r.canonical_request, read(dir.path() / "header-canonical-request.txt"));
    EXPECT_EQ(r.string_to_sign, read(dir.path() / "header-string-to-sign.txt"));
    EXPECT_EQ(r.signature, read(dir.path() / "header-signature.txt"));
    EXPECT_EQ(r.authorization, authorization_line(read(dir.path() / "header-signed-request.txt")));
    ++cases;
  }
  EXPECT_EQ(cases, 38);
}

class KmsVector : public ::testing::TestWithParam<int> {};

TEST_P(KmsVector, IntermediateValuesAndSignature) {
  auto doc = nlohmann::json::parse(read(std::string(SN_FIXTURES_DIR) + "/kms/sigv4-kms-vector.json"));
  const auto& v = doc["vectors"][GetParam()];
  const auto& in = v["inputs"];
  const auto& ex = v["expected"];
  std::string body = in["body"], secret = in["secret_access_key"];
  SignableRequest req{in["method"], in["path"], in["query"], {{"Host", in["host"]}}, as_bytes(body)};
  for (auto& [k, val] : in["headers"].items()) req.headers.emplace_back(k, val.get<std::string>());
  SigV4Params p{in["access_key_id"], as_bytes(secret), in.value("session_token", ""), in["region"], in["service"],
                in["x_amz_date"]};
  SigV4Result r = sigv4_sign(req, p);
  EXPECT_EQ(r.payload_hash, ex["payload_sha256"]);
  EXPECT_EQ(r.signed_headers, ex["signed_headers"]);
  EXPECT_EQ(r.canonical_request, ex["canonical_request"]);
  EXPECT_EQ(sha256_hex(as_bytes(r.canonical_request)), ex["canonical_request_sha256"]);
  EXPECT_EQ(r.credential_scope, ex["credential_scope"]);
  EXPECT_EQ(r.string_to_sign, ex["string_to_sign"]);
  EXPECT_EQ(hex_encode(sigv4_signing_key(as_bytes(secret), "20150830", in["region"], "kms").view()),
            ex["signing_key_chain"]["k_signing"]);
  SecureBytes seed(as_bytes("AWS4" + secret));
  EXPECT_EQ(hex_encode(hmac_sha256(seed.view(), as_bytes("20150830"))), ex["signing_key_chain"]["k_date"]);
  EXPECT_EQ(r.signature, ex["signature"]);
  EXPECT_EQ(r.authorization, ex["authorization_header"]);
  EXPECT_TRUE(r.added_headers.empty());  // the vector already carries x-amz-date and the token
}

INSTANTIATE_TEST_SUITE_P(Vectors, KmsVector, ::testing::Values(0, 1));

// ---- verifier ----

namespace {

const std::string kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr int64_t kNow = 1440938160;  // 2015-08-30T12:36:00Z

SignableRequest signed_kms_request(const std::string& body, int64_t at, const std::string& token = "") {
  SignableRequest req{"POST", "/", "", {{"Host", "kms.us-east-1.amazonaws.com"},
                                        {"Content-Type", "application/x-amz-json-1.1"},
                                        {"X-Amz-Target", "TrentService.Decrypt"}}, {}};
  req.body = as_bytes(body);
  SigV4Params p{"AKIDEXAMPLE", as_bytes(kSecret), token, "us-east-1", "kms", amz_date(at)};
  SigV4Result r = sigv4_sign(req, p);
  for (auto& h : r.added_headers) req.headers.push_back(h);
  req.headers.emplace_back("Authorization", r.authorization);
  req.headers.emplace_back("User-Agent", "unsigned/1.0");
  return req;
}

std::optional<VerifierSecret> lookup(const std::string& akid, const std::string& token = "") {
  if (akid != "AKIDEXAMPLE") return std::nullopt;
  return VerifierSecret{SecureBytes(as_bytes(kSecret)), token};
}

std::string verify_type(const SignableRequest& req, int64_t now, const std::string& token = "") {
  try {
    sigv4_verify(req, [&](const std::string& a) { return lookup(a, token); }, {"us-east-1", "kms", now});
    return "ok";
  } catch (const KmsError& e) {
    EXPECT_EQ(e.http_status(), 400);
    return e.type();
  }
}

}  // namespace

TEST(SigV4Verify, AcceptsOwnSignatureWithinSkew) {
  std::string body = R"({"KeyId":"alias/x"})";
  EXPECT_EQ(verify_type(signed_kms_request(body, kNow), kNow), "ok");
  EXPECT_EQ(verify_type(signed_kms_request(body, kNow), kNow + 5 * 60), "ok");  // KMS's window: 5 minutes
  EXPECT_EQ(verify_type(signed_kms_request(body, kNow), kNow - 5 * 60), "ok");
  EXPECT_EQ(verify_type(signed_kms_request(body, kNow, "TOKEN"), kNow, "TOKEN"), "ok");
}

TEST(SigV4Verify, RejectsLikeAws) {
  std::string body = R"({"KeyId":"alias/x"})";
  auto req = signed_kms_request(body, kNow);
  EXPECT_EQ(verify_type(req, kNow + 5 * 60 + 1), "InvalidSignatureException");
  EXPECT_EQ(verify_type(req, kNow - 5 * 60 - 1), "InvalidSignatureException");
  std::string tampered = R"({"KeyId":"alias/y"})";
  auto bad = req;
  bad.body = as_bytes(tampered);
  EXPECT_EQ(verify_type(bad, kNow), "InvalidSignatureException");
  auto wrong_target = req;
  wrong_target.headers[2].second = "TrentService.Encrypt";
  EXPECT_EQ(verify_type(wrong_target, kNow), "InvalidSignatureException");
  EXPECT_EQ(verify_type(req, kNow, "EXPECTED-TOKEN"), "UnrecognizedClientException");
  auto no_auth = req;
  std::erase_if(no_auth.headers, [](auto& h) { return h.first == "Authorization"; });
  EXPECT_EQ(verify_type(no_auth, kNow), "MissingAuthenticationTokenException");
  auto unknown = req;
  for (auto& h : unknown.headers)
    if (h.first == "Authorization") h.second.replace(h.second.find("AKIDEXAMPLE"), 11, "AKIDUNKNOWN");
  EXPECT_EQ(verify_type(unknown, kNow), "UnrecognizedClientException");
}

TEST(SigV4Verify, MalformedAuthorizationIsIncomplete) {
  for (std::string bad : {"", "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms",
                          "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/kms/aws4_request, SignedHeaders=host",
                          "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/kms/aws4_request, SignedHeaders=Host, "
                          "Signature=0000000000000000000000000000000000000000000000000000000000000000",
                          "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/kms/aws4_request, SignedHeaders=host, "
                          "Signature=zz",
                          "Basic dXNlcjpwYXNz"}) {
    SCOPED_TRACE(bad);
    try {
      parse_authorization(bad);
      ADD_FAILURE() << "accepted";
    } catch (const KmsError& e) {
      EXPECT_EQ(e.type(), "IncompleteSignatureException");
    }
  }
}

TEST(SigV4, AmzDateRoundTripAndRejects) {
  EXPECT_EQ(amz_date(kNow), "20150830T123600Z");
  EXPECT_EQ(parse_amz_date("20150830T123600Z"), kNow);
  for (std::string bad : {"", "2015-08-30T12:36:00Z", "20151330T123600Z", "20150830T123600", "2015083aT123600Z"})
    EXPECT_THROW(parse_amz_date(bad), Error) << bad;
}

TEST(KmsErrorType, NormalizesNamespacesAndMapsErrc) {
  EXPECT_EQ(normalize_aws_type("com.amazonaws.kms#NotFoundException"), "NotFoundException");
  EXPECT_EQ(normalize_aws_type("NotFoundException:http://internal.amazon.com/"), "NotFoundException");
  EXPECT_EQ(KmsError(400, "AccessDeniedException", "no").code(), Errc::kPolicy);
  EXPECT_EQ(KmsError(400, "ValidationException", "no").code(), Errc::kRemote);
  EXPECT_TRUE(KmsError(400, "ThrottlingException", "slow").retryable());
  EXPECT_TRUE(KmsError(503, "ServiceUnavailable", "").retryable());
  EXPECT_FALSE(KmsError(400, "InvalidSignatureException", "").retryable());
  std::string what = KmsError(400, "AccessDeniedException", "denied", "req-1", "Decrypt").what();
  EXPECT_EQ(what, "KMS Decrypt: HTTP 400 AccessDeniedException: denied (request id req-1)");
}
