// Credentials sources (environment, shared file, IMDSv2 against a local server, pushed) and
// the client's retry/error surfacing against a scripted server.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>

#include "../support/freed_memory_scan.h"
#include "client_json.h"  // src/kms: the private JSON helpers
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/kms_local/http_server.h"
#include "shield_nitro/kms/kms_error.h"
#include "shield_nitro/enclave/key_releaser.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;
namespace fs = std::filesystem;

namespace {

struct EnvGuard {
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  void set(const std::string& k, const std::optional<std::string>& v) {
    const char* old = std::getenv(k.c_str());
    saved.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
    if (v) setenv(k.c_str(), v->c_str(), 1);
    else unsetenv(k.c_str());
  }
  ~EnvGuard() {
    for (auto it = saved.rbegin(); it != saved.rend(); ++it) {
      if (it->second) setenv(it->first.c_str(), it->second->c_str(), 1);
      else unsetenv(it->first.c_str());
    }
  }
};

std::string temp_file(const std::string& text) {
  fs::path p = fs::temp_directory_path() / ("sn-kms-creds-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
  write_file_atomic(p.string(), as_bytes(text), 0600);
  return p.string();
}

}  // namespace

TEST(Credentials, EnvironmentThenFileProfileOrder) {
  EnvGuard env;
  std::string file = temp_file("[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s1\n\n"
                               "[profile dev]\naws_access_key_id=AKIDDEV\naws_secret_access_key=s2\naws_session_token=tok\n");
  env.set("AWS_SHARED_CREDENTIALS_FILE", file);
  env.set("AWS_EC2_METADATA_DISABLED", "true");
  env.set("AWS_PROFILE", std::nullopt);
  env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env.set("AWS_SECRET_ACCESS_KEY", "senv");
  env.set("AWS_SESSION_TOKEN", std::nullopt);
  EXPECT_EQ(DefaultCredentialsChain().get().access_key_id, "AKIDENV");
  Credentials dev = DefaultCredentialsChain("dev").get();  // explicit profile beats the environment
  EXPECT_EQ(dev.access_key_id, "AKIDDEV");
  EXPECT_EQ(to_string(dev.session_token.view()), "tok");
  EXPECT_EQ(dev.describe().find("s2"), std::string::npos);  // never the secret
  env.set("AWS_ACCESS_KEY_ID", std::nullopt);
  EXPECT_EQ(DefaultCredentialsChain().get().access_key_id, "AKIDFILE");
  env.set("AWS_PROFILE", "dev");
  EXPECT_EQ(DefaultCredentialsChain().get().access_key_id, "AKIDDEV");
  EXPECT_THROW(DefaultCredentialsChain("missing").get(), Error);
  env.set("AWS_PROFILE", "missing");
  try {
    DefaultCredentialsChain().get();
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kEnvironment);
  }
  fs::remove(file);
}

TEST(Credentials, MalformedFilesAreRefused) {
  for (const char* bad : {"[default\naws_access_key_id=x\n", "aws_access_key_id=x\n", "[a]\nnot a pair\n",
                          "[default]\naws_access_key_id=x\n"}) {
    std::string f = temp_file(bad);
    EXPECT_THROW(credentials_from_file(f, "default"), Error) << bad;
    fs::remove(f);
  }
  EXPECT_FALSE(credentials_from_file("/nonexistent/credentials", "default"));
}

TEST(Credentials, ImdsV2TokenRoleAndExpiry) {
  std::atomic<int> token_puts{0};
  bool token_checked = true;
  HttpServer imds({"127.0.0.1:0"}, [&](const HttpServerRequest& r) -> HttpServerResponse {
    if (r.method == "PUT" && r.path == "/latest/api/token") {
      ++token_puts;
      bool ttl = find_header(r.headers, "X-aws-ec2-metadata-token-ttl-seconds").value_or("") == "21600";
      return {ttl ? 200 : 400, {}, "TOKEN123"};
    }
    if (find_header(r.headers, "X-aws-ec2-metadata-token").value_or("") != "TOKEN123") {
      token_checked = false;
      return {401, {}, ""};
    }
    if (r.path == "/latest/meta-data/iam/security-credentials/") return {200, {}, "enclave-role\n"};
    if (r.path == "/latest/meta-data/iam/security-credentials/enclave-role")
      return {200, {}, R"({"Code":"Success","LastUpdated":"2030-01-01T00:00:00Z","Type":"AWS-HMAC",)"
                       R"("AccessKeyId":"ASIAIMDS","SecretAccessKey":"imds-secret","Token":"imds-token",)"
                       R"("Expiration":"2030-01-01T06:00:00Z"})"};
    if (r.path == "/latest/dynamic/instance-identity/document") return {200, {}, R"({"region":"eu-west-1"})"};
    return {404, {}, ""};
  });
  imds.start();
  FixedClock now(parse_iso8601_utc("2030-01-01T01:00:00Z") * 1000);
  ImdsCredentials provider(imds.url(), now);
  Credentials c = provider.get();
  EXPECT_EQ(c.access_key_id, "ASIAIMDS");
  EXPECT_EQ(to_string(c.secret_access_key.view()), "imds-secret");
  EXPECT_EQ(to_string(c.session_token.view()), "imds-token");
  EXPECT_EQ(c.expiration_s, parse_iso8601_utc("2030-01-01T06:00:00Z"));
  provider.get();  // cached: no second token
  EXPECT_EQ(token_puts, 1);
  now.set_ms((c.expiration_s - 60) * 1000);  // within 5 minutes of expiry: refetch
  provider.get();
  EXPECT_EQ(token_puts, 2);
  EXPECT_EQ(provider.region(), "eu-west-1");
  EXPECT_TRUE(token_checked);
  EnvGuard env;
  env.set("AWS_EC2_METADATA_DISABLED", "true");
  EXPECT_THROW(ImdsCredentials(imds.url(), now).get(), Error);
  imds.stop();
  EXPECT_THROW(ImdsCredentials("http://127.0.0.1:1").get(), Error);
}

