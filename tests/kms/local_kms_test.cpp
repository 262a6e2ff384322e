// The client against kms-local, in process: every operation with and without Recipient (real
// NSM simulator + attest verifier), generated policies, robustness of the request path,
// restart durability, the TLS-over-unix tunnel, and IMDSv2 credentials.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>

#include "local_stack.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/kms/attested.h"
#include "shield_nitro/kms_local/recipient_verifier.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/kms_local/http_server.h"
#include "shield_nitro/kms/key_policy.h"
#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/kms_local/local_kms.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "support/expect_error.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;
namespace fs = std::filesystem;

namespace {

const std::string kEnclaveRole = "arn:aws:iam::111122223333:role/shield-enclave";
const std::string kAdminRole = "arn:aws:iam::111122223333:role/shield-admin";

fs::path temp_dir(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("sn-kms-" + tag + "-" + std::to_string(::getpid()) + "-" +
                                            std::to_string(std::rand()));
  fs::create_directories(p);
  return p;
}

Bytes pcr(uint8_t fill) { return Bytes(48, fill); }

// A simulated enclave: NSM simulator booted with PCR0 = fill.
struct SimEnclave {
  std::shared_ptr<nsm::SimulatedNsm> sim;
  NsmAttestationSource source;
  RecipientKeyManager keys{std::chrono::seconds(0)};
  Recipient recipient{&source, &keys};
  // pcr0 == 0: a debug-mode enclave (PCR0, 1, 2 and 8 read as zeros).
  SimEnclave(const fs::path& dir, uint8_t pcr0, const Clock* clock = nullptr)
      : sim(make(dir, pcr0, clock)), source(std::make_unique<nsm::SimulatorTransport>(sim)) {}
  static std::shared_ptr<nsm::SimulatedNsm> make(const fs::path& dir, uint8_t pcr0, const Clock* clock) {
    nsm::BootPcrs boot;
    boot.debug = pcr0 == 0;
    if (!boot.debug) {
      boot.values[0] = pcr(pcr0);
      boot.values[8] = pcr(8);
    }
    nsm::SimulatorOptions o;
    o.clock = clock;
    return nsm::SimulatedNsm::create(dir.string(), boot, o);
  }
};

class LocalKmsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir("local");
    trusted_ = std::make_unique<SimEnclave>(dir_ / "nsm", 0xab);
    start();
  }
  void TearDown() override {
    server_.reset();
    kms_.reset();
    fs::remove_all(dir_);
  }
  void start() {
    LocalKmsOptions o;
    o.state_dir = (dir_ / "state").string();
    o.verifier = make_recipient_verifier({(dir_ / "nsm" / "root.pem").string()});
    kms_ = std::make_unique<LocalKms>(o);
    HttpServerOptions so;
    so.listen = "127.0.0.1:0";
    server_ = std::make_unique<HttpServer>(so, [this](const HttpServerRequest& r) { return kms_->handle(r); });
    server_->start();
  }
  void restart() {
    server_.reset();
    kms_.reset();
    start();
  }
  KmsClient client(const std::string& profile) { return sn_test::local_kms_client(*kms_, server_->url() + "/", profile); }
  std::string create_key(KmsClient& c) { return kms_call(c, "CreateKey", {{"Description", "test"}})["KeyMetadata"]["Arn"]; }
  void put_generated_policy(KmsClient& admin, const std::string& key, uint8_t pcr0) {
    KeyPolicyRequest r;
    r.pcrs = {{0, pcr(pcr0)}, {8, pcr(8)}};
    r.role_arn = kEnclaveRole;
    r.admin_arn = kAdminRole;
    kms_call(admin, "PutKeyPolicy", {{"KeyId", key}, {"PolicyName", "default"}, {"Policy", generate_key_policy(r)}});
  }

  fs::path dir_;
  std::unique_ptr<SimEnclave> trusted_;
  std::unique_ptr<LocalKms> kms_;
  std::unique_ptr<HttpServer> server_;
};

std::string kms_error_type(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const KmsError& e) {
    return e.type();
  }
  return "none";
}

}  // namespace

