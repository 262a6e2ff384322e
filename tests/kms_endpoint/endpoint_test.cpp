// The enclave's attested KMS endpoint for unmodified apps, against kms-local trusting the NSM
// simulator (tests/kms/local_stack.h): the container-credentials endpoint and its token, local
// credentials that only this endpoint accepts, attested calls that succeed only through it, KMS
// errors passed through, refusals of bad signatures and unsupported fields, garbage. The same
// with Debian's stock botocore (endpoint_botocore.py, /usr/bin/python3).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kms/local_stack.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/kms/http_client.h"
#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/kms_endpoint/endpoint.h"
#include "shield_nitro/net/endpoint.h"
#include "support/expect_error.h"

using namespace sn_test;
using namespace shield_nitro::kms_endpoint;
using shield_nitro::test_support::code_of;
using shield_nitro::test_support::thrown;

namespace {

std::string aws_type(const std::function<void()>& fn) {
  auto e = thrown<KmsError>(fn);
  return e ? e->type() : "";
}

std::string env_of(const AppEnvironment& env, const std::string& name) {
  for (const auto& [k, v] : env)
    if (k == name) return v;
  ADD_FAILURE() << name << " missing from the app's environment";
  return "";
}

// kms-local + simulated NSM, and the endpoint in front of it with the enclave role's credentials.
struct EndpointStack {
  LocalStack stack;
  SimRecipient sim{stack};
  std::unique_ptr<KmsEndpoint> endpoint;
  AppEnvironment env;
  std::string key;  // a key whose policy requires the simulated enclave's attestation

  explicit EndpointStack(const std::function<void(EndpointOptions&)>& tweak = {}) {
    key = kms_call(*stack.admin, "CreateKey", {{"Description", "attested"}})["KeyMetadata"]["Arn"];
    stack.put_policy(key);
    EndpointOptions o;
    o.region = "us-east-1";
    o.kms.endpoint = stack.url();
    o.kms.max_attempts = 1;
    o.role_credentials = std::make_shared<StaticCredentials>(stack.credentials("enclave"));
    o.attestation = &sim.source;
    o.recipient_keys = &sim.keys;
    if (tweak) tweak(o);
    endpoint = std::make_unique<KmsEndpoint>(std::move(o));
    env = endpoint->start();
  }