TEST(Credentials, PushedHolderExpiryAndRefreshSignal) {
  FixedClock now(1'000'000'000'000);
  PushedCredentials pushed(now, 15 * 60);
  EXPECT_THROW(pushed.get(), Error);
  EXPECT_TRUE(pushed.needs_refresh());
  EXPECT_THROW(pushed.update({"ASIA1", SecureBytes(as_bytes("s")), {}, now.now_s() - 1, ""}), Error);
  pushed.update({"ASIA1", SecureBytes(as_bytes("s")), SecureBytes(as_bytes("t")), now.now_s() + 3600, ""});
  EXPECT_EQ(pushed.get().access_key_id, "ASIA1");
  EXPECT_FALSE(pushed.needs_refresh());
  now.advance_ms(50 * 60 * 1000);  // 10 minutes left
  EXPECT_TRUE(pushed.needs_refresh());
  EXPECT_EQ(pushed.get().source, "pushed");
  now.advance_ms(11 * 60 * 1000);
  try {
    pushed.get();
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kExpired);
  }
  pushed.update({"ASIA2", SecureBytes(as_bytes("s")), {}, now.now_s() + 3600, ""});
  EXPECT_FALSE(pushed.needs_refresh());
  pushed.invalidate();
  EXPECT_TRUE(pushed.needs_refresh());
}