TEST_F(LocalKmsTest, EveryOperationWithoutRecipient) {
  KmsClient admin = client("admin");
  std::string arn = create_key(admin);
  EXPECT_EQ(arn.rfind("arn:aws:kms:us-east-1:111122223333:key/", 0), 0u);
  kms_call(admin, "CreateAlias", {{"AliasName", "alias/app"}, {"TargetKeyId", arn}});
  EXPECT_EQ(admin.describe_key("alias/app").arn, arn);
  EXPECT_EQ(kms_call(admin, "ListKeys", nlohmann::json::object())["Keys"].size(), 1u);
  EXPECT_EQ(kms_call(admin, "ListAliases", {{"KeyId", arn}})["Aliases"][0]["AliasName"], "alias/app");
  EXPECT_EQ(kms_call(admin, "GetKeyPolicy", {{"KeyId", "alias/app"}, {"PolicyName", "default"}})["PolicyName"], "default");

  EncryptionContext ctx{{"app", "demo"}};
  EncryptResult e = admin.encrypt("alias/app", as_bytes("secret"), ctx);
  EXPECT_EQ(e.key_id, arn);
  EXPECT_EQ(to_string(admin.decrypt(e.ciphertext_blob, ctx).plaintext.view()), "secret");
  EXPECT_EQ(kms_error_type([&] { admin.decrypt(e.ciphertext_blob, {{"app", "other"}}); }), "InvalidCiphertextException");
  std::string other = create_key(admin);
  EXPECT_EQ(kms_error_type([&] { admin.decrypt(e.ciphertext_blob, ctx, other); }), "IncorrectKeyException");

  DataKeyResult dk = admin.generate_data_key(arn, 32, ctx);
  EXPECT_EQ(dk.plaintext.size(), 32u);
  EXPECT_EQ(to_bytes(admin.decrypt(dk.ciphertext_blob, ctx).plaintext.view()), to_bytes(dk.plaintext.view()));
  DataKeyResult wp = admin.generate_data_key_without_plaintext("alias/app", 16);
  EXPECT_TRUE(wp.plaintext.empty());
  EXPECT_EQ(admin.decrypt(wp.ciphertext_blob).plaintext.size(), 16u);
  EXPECT_EQ(admin.generate_random(100).size(), 100u);
  EXPECT_EQ(kms_error_type([&] { admin.describe_key("alias/missing"); }), "NotFoundException");
}

// DescribeKey comes back typed (no JSON in the SDK's signatures), following the key's life.
TEST_F(LocalKmsTest, DescribeKeyIsTyped) {
  KmsClient admin = client("admin");
  nlohmann::json created = kms_call(admin, "CreateKey", {{"Description", "typed"}})["KeyMetadata"];
  KeyMetadata m = admin.describe_key(created["Arn"]);
  EXPECT_EQ(m.arn, created["Arn"]);
  EXPECT_EQ(m.key_id, created["KeyId"]);
  EXPECT_EQ(m.aws_account_id, "111122223333");
  EXPECT_EQ(m.description, "typed");
  EXPECT_EQ(m.key_state, "Enabled");
  EXPECT_TRUE(m.enabled);
  EXPECT_EQ(m.key_usage, "ENCRYPT_DECRYPT");
  EXPECT_EQ(m.key_spec, "SYMMETRIC_DEFAULT");
  EXPECT_EQ(m.origin, "AWS_KMS");
  EXPECT_EQ(m.creation_date_s, static_cast<int64_t>(created["CreationDate"].get<double>()));
  EXPECT_GT(m.creation_date_s, 0);
  EXPECT_EQ(m.encryption_algorithms, std::vector<std::string>{"SYMMETRIC_DEFAULT"});
  EXPECT_EQ(m.deletion_date_s, 0);
  kms_call(admin, "ScheduleKeyDeletion", {{"KeyId", m.arn}, {"PendingWindowInDays", 7}});
  m = admin.describe_key(m.key_id);
  EXPECT_EQ(m.key_state, "PendingDeletion");
  EXPECT_FALSE(m.enabled);
  EXPECT_GE(m.deletion_date_s, m.creation_date_s + 7 * 86400);
  KeyMetadata ecc = admin.describe_key(
      kms_call(admin, "CreateKey", {{"KeySpec", "ECC_NIST_P256"}, {"KeyUsage", "KEY_AGREEMENT"}})["KeyMetadata"]["Arn"]);
  EXPECT_EQ(ecc.key_spec, "ECC_NIST_P256");
  EXPECT_EQ(ecc.key_agreement_algorithms, std::vector<std::string>{"ECDH"});
  EXPECT_TRUE(ecc.encryption_algorithms.empty());
}