  HttpResponse get_credentials(const HeaderList& headers) const {
    return http_request("GET", env_of(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"), headers, {}, {});
  }
  Credentials local_credentials() const {
    HttpResponse r = get_credentials({{"Authorization", env_of(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")}});
    EXPECT_EQ(r.status, 200) << r.body;
    auto j = nlohmann::json::parse(r.body);
    Credentials c;
    c.access_key_id = j["AccessKeyId"];
    c.secret_access_key = SecureBytes(as_bytes(j["SecretAccessKey"].get<std::string>()));
    c.session_token = SecureBytes(as_bytes(j["Token"].get<std::string>()));
    c.expiration_s = parse_iso8601_utc(j["Expiration"]);
    return c;
  }
  // The app: a stock client pointed at the endpoint, signing with creds.
  KmsClient app(Credentials creds, const Clock& clock = system_clock()) const {
    KmsClientOptions o;
    o.endpoint = env_of(env, "AWS_ENDPOINT_URL_KMS");
    o.region = env_of(env, "AWS_REGION");
    o.max_attempts = 1;
    return KmsClient(o, std::make_shared<StaticCredentials>(std::move(creds)), clock);
  }
  KmsClient app() const { return app(local_credentials()); }
};

TEST(KmsEndpoint, RefusesIncompleteOptions) {
  EXPECT_EQ(code_of([] { KmsEndpoint e(EndpointOptions{}); }), Errc::kUsage);
  LocalStack s;
  SimRecipient sim(s);
  EndpointOptions o;
  o.region = "us-east-1";
  o.attestation = &sim.source;
  o.recipient_keys = &sim.keys;
  EXPECT_NE(shield_nitro::test_support::message_of([&] { KmsEndpoint e(o); }).find("role credentials"), std::string::npos);
}

TEST(KmsEndpoint, TheAppsEnvironmentPointsAtTheEndpoint) {
  EndpointStack s;
  std::string url = "http://127.0.0.1:" + std::to_string(s.endpoint->port());
  EXPECT_EQ(env_of(s.env, "AWS_ENDPOINT_URL_KMS"), url);
  EXPECT_EQ(env_of(s.env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"), url + kCredentialsPath);
  EXPECT_EQ(env_of(s.env, "AWS_REGION"), "us-east-1");
  EXPECT_EQ(env_of(s.env, "AWS_DEFAULT_REGION"), "us-east-1");
  EXPECT_EQ(env_of(s.env, "AWS_EC2_METADATA_DISABLED"), "true");
  EXPECT_EQ(env_of(s.env, "AWS_CONTAINER_AUTHORIZATION_TOKEN").size(), 64u);
}

TEST(KmsEndpoint, CredentialsNeedTheTokenAndAreLocalOnes) {
  EndpointStack s;
  EXPECT_EQ(s.get_credentials({}).status, 401);
  EXPECT_EQ(s.get_credentials({{"Authorization", "0000"}}).status, 403);
  std::string token = env_of(s.env, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
  token[0] = token[0] == 'a' ? 'b' : 'a';
  EXPECT_EQ(s.get_credentials({{"Authorization", token}}).status, 403);
  Credentials local = s.local_credentials();
  Credentials role = s.stack.credentials("enclave");
  EXPECT_NE(local.access_key_id, role.access_key_id);
  EXPECT_EQ(local.access_key_id.rfind("ASIA", 0), 0u);
  EXPECT_EQ(local.secret_access_key.size(), 40u);
  EXPECT_FALSE(local.session_token.empty());
  EXPECT_GT(local.expiration_s, system_clock().now_s() + 3600);
  // The role's secret appears in no answer the app can get.
  HttpResponse r = s.get_credentials({{"Authorization", env_of(s.env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")}});
  std::string role_secret(reinterpret_cast<const char*>(role.secret_access_key.data()), role.secret_access_key.size());
  EXPECT_EQ(r.body.find(role_secret), std::string::npos);
  // The local credentials are worth nothing at KMS itself.
  KmsClientOptions direct;
  direct.endpoint = s.stack.url();
  direct.max_attempts = 1;
  KmsClient at_kms(direct, std::make_shared<StaticCredentials>(std::move(local)));
  EXPECT_EQ(aws_type([&] { at_kms.generate_random(8); }), "UnrecognizedClientException");
  EXPECT_EQ(s.endpoint->stats().credentials_refused, 3u);
}

// Local credentials are renewed once half their lifetime has passed; the previous ones stay
// valid until their own Expiration, then the app is told ExpiredTokenException (and refreshes).
TEST(KmsEndpoint, LocalCredentialsRenewAndExpire) {
  FixedClock clock(system_clock().now_ms());  // moved by seconds: within KMS's 5-minute skew
  EndpointStack s([&](EndpointOptions& o) {
    o.clock = &clock;
    o.local_credentials_lifetime_s = 120;
  });
  Credentials first = s.local_credentials();
  EXPECT_EQ(first.expiration_s, clock.now_s() + 120);
  clock.advance_ms(59'000);
  EXPECT_EQ(s.local_credentials().access_key_id, first.access_key_id);
  clock.advance_ms(2'000);
  Credentials second = s.local_credentials();
  EXPECT_NE(second.access_key_id, first.access_key_id);
  EXPECT_EQ(s.app(first.clone(), clock).generate_random(8).size(), 8u);
  clock.advance_ms(60'000);  // 121 s after the first were issued
  EXPECT_EQ(aws_type([&] { s.app(first.clone(), clock).generate_random(8); }), "ExpiredTokenException");
  EXPECT_EQ(s.app(second.clone(), clock).generate_random(8).size(), 8u);
}

// The key's policy requires the enclave's attestation: the role itself is refused without a
// Recipient, while the app, through the endpoint and with no attestation of its own, gets the
// plaintext.
TEST(KmsEndpoint, AttestedDecryptSucceedsOnlyThroughTheEndpoint) {
  EndpointStack s;
  const EncryptionContext ctx{{"app", "inference"}};
  EncryptResult sealed = s.stack.admin->encrypt(s.key, as_bytes("model weights key"), ctx);
  auto role = s.stack.client("enclave");
  EXPECT_EQ(aws_type([&] { role->decrypt(sealed.ciphertext_blob, ctx); }), "AccessDeniedException");
  KmsClient app = s.app();
  int before = s.stack.decrypts;
  DecryptResult r = app.decrypt(sealed.ciphertext_blob, ctx);
  EXPECT_EQ(to_string(r.plaintext.view()), "model weights key");
  EXPECT_EQ(r.key_id, s.key);
  EXPECT_EQ(r.encryption_algorithm, "SYMMETRIC_DEFAULT");
  EXPECT_EQ(s.stack.decrypts, before + 1);
  EXPECT_EQ(s.endpoint->stats().attested_calls, 1u);
  // KMS's own refusal reaches the app in KMS's shape.
  EXPECT_EQ(aws_type([&] { app.decrypt(sealed.ciphertext_blob, {{"app", "other"}}); }), "InvalidCiphertextException");
}

// An app that attests by itself (its own Recipient) is forwarded unchanged: KMS answers
// CiphertextForRecipient, which the app opens; the endpoint adds nothing.
TEST(KmsEndpoint, AnAppsOwnRecipientIsForwardedUnchanged) {
  EndpointStack s;
  const EncryptionContext ctx{{"app", "inference"}};
  EncryptResult sealed = s.stack.admin->encrypt(s.key, as_bytes("self-attested"), ctx);
  SimRecipient own(s.stack);
  DecryptResult r = s.app().decrypt(sealed.ciphertext_blob, ctx, "", &own.recipient);
  EXPECT_EQ(to_string(r.plaintext.view()), "self-attested");
  EXPECT_EQ(s.endpoint->stats().attested_calls, 0u);
  EXPECT_EQ(s.endpoint->stats().kms_calls, 1u);
}

TEST(KmsEndpoint, GenerateDataKeyAndRandomReturnPlaintext) {
  EndpointStack s;
  KmsClient app = s.app();
  DataKeyResult dk = app.generate_data_key(s.key, 32, {{"purpose", "test"}});
  EXPECT_EQ(dk.plaintext.size(), 32u);
  EXPECT_EQ(to_bytes(app.decrypt(dk.ciphertext_blob, {{"purpose", "test"}}).plaintext.view()), to_bytes(dk.plaintext.view()));
  EXPECT_EQ(app.generate_data_key(s.key, 16).plaintext.size(), 16u);
  EXPECT_EQ(app.generate_data_key(s.key, 48).plaintext.size(), 48u);
  SecureBytes random = app.generate_random(64);
  EXPECT_EQ(random.size(), 64u);
  EXPECT_NE(to_bytes(random.view()), Bytes(64, 0));
  EXPECT_EQ(s.endpoint->stats().attested_calls, 5u);
}

TEST(KmsEndpoint, AttestedDataKeyPairAndSharedSecret) {
  EndpointStack s;
  KmsClient app = s.app();
  DataKeyPairResult pair = app.generate_data_key_pair(s.key, "ECC_NIST_P256");  // the client checks the pair matches
  EXPECT_FALSE(pair.private_key.empty());
  std::string ecc = kms_call(*s.stack.admin, "CreateKey", {{"KeySpec", "ECC_NIST_P256"}, {"KeyUsage", "KEY_AGREEMENT"}})["KeyMetadata"]["Arn"];
  s.stack.put_policy(ecc);
  ossl::Ptr<EVP_PKEY> peer(EVP_EC_gen("P-256"));
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(peer.get(), &der);
  Bytes spki(der, der + len);
  OPENSSL_free(der);
  SharedSecretResult secret = app.derive_shared_secret(ecc, spki);
  EXPECT_EQ(secret.shared_secret.size(), 32u);
  EXPECT_EQ(aws_type([&] { s.stack.client("enclave")->derive_shared_secret(ecc, spki); }), "AccessDeniedException");
}

TEST(KmsEndpoint, OtherOperationsAreForwardedResigned) {
  EndpointStack s;
  KmsClient app = s.app();
  // The enclave role may Encrypt under the key? Not under the attested policy: KMS says so, and the
  // answer is KMS's. DescribeKey of the default-policy key is allowed for the account's roles.
  std::string plain_key = kms_call(*s.stack.admin, "CreateKey", {{"Description", "default policy"}})["KeyMetadata"]["Arn"];
  EncryptResult e = app.encrypt(plain_key, as_bytes("hello"));
  EXPECT_EQ(e.key_id, plain_key);
  EXPECT_EQ(to_string(s.stack.admin->decrypt(e.ciphertext_blob).plaintext.view()), "hello");
  EXPECT_EQ(kms_call(app, "DescribeKey", {{"KeyId", plain_key}})["KeyMetadata"]["Arn"], plain_key);
  EXPECT_EQ(aws_type([&] { kms_call(app, "DescribeKey", {{"KeyId", "alias/missing"}}); }), "NotFoundException");
}

// A forwarded operation reaches KMS byte for byte as the app sent it: the endpoint re-signs,
// it does not re-serialize (KmsClient::call_text), and KMS's answer comes back as text.
TEST(KmsEndpoint, ForwardedBodiesReachKmsByteForByte) {
  EndpointStack s;
  KmsClient app = s.app();
  std::string plain_key = kms_call(*s.stack.admin, "CreateKey", {{"Description", "default policy"}})["KeyMetadata"]["Arn"];
  const std::string body = "{ \"KeyId\" :\n  \"" + plain_key + "\" }";
  nlohmann::json answer = nlohmann::json::parse(app.call_text("DescribeKey", body));
  EXPECT_EQ(answer["KeyMetadata"]["Arn"], plain_key);
  EXPECT_EQ(s.stack.last_body(), body);
  EXPECT_EQ(s.endpoint->stats().attested_calls, 0u);
}

TEST(KmsEndpoint, RefusesBadSignaturesAndUnsupportedFields) {
  EndpointStack s;
  Credentials local = s.local_credentials();
  Credentials wrong_secret = local.clone();
  wrong_secret.secret_access_key = SecureBytes(as_bytes(std::string(40, 'x')));
  EXPECT_EQ(aws_type([&] { s.app(std::move(wrong_secret)).generate_random(8); }), "InvalidSignatureException");
  Credentials wrong_token = local.clone();
  wrong_token.session_token = SecureBytes(as_bytes(std::string("forged")));
  EXPECT_EQ(aws_type([&] { s.app(std::move(wrong_token)).generate_random(8); }), "UnrecognizedClientException");
  // The role's own credentials are not what the endpoint accepts either.
  EXPECT_EQ(aws_type([&] { s.app(s.stack.credentials("enclave")).generate_random(8); }), "UnrecognizedClientException");
  // Unsigned.
  HttpResponse r = http_request("POST", s.endpoint->url() + "/",
                                {{"X-Amz-Target", "TrentService.GenerateRandom"}, {"Content-Type", "application/x-amz-json-1.1"}},
                                as_bytes(std::string("{\"NumberOfBytes\":8}")), {});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("MissingAuthenticationTokenException"), std::string::npos) << r.body;
  EXPECT_TRUE(find_header(r.headers, "x-amzn-RequestId").has_value());
  KmsClient app = s.app(std::move(local));
  EXPECT_EQ(aws_type([&] { kms_call(app, "GenerateDataKey", {{"KeyId", s.key}, {"KeySpec", "AES_256"}, {"GrantTokens", {"t"}}}); }),
            "ValidationException");
  EXPECT_EQ(aws_type([&] { kms_call(app, "GenerateDataKey", {{"KeyId", s.key}}); }), "ValidationException");
  EXPECT_EQ(aws_type([&] { kms_call(app, "GenerateRandom", {{"NumberOfBytes", 5000}}); }), "ValidationException");
  EXPECT_EQ(aws_type([&] { kms_call(app, "Decrypt", {{"CiphertextBlob", "%%%"}}); }), "SerializationException");
  EXPECT_EQ(s.stack.decrypts, 0);
  EXPECT_GE(s.endpoint->stats().kms_refused, 7u);
}

// A connection to 127.0.0.1:port.
UniqueFd connect_to(int port) { return net::connect(net::Endpoint::tcp("127.0.0.1", static_cast<uint16_t>(port))); }

// Whatever arrives gets an HTTP answer or a close, and the endpoint keeps serving.
TEST(KmsEndpoint, GarbageDoesNotStopIt) {
  EndpointStack s;
  const std::string inputs[] = {
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 5\r\nX-Amz-Target: TrentService.Decrypt\r\nAuthorization: AWS4-HMAC-SHA256 x\r\n\r\n{]]]}",
      "POST /v1/credentials HTTP/1.1\r\nAuthorization: " + std::string(20000, 'a') + "\r\n\r\n",
      std::string(1000, '\0') + "\r\n\r\n",
  };
  for (const auto& in : inputs) {
    UniqueFd fd = connect_to(s.endpoint->port());
    ::send(fd.get(), in.data(), in.size(), MSG_NOSIGNAL);
    ::shutdown(fd.get(), SHUT_WR);
    char buf[4096];
    std::string got;
    for (ssize_t n; (n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
    if (!got.empty())
      EXPECT_TRUE(got.rfind("HTTP/1.1 4", 0) == 0 || got.rfind("HTTP/1.1 501", 0) == 0) << got.substr(0, 200);
  }
  EXPECT_EQ(s.app().generate_random(8).size(), 8u);
}

TEST(KmsEndpoint, StopEndsServingAndTheTokenWithIt) {
  EndpointStack s;
  std::string url = s.endpoint->url();
  s.endpoint->stop();
  EXPECT_EQ(code_of([&] { http_request("GET", url + kCredentialsPath, {}, {}, {}); }), Errc::kIo);
}

// Debian's botocore 1.29 (too old for AWS_ENDPOINT_URL_KMS: the script passes the URL itself)
// with the container-credentials variables, as an unmodified app would run.
TEST(KmsEndpoint, StockBotocoreThroughTheEndpoint) {
  if (std::system("/usr/bin/python3 -c 'import botocore' 2>/dev/null") != 0)
    GTEST_SKIP() << "Debian's python3-botocore is not installed";
  EndpointStack s;
  const EncryptionContext ctx{{"app", "inference"}};
  EncryptResult sealed = s.stack.admin->encrypt(s.key, as_bytes("attested secret"), ctx);
  int before = s.stack.decrypts;
  std::map<std::string, std::string> vars(s.env.begin(), s.env.end());
  vars.erase("AWS_ENDPOINT_URL_KMS");
  vars["SN_KMS_URL"] = s.endpoint->url();
  vars["SN_KEY_ID"] = s.key;
  vars["SN_BLOB"] = base64_encode(sealed.ciphertext_blob);
  vars["SN_EXPECT"] = hex_encode(as_bytes("attested secret"));
  std::string log = (s.stack.dir / "botocore.log");
  std::string cmd = "env -i PATH=/usr/bin:/bin HOME=" + std::string(s.stack.dir / "home");
  for (const auto& [k, v] : vars) cmd += " " + k + "='" + v + "'";
  cmd += " /usr/bin/python3 " SN_SOURCE_DIR "/tests/kms_endpoint/endpoint_botocore.py > " + log + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream out;
  out << in.rdbuf();
  EXPECT_EQ(rc, 0) << out.str();
  EXPECT_NE(out.str().find("ok"), std::string::npos) << out.str();
  EXPECT_GE(s.stack.decrypts, before + 2);  // the blob, and the data key's round trip
}

}  // namespace