TEST(KmsClientRetry, ThrottlingAnd5xxRetriedOthersSurfacedWholeOnce) {
  std::atomic<int> calls{0};
  std::string mode;
  HttpServer fake({"127.0.0.1:0"}, [&](const HttpServerRequest& r) -> HttpServerResponse {
    int n = ++calls;
    HeaderList h{{"x-amzn-RequestId", "req-" + std::to_string(n)}};
    if (mode == "throttle" && n < 3) return {400, h, R"({"__type":"ThrottlingException","message":"Rate exceeded"})"};
    if (mode == "500" && n < 2) return {503, h, "upstream"};
    if (mode == "denied")
      return {400, h, R"({"__type":"com.amazonaws.kms#AccessDeniedException","Message":"no attestation"})"};
    return {200, h, R"({"Plaintext":"AAEC"})"};
  });
  fake.start();
  KmsClientOptions o;
  o.endpoint = fake.url() + "/";
  o.base_backoff_ms = 1;
  KmsClient c(o, std::make_shared<StaticCredentials>(Credentials{"AKID", SecureBytes(as_bytes("s")), {}, 0, "t"}));
  mode = "throttle";
  EXPECT_EQ(c.generate_random(3).size(), 3u);
  EXPECT_EQ(calls.exchange(0), 3);
  mode = "500";
  EXPECT_EQ(c.generate_random(3).size(), 3u);
  EXPECT_EQ(calls.exchange(0), 2);
  mode = "denied";
  try {
    c.generate_random(3);
    ADD_FAILURE();
  } catch (const KmsError& e) {
    EXPECT_EQ(calls.exchange(0), 1);
    EXPECT_EQ(std::string(e.what()), "KMS GenerateRandom: HTTP 400 AccessDeniedException: no attestation (request id req-1)");
    EXPECT_EQ(e.code(), Errc::kPolicy);
  }
  fake.stop();
}

// KMS sends some errors with no message (an empty body, or JSON without "message"): the line
// then says what the type or the status implies, and that KMS said nothing more.
TEST(KmsClientErrors, EmptyMessagesSayWhatTheTypeOrStatusImplies) {
  std::pair<int, std::string> answer;
  HeaderList extra;
  HttpServer fake({"127.0.0.1:0"}, [&](const HttpServerRequest&) -> HttpServerResponse {
    HeaderList h{{"x-amzn-RequestId", "req-9"}};
    h.insert(h.end(), extra.begin(), extra.end());
    return {answer.first, h, answer.second};
  });
  fake.start();
  KmsClientOptions o;
  o.endpoint = fake.url() + "/";
  o.base_backoff_ms = 1;
  o.max_attempts = 1;
  KmsClient c(o, std::make_shared<StaticCredentials>(Credentials{"AKID", SecureBytes(as_bytes("s")), {}, 0, "t"}));
  auto what = [&](int status, const std::string& body, HeaderList headers = {}) {
    answer = {status, body};
    extra = std::move(headers);
    try {
      c.generate_random(3);
    } catch (const KmsError& e) {
      return std::string(e.what());
    }
    ADD_FAILURE() << "no KmsError";
    return std::string();
  };
  EXPECT_EQ(what(400, R"({"__type":"AccessDeniedException"})"),
            "KMS GenerateRandom: HTTP 400 AccessDeniedException: the key policy or IAM denied this call (no message "
            "from KMS) (request id req-9)");
  EXPECT_EQ(what(400, R"({"__type":"InvalidCiphertextException","message":""})"),
            "KMS GenerateRandom: HTTP 400 InvalidCiphertextException: the ciphertext is damaged, or its encryption "
            "context differs (no message from KMS) (request id req-9)");
  EXPECT_EQ(what(400, "", {{"x-amzn-ErrorType", "ExpiredTokenException:http://internal"}}),
            "KMS GenerateRandom: HTTP 400 ExpiredTokenException: the session credentials have expired; refresh them "
            "(no message from KMS) (request id req-9)");
  EXPECT_EQ(what(403, ""),
            "KMS GenerateRandom: HTTP 403 UnknownError: the request was not authorized (no message from KMS) "
            "(request id req-9)");
  // A body that is not KMS's JSON is shown as it is; a message, when there is one, is kept.
  EXPECT_EQ(what(403, "<html>blocked</html>"),
            "KMS GenerateRandom: HTTP 403 UnknownError: body: <html>blocked</html> (request id req-9)");
  EXPECT_EQ(what(400, R"({"__type":"NotFoundException","message":"Alias x is not found."})"),
            "KMS GenerateRandom: HTTP 400 NotFoundException: Alias x is not found. (request id req-9)");
  fake.stop();
}

// Secrets are carried as SecureBytes by every type that holds them on the way to KMS: the
// parent's Credentials, and the enclave's pushed copy handed to the releaser.
static_assert(std::is_same_v<decltype(Credentials::secret_access_key), SecureBytes>);
static_assert(std::is_same_v<decltype(Credentials::session_token), SecureBytes>);
static_assert(std::is_same_v<decltype(enclave::PushedCredentials::secret_access_key), SecureBytes>);
static_assert(std::is_same_v<decltype(enclave::PushedCredentials::session_token), SecureBytes>);

// Reading credentials leaves no copy of the secret in freed memory (no std::string on the way
// from the environment or the file into SecureBytes, and the file's text is wiped).
TEST(Credentials, SourcesLeaveNoCopyOfTheSecretInFreedMemory) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  constexpr char kSecret[] = "wJalrXUtnFEMI-file-secret-SCAN-ME-0042";
  constexpr char kToken[] = "IQoJb3JpZ2luX2VjE-token-SCAN-ME-0043";
  EnvGuard env;
  std::string file = temp_file(std::string("[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = ") + kSecret +
                               "\naws_session_token=" + kToken + "\nregion = eu-west-1\n");
  env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env.set("AWS_SECRET_ACCESS_KEY", kSecret);
  env.set("AWS_SESSION_TOKEN", kToken);
  for (const char* marker : {kSecret, kToken}) {
    test_support::FreedMemoryScan scan(as_bytes(marker));
    {
      std::optional<Credentials> from_file = credentials_from_file(file, "default");
      ASSERT_TRUE(from_file.has_value());
      EXPECT_TRUE(std::ranges::equal(from_file->secret_access_key.view(), as_bytes(kSecret)));
      EXPECT_TRUE(std::ranges::equal(from_file->session_token.view(), as_bytes(kToken)));
      std::optional<Credentials> from_env = credentials_from_environment();
      ASSERT_TRUE(from_env.has_value());
      EXPECT_TRUE(std::ranges::equal(from_env->secret_access_key.view(), as_bytes(kSecret)));
      EXPECT_EQ(profile_value(file, "default", "region"), std::optional<std::string>("eu-west-1"));
    }
    EXPECT_EQ(scan.hits(), 0u) << marker;
  }
  fs::remove(file);
}

TEST(Credentials, WipeStringZeroesTheSpareCapacityToo) {
  std::string s(100, 'x');
  s.resize(10);  // 90 bytes of 'x' stay in the buffer past size()
  const char* p = s.data();
  wipe_string(s);
  EXPECT_EQ(s.size(), 10u);
  EXPECT_EQ(std::string_view(p, 100), std::string(100, '\0'));
  nlohmann::json j = {{"Plaintext", "c2VjcmV0"}, {"nested", {{"Token", "abc"}}}, {"n", 1}};
  detail::wipe_json_strings(j);
  EXPECT_EQ(j["Plaintext"].get<std::string>(), std::string(8, '\0'));
  EXPECT_EQ(j["nested"]["Token"].get<std::string>(), std::string(3, '\0'));
  EXPECT_EQ(j["n"], 1);
}