// call_text sends the caller's JSON text and returns KMS's answer as text; a body that is not
// one JSON object is refused before anything is sent (the endpoint here has no listener, so a
// request would fail with kIo instead).
TEST_F(LocalKmsTest, CallTextIsJsonTextInAndOut) {
  KmsClient admin = client("admin");
  std::string answer = admin.call_text("CreateKey", R"({"Description": "from text"})");
  nlohmann::json j = nlohmann::json::parse(answer);
  EXPECT_EQ(j["KeyMetadata"]["Description"], "from text");
  EXPECT_EQ(nlohmann::json::parse(admin.call_text("ListKeys", " {} "))["Keys"].size(), 1u);
  EXPECT_EQ(kms_error_type([&] { admin.call_text("DescribeKey", R"({"KeyId": "alias/none"})"); }), "NotFoundException");

  KmsClientOptions o;
  o.endpoint = "http://127.0.0.1:1/";
  o.max_attempts = 1;
  KmsClient nowhere(o, std::make_shared<StaticCredentials>(std::move(*credentials_from_file(kms_->credentials_path(), "admin"))));
  for (const char* bad : {"", "not json", "[1, 2]", "\"text\"", "{} {}", R"({"KeyId": )"}) {
    std::string msg = test_support::message_of([&] { nowhere.call_text("DescribeKey", bad); });
    EXPECT_EQ(test_support::code_of([&] { nowhere.call_text("DescribeKey", bad); }), Errc::kUsage) << bad;
    EXPECT_NE(msg.find("DescribeKey: the request body is not one JSON object"), std::string::npos) << msg;
  }
  EXPECT_EQ(test_support::code_of([&] { nowhere.call_text("DescribeKey", "{}"); }), Errc::kIo);
}

TEST_F(LocalKmsTest, GeneratedPolicyReleasesOnlyToTheAttestedEnclave) {
  KmsClient admin = client("admin"), enclave = client("enclave");
  std::string key = create_key(admin);
  EncryptResult e = admin.encrypt(key, as_bytes("model key"));
  put_generated_policy(admin, key, 0xab);

  // Matching PCRs: released, only as CiphertextForRecipient, opened in-process.
  EXPECT_EQ(to_string(enclave.decrypt(e.ciphertext_blob, {}, "", &trusted_->recipient).plaintext.view()), "model key");
  DataKeyResult dk = enclave.generate_data_key(key, 32, {}, &trusted_->recipient);
  EXPECT_EQ(dk.plaintext.size(), 32u);
  EXPECT_EQ(to_bytes(enclave.decrypt(dk.ciphertext_blob, {}, "", &trusted_->recipient).plaintext.view()),
            to_bytes(dk.plaintext.view()));
  EXPECT_EQ(enclave.generate_random(48, &trusted_->recipient).size(), 48u);
  // The raw answer carries no Plaintext.
  nlohmann::json raw = kms_call(enclave, "GenerateRandom", {{"NumberOfBytes", 8}});
  EXPECT_TRUE(raw.contains("Plaintext"));

  // No attestation: the explicit Deny.
  try {
    enclave.decrypt(e.ciphertext_blob);
    ADD_FAILURE() << "released without attestation";
  } catch (const KmsError& err) {
    EXPECT_EQ(err.type(), "AccessDeniedException");
    EXPECT_NE(std::string(err.what()).find("explicit deny"), std::string::npos);
    EXPECT_EQ(err.code(), Errc::kPolicy);
  }
  // One PCR different (same trusted root).
  SimEnclave wrong(dir_ / "nsm", 0xac);
  EXPECT_EQ(kms_error_type([&] { enclave.decrypt(e.ciphertext_blob, {}, "", &wrong.recipient); }), "AccessDeniedException");
  // A debug-mode enclave (PCR0 zeros): a valid document, so like AWS KMS the policy decides.
  SimEnclave debug(dir_ / "nsm", 0x00);
  EXPECT_EQ(kms_error_type([&] { enclave.decrypt(e.ciphertext_blob, {}, "", &debug.recipient); }), "AccessDeniedException");
  // The admin may manage but not decrypt.
  EXPECT_EQ(kms_error_type([&] { admin.decrypt(e.ciphertext_blob, {}, "", &trusted_->recipient); }), "AccessDeniedException");
}

TEST_F(LocalKmsTest, ForgedAndExpiredDocumentsAreRefused) {
  KmsClient admin = client("admin"), enclave = client("enclave");
  std::string key = create_key(admin);
  EncryptResult e = admin.encrypt(key, as_bytes("x"));
  put_generated_policy(admin, key, 0xab);
  SimEnclave forged(dir_ / "other-root", 0xab);  // same PCRs, untrusted chain
  std::string why;
  try {
    enclave.decrypt(e.ciphertext_blob, {}, "", &forged.recipient);
  } catch (const KmsError& err) {
    why = err.type();
  }
  EXPECT_EQ(why, "ValidationException");
  FixedClock past(system_clock().now_ms() - 40LL * 24 * 3600 * 1000);
  SimEnclave stale(dir_ / "nsm", 0xab, &past);
  EXPECT_EQ(kms_error_type([&] { enclave.decrypt(e.ciphertext_blob, {}, "", &stale.recipient); }), "ValidationException");
}

TEST_F(LocalKmsTest, KeysAndPoliciesSurviveRestart) {
  KmsClient admin = client("admin");
  std::string key = create_key(admin);
  kms_call(admin, "CreateAlias", {{"AliasName", "alias/keep"}, {"TargetKeyId", key}});
  EncryptResult e = admin.encrypt("alias/keep", as_bytes("durable"));
  put_generated_policy(admin, key, 0xab);
  restart();
  KmsClient enclave = client("enclave");
  EXPECT_EQ(to_string(enclave.decrypt(e.ciphertext_blob, {}, "", &trusted_->recipient).plaintext.view()), "durable");
  for (const auto& f : fs::directory_iterator(dir_ / "state" / "keys"))
    EXPECT_EQ(fs::status(f).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

namespace {

// One raw HTTP exchange; returns the status line and body.
std::pair<std::string, std::string> raw_http(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  auto eol = out.find("\r\n"), body = out.find("\r\n\r\n");
  return {out.substr(0, eol), body == std::string::npos ? "" : out.substr(body + 4)};
}

}  // namespace

TEST_F(LocalKmsTest, BadRequestsGetKmsShapedErrorsNotCrashes) {
  KmsClient admin = client("admin");
  int port = server_->port();
  auto unsigned_post = [&](const std::string& body, const std::string& extra = "") {
    return raw_http(port, "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.Encrypt\r\n" + extra +
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  };
  auto [s1, b1] = unsigned_post("{}");
  EXPECT_NE(b1.find("MissingAuthenticationTokenException"), std::string::npos) << s1;
  auto [s2, b2] = raw_http(port, "GARBAGE\r\n\r\n");
  EXPECT_NE(s2.find("400"), std::string::npos);
  EXPECT_NE(b2.find("__type"), std::string::npos);
  auto [s3, b3] = raw_http(port, "POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n");
  EXPECT_NE(s3.find("413"), std::string::npos);
  auto [s4, b4] = unsigned_post("{}", "Transfer-Encoding: chunked\r\n");
  EXPECT_NE(s4.find("501"), std::string::npos);
  auto [s5, b5] = raw_http(port, "POST / HTTP/1.1\r\n" + std::string(20000, 'a') + "\r\n\r\n");
  EXPECT_NE(s5.find("431"), std::string::npos);
  // Signed but malformed bodies.
  EXPECT_EQ(kms_error_type([&] { kms_call(admin, "NoSuchOperation", nlohmann::json::object()); }), "UnknownOperationException");
  EXPECT_EQ(kms_error_type([&] { kms_call(admin, "Encrypt", {{"KeyId", 7}, {"Plaintext", "AAAA"}}); }), "SerializationException");
  EXPECT_EQ(kms_error_type([&] { kms_call(admin, "Encrypt", {{"KeyId", "alias/x"}, {"Plaintext", "not base64!"}}); }),
            "SerializationException");
  EXPECT_EQ(kms_error_type([&] { kms_call(admin, "GenerateRandom", {{"NumberOfBytes", 5000}}); }), "ValidationException");
  EXPECT_EQ(kms_error_type([&] { kms_call(admin, "Decrypt", {{"CiphertextBlob", "AAAA"}}); }), "InvalidCiphertextException");
  EXPECT_EQ(kms_error_type([&] { kms_call(admin, "PutKeyPolicy", {{"KeyId", create_key(admin)}, {"Policy", "{"}}); }),
            "MalformedPolicyDocumentException");
  EXPECT_EQ(kms_error_type([&] {
              kms_call(admin, "Decrypt", {{"CiphertextBlob", "AAAA"}, {"Recipient", {{"KeyEncryptionAlgorithm", "RSA"}}}});
            }),
            "InvalidCiphertextException");
  // Still serving.
  EXPECT_EQ(admin.generate_random(4).size(), 4u);
}

TEST_F(LocalKmsTest, SigV4FailuresAreAwsErrors) {
  auto creds = credentials_from_file(kms_->credentials_path(), "admin");
  Credentials wrong{creds->access_key_id, SecureBytes(as_bytes("wrong-secret")), {}, 0, "test"};
  KmsClientOptions o;
  o.endpoint = server_->url() + "/";
  o.max_attempts = 1;
  KmsClient bad(o, std::make_shared<StaticCredentials>(std::move(wrong)));
  EXPECT_EQ(kms_error_type([&] { bad.generate_random(4); }), "InvalidSignatureException");
  KmsClient unknown(o, std::make_shared<StaticCredentials>(Credentials{"AKIAUNKNOWN", SecureBytes(as_bytes("s")), {}, 0, "t"}));
  EXPECT_EQ(kms_error_type([&] { unknown.generate_random(4); }), "UnrecognizedClientException");
  FixedClock skewed(system_clock().now_ms() - 20 * 60 * 1000);
  KmsClient late(o, std::make_shared<StaticCredentials>(std::move(*creds)), skewed);
  try {
    late.generate_random(4);
    ADD_FAILURE();
  } catch (const KmsError& e) {
    EXPECT_EQ(e.type(), "InvalidSignatureException");
    EXPECT_NE(e.aws_message().find("Signature expired"), std::string::npos);
    EXPECT_EQ(e.http_status(), 400);
    EXPECT_FALSE(e.request_id().empty());
  }
}

TEST_F(LocalKmsTest, ConcurrentRequestsAreSafe) {
  KmsClient admin = client("admin");
  std::string key = create_key(admin);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      KmsClient c = client("admin");
      for (int i = 0; i < 10; ++i) {
        std::string k = i % 3 == 0 ? create_key(c) : key;
        if (to_string(c.decrypt(c.encrypt(k, as_bytes("c")).ciphertext_blob).plaintext.view()) == "c") ++ok;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 40);
  EXPECT_EQ(kms_call(admin, "ListKeys", nlohmann::json::object())["Keys"].size(), 1u + 4 * 4);
}

TEST_F(LocalKmsTest, ASecondServerOnTheSameStateFolderIsRefused) {
  LocalKmsOptions o;
  o.state_dir = (dir_ / "state").string();
  try {
    LocalKms second(o);
    ADD_FAILURE() << "two servers share " << o.state_dir;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kEnvironment);
    std::string what = e.what();
    EXPECT_NE(what.find(o.state_dir + " is in use by another kms-local (pid " + std::to_string(::getpid()) + ")"),
              std::string::npos) << what;
  }
  restart();  // released with its server: the folder can be served again
  KmsClient admin = client("admin");
  EXPECT_EQ(admin.generate_random(8).size(), 8u);
}

// A client that speaks plain HTTP to the TLS port gets a plain answer saying so.
TEST(KmsHttpServer, PlainHttpOnTheTlsPortIsAnsweredWithA400NamingHttps) {
  fs::path dir = temp_dir("plain");
  std::string d = dir.string();
  ASSERT_EQ(std::system(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + d +
                         "/k.pem -out " + d + "/c.pem -days 2 -subj /CN=localhost >/dev/null 2>&1").c_str()),
            0);
  HttpServer server({"127.0.0.1:0", d + "/c.pem", d + "/k.pem"},
                    [](const HttpServerRequest&) { return HttpServerResponse{200, {}, "served"}; });
  server.start();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(server.port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::string req = "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string answer;
  char buf[1024];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<size_t>(n));
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("This port speaks HTTPS"), std::string::npos) << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  server.stop();
  fs::remove_all(dir);
}

TEST(KmsTransport, TlsThroughUnixTunnelVerifiesTheRealHostName) {
  fs::path dir = temp_dir("tls");
  std::string d = dir.string();
  std::string cmd = "cd " + d + " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
                    "-subj /CN=test-ca -addext basicConstraints=critical,CA:TRUE >/dev/null 2>&1 && "
                    "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=kms >/dev/null 2>&1 && "
                    "printf 'subjectAltName=DNS:kms.us-east-1.amazonaws.com\\n' > ext && "
                    "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext "
                    "-out srv.pem >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  LocalKmsOptions o;
  o.state_dir = d + "/state";
  LocalKms kms(o);
  HttpServerOptions so{"unix:" + d + "/kms.sock", d + "/srv.pem", d + "/srv.key"};
  HttpServer server(so, [&](const HttpServerRequest& r) { return kms.handle(r); });
  server.start();
  auto creds = credentials_from_file(kms.credentials_path(), "admin");
  KmsClientOptions co;  // default endpoint: https://kms.us-east-1.amazonaws.com/
  co.transport.via = "unix:" + d + "/kms.sock";
  co.transport.ca_file = d + "/ca.pem";
  co.max_attempts = 1;
  KmsClient c(co, std::make_shared<StaticCredentials>(creds->clone()));
  EXPECT_EQ(c.url(), "https://kms.us-east-1.amazonaws.com/");
  EXPECT_EQ(c.generate_random(16).size(), 16u);
  co.transport.ca_file.clear();  // system store does not know the test CA: refused
  KmsClient untrusted(co, std::make_shared<StaticCredentials>(creds->clone()));
  auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "no error";
    return "";
  };
  // Says what is missing, not curl's "SSL peer certificate or SSH remote key was not OK".
  std::string why = message([&] { untrusted.generate_random(16); });
  EXPECT_NE(why.find("the server's TLS certificate is not signed by a CA in the system trust store (SSL certificate "
                     "problem: "),
            std::string::npos) << why;
  EXPECT_NE(why.find("; for a private endpoint such as kms-local, pass its CA with --kms-ca FILE"), std::string::npos)
      << why;
  EXPECT_EQ(why.find("SSH remote key"), std::string::npos) << why;
  co.transport.ca_file = d + "/ca.pem";
  co.region = "eu-west-1";  // certificate is for us-east-1: host name check fails
  KmsClient wrong_host(co, std::make_shared<StaticCredentials>(creds->clone()));
  why = message([&] { wrong_host.generate_random(16); });
  EXPECT_NE(why.find("does not verify with the CA file " + d + "/ca.pem ("), std::string::npos) << why;
  server.stop();
  fs::remove_all(dir);
}

TEST(KmsTransport, ViaIsValidatedAndVsockFailureIsReported) {
  EXPECT_THROW(check_via("tcp://x"), Error);
  EXPECT_THROW(check_via("vsock://3"), Error);
  EXPECT_NO_THROW(check_via("vsock://3:8000"));
  KmsClientOptions o;
  o.transport.via = "vsock://1:1";  // nothing listens there (or AF_VSOCK is unavailable)
  o.transport.connect_timeout_ms = 1000;
  o.max_attempts = 1;
  KmsClient c(o, std::make_shared<StaticCredentials>(Credentials{"AKID", SecureBytes(as_bytes("s")), {}, 0, "t"}));
  try {
    c.generate_random(4);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kIo);
    EXPECT_NE(std::string(e.what()).find("vsock://1:1"), std::string::npos);
  }
}

TEST(KmsEndpoint, PartitionSuffixes) {
  EXPECT_EQ(kms_endpoint_for_region("us-east-1"), "kms.us-east-1.amazonaws.com");
  EXPECT_EQ(kms_endpoint_for_region("cn-north-1"), "kms.cn-north-1.amazonaws.com.cn");
  EXPECT_EQ(kms_endpoint_for_region("us-isob-east-1"), "kms.us-isob-east-1.sc2s.sgov.gov");
  EXPECT_EQ(kms_endpoint_for_region("us-iso-east-1"), "kms.us-iso-east-1.c2s.ic.gov");
  EXPECT_EQ(kms_endpoint_for_region("us-gov-west-1", true), "kms-fips.us-gov-west-1.amazonaws.com");
  EXPECT_THROW(kms_endpoint_for_region("us east"), Error);
}
