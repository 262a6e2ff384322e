// Attestation-gated key release against an in-process kms-local over loopback HTTP:
// attest (simulated NSM) + Decrypt with Recipient + CMS open, beside the same Decrypt without
// Recipient, and the physical floors (RSA-2048 OAEP decrypt, which the release must do once,
// and raw AES-256-GCM). RSA key generation runs once, before timing: never on the request path.
//
// Load: requests/s and p99 of kms-local's HTTP server at 1, 64 and 512 connections (one
// request in flight on each), beside two floors driven the same way in the same run: the raw
// epoll echo of the same bytes (bench/support/load_gen.h) and the same HTTP server with a
// trivial handler (the server's own cost without KMS's work).
#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <filesystem>
#include <unistd.h>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/kms/attested.h"
#include "shield_nitro/kms_local/recipient_verifier.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/cms.h"
#include "shield_nitro/kms_local/local_kms.h"
#include "shield_nitro/kms/sigv4.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "support/http_load.h"
#include "support/load_gen.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;

namespace {

using sn_bench::best_of_3;
using sn_bench::drive_http;
using sn_bench::HttpLoad;

struct Rig {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("sn-kms-bench-" + std::to_string(::getpid()));
  std::shared_ptr<nsm::SimulatedNsm> sim;
  std::unique_ptr<NsmAttestationSource> source;
  RecipientKeyManager keys{std::chrono::seconds(0)};
  Recipient recipient;
  std::unique_ptr<LocalKms> kms;
  std::unique_ptr<HttpServer> server;
  std::unique_ptr<KmsClient> client;
  Bytes blob;

  Rig() {
    nsm::BootPcrs boot;
    boot.values[0] = Bytes(48, 0x42);
    sim = nsm::SimulatedNsm::create((dir / "nsm").string(), boot);
    source = std::make_unique<NsmAttestationSource>(std::make_unique<nsm::SimulatorTransport>(sim));
    recipient = {source.get(), &keys};
    keys.current();  // key generation done before any timing
    LocalKmsOptions o;
    o.state_dir = (dir / "state").string();
    o.verifier = make_recipient_verifier({(dir / "nsm" / "root.pem").string()});
    kms = std::make_unique<LocalKms>(o);
    server = std::make_unique<HttpServer>(HttpServerOptions{"127.0.0.1:0"},
                                          [this](const HttpServerRequest& r) { return kms->handle(r); });
    server->start();
    KmsClientOptions co;
    co.endpoint = server->url() + "/";
    client = std::make_unique<KmsClient>(
        co, std::make_shared<StaticCredentials>(std::move(*credentials_from_file(kms->credentials_path(), "admin"))));
    std::string key = nlohmann::json::parse(client->call_text("CreateKey", "{}"))["KeyMetadata"]["Arn"];
    blob = client->encrypt(key, Bytes(32, 7)).ciphertext_blob;
  }
  ~Rig() {
    server.reset();
    std::filesystem::remove_all(dir);
  }
};

Rig& rig() {
  static Rig r;
  return r;
}

void report_latency(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  state.counters["releases_per_s"] = benchmark::Counter(static_cast<double>(us.size()), benchmark::Counter::kIsRate);
}

// Median wall time (us) of n runs of fn: the in-binary reference for the ratio counters.
template <typename Fn>
double median_us(int n, Fn fn) {
  std::vector<double> us;
  for (int i = 0; i < n; ++i) {
    int64_t t0 = monotonic_ns();
    fn();
    us.push_back(static_cast<double>(monotonic_ns() - t0) / 1000.0);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

// Floor: the one RSA-2048 OAEP private-key operation every release needs.
void rsa_oaep_decrypt_once(EVP_PKEY* pk, const Bytes& ek) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(pk, nullptr);
  unsigned char out[256];
  size_t n = sizeof out;
  EVP_PKEY_decrypt_init(ctx);
  EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING);
  EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256());
  EVP_PKEY_decrypt(ctx, out, &n, ek.data(), ek.size());
  EVP_PKEY_CTX_free(ctx);
  benchmark::DoNotOptimize(out);
}

double rsa_oaep_decrypt_us(EVP_PKEY* pk, const Bytes& ek) {
  return median_us(50, [&] { rsa_oaep_decrypt_once(pk, ek); });
}

void BM_ReleaseWithRecipient(benchmark::State& state) {
  Rig& r = rig();
  auto pair = r.keys.current();
  Bytes ek = parse_recipient_envelope(build_recipient_envelope(Bytes(32, 1), pair->spki_der())).encrypted_key;
  double rsa_floor = rsa_oaep_decrypt_us(pair->private_key(), ek);
  double plain = median_us(50, [&] { benchmark::DoNotOptimize(r.client->decrypt(r.blob).plaintext.data()); });
  uint64_t gens = r.keys.generations();
  std::vector<double> us;
  for (auto _ : state) {
    int64_t t0 = monotonic_ns();
    DecryptResult d = r.client->decrypt(r.blob, {}, "", &r.recipient);
    us.push_back(static_cast<double>(monotonic_ns() - t0) / 1000.0);
    benchmark::DoNotOptimize(d.plaintext.data());
  }
  report_latency(state, us);
  state.counters["rsa_floor_us"] = rsa_floor;
  state.counters["x_rsa_floor"] = state.counters["p50_us"] / rsa_floor;
  state.counters["x_plain_decrypt"] = state.counters["p50_us"] / plain;
  state.counters["rsa_keygens_during_run"] = static_cast<double>(r.keys.generations() - gens);
}

void BM_DecryptWithoutRecipient(benchmark::State& state) {
  Rig& r = rig();
  std::vector<double> us;
  for (auto _ : state) {
    int64_t t0 = monotonic_ns();
    DecryptResult d = r.client->decrypt(r.blob);
    us.push_back(static_cast<double>(monotonic_ns() - t0) / 1000.0);
    benchmark::DoNotOptimize(d.plaintext.data());
  }
  report_latency(state, us);
}

void BM_AttestOnly(benchmark::State& state) {
  Rig& r = rig();
  auto pair = r.keys.current();
  for (auto _ : state) benchmark::DoNotOptimize(r.source->attestation_document(pair->spki_der()));
}

void BM_CmsOpenOnly(benchmark::State& state) {
  Rig& r = rig();
  auto pair = r.keys.current();
  Bytes env = build_recipient_envelope(Bytes(32, 1), pair->spki_der());
  for (auto _ : state) benchmark::DoNotOptimize(pair->open(env));
}

void BM_FloorRsaOaepDecrypt(benchmark::State& state) {
  Rig& r = rig();
  auto pair = r.keys.current();
  Bytes ek = parse_recipient_envelope(build_recipient_envelope(Bytes(32, 1), pair->spki_der())).encrypted_key;
  for (auto _ : state) rsa_oaep_decrypt_once(pair->private_key(), ek);
}

// Floor: raw AES-256-GCM over a 32-byte data key (what kms-local's Decrypt itself costs).
void BM_FloorAesGcm32(benchmark::State& state) {
  unsigned char key[32] = {1}, iv[12] = {2}, in[32] = {3}, out[48], tag[16];
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  for (auto _ : state) {
    int n = 0;
    EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), nullptr, key, iv);
    EVP_EncryptUpdate(c, out, &n, in, sizeof in);
    EVP_EncryptFinal_ex(c, out + n, &n);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag);
    benchmark::DoNotOptimize(out);
  }
  EVP_CIPHER_CTX_free(c);
}

void BM_RsaKeygenOffPath(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(RecipientKeyPair::generate());
}

// ---- load: the HTTP server at 1, 64 and 512 connections ----

// A GenerateRandom request signed once (SigV4 allows replay within its clock window): the
// load generator spends no CPU signing, so the figures are the server's.
std::string signed_generate_random(const LocalKms& kms) {
  auto creds = credentials_from_file(kms.credentials_path(), "admin");
  std::string body = R"({"NumberOfBytes":32})";
  HeaderList h{{"Host", "kms-local"},
               {"Content-Type", "application/x-amz-json-1.1"},
               {"X-Amz-Target", "TrentService.GenerateRandom"}};
  SigV4Params p;
  p.access_key_id = creds->access_key_id;
  p.secret_access_key = creds->secret_access_key.view();
  p.region = "us-east-1";
  p.amz_date = amz_date(std::time(nullptr));
  SigV4Result signed_req = sigv4_sign({"POST", "/", "", h, as_bytes(body)}, p);
  std::string out = "POST / HTTP/1.1\r\n";
  for (const auto& [k, v] : h) out += k + ": " + v + "\r\n";
  for (const auto& [k, v] : signed_req.added_headers) out += k + ": " + v + "\r\n";
  out += "Authorization: " + signed_req.authorization + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
  return out;
}

size_t load_requests(int conns) { return conns == 1 ? 10000 : 40000; }

void report_load(benchmark::State& state, const HttpLoad& r) {
  state.counters["req_per_s"] = r.req_per_s;
  state.counters["p50_us"] = r.p50_us;
  state.counters["p99_us"] = r.p99_us;
}

std::map<int64_t, HttpLoad> g_echo_floor, g_http_floor;

// Floor 1: the raw epoll echo of the same request bytes (no HTTP parsing, no handler).
void BM_LoadFloorRawEcho(benchmark::State& state) {
  Rig& r = rig();
  net::Endpoint ep = net::Endpoint::unix_path((r.dir / "echo.sock").string());
  sn_bench::RawEchoServer server(ep);
  std::string req = signed_generate_random(*r.kms);
  HttpLoad l;
  int conns = static_cast<int>(state.range(0));
  for (auto _ : state) l = best_of_3([&] { return drive_http(ep, conns, req, load_requests(conns), false); });
  g_echo_floor[state.range(0)] = l;
  report_load(state, l);
  std::filesystem::remove(ep.path);
}

// Floor 2: kms-local's HTTP server with a handler that answers at once.
// Best of 3 runs of state.range(0) connections sending signed GenerateRandom requests (statuses
// checked) to the server on unix:path: the same load for the floor and for kms-local.
HttpLoad load_signed_generate_random(benchmark::State& state, Rig& r, const std::string& path) {
  std::string req = signed_generate_random(*r.kms);
  int conns = static_cast<int>(state.range(0));
  HttpLoad l;
  for (auto _ : state)
    l = best_of_3([&] { return drive_http(net::Endpoint::unix_path(path), conns, req, load_requests(conns), true); });
  return l;
}

void BM_LoadFloorHttpTrivial(benchmark::State& state) {
  Rig& r = rig();
  std::string path = (r.dir / "trivial.sock").string();
  HttpServer server({"unix:" + path}, [](const HttpServerRequest&) {
    return HttpServerResponse{200, {{"Content-Type", "application/x-amz-json-1.1"}}, "{}"};
  });
  server.start();
  HttpLoad l = load_signed_generate_random(state, r, path);
  g_http_floor[state.range(0)] = l;
  report_load(state, l);
  if (g_echo_floor.count(state.range(0))) state.counters["x_echo_rps"] = l.req_per_s / g_echo_floor[state.range(0)].req_per_s;
}

// kms-local itself: SigV4 verification, policy and GenerateRandom behind the same server.
void BM_LoadKmsLocalGenerateRandom(benchmark::State& state) {
  Rig& r = rig();
  std::string path = (r.dir / "kms.sock").string();
  HttpServer server({"unix:" + path}, [&r](const HttpServerRequest& q) { return r.kms->handle(q); });
  server.start();
  HttpLoad l = load_signed_generate_random(state, r, path);
  report_load(state, l);
  state.counters["not_200"] = static_cast<double>(l.not_ok);
  if (auto it = g_echo_floor.find(state.range(0)); it != g_echo_floor.end()) {
    state.counters["x_echo_rps"] = l.req_per_s / it->second.req_per_s;
    state.counters["x_echo_p99"] = l.p99_us / it->second.p99_us;
  }
  if (auto it = g_http_floor.find(state.range(0)); it != g_http_floor.end()) {
    state.counters["x_http_rps"] = l.req_per_s / it->second.req_per_s;
    state.counters["x_http_p99"] = l.p99_us / it->second.p99_us;
  }
}

}  // namespace

BENCHMARK(BM_LoadFloorRawEcho)->Arg(1)->Arg(64)->Arg(512)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoadFloorHttpTrivial)->Arg(1)->Arg(64)->Arg(512)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoadKmsLocalGenerateRandom)->Arg(1)->Arg(64)->Arg(512)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReleaseWithRecipient)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_DecryptWithoutRecipient)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_AttestOnly)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CmsOpenOnly)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FloorRsaOaepDecrypt)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FloorAesGcm32)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_RsaKeygenOffPath)->Unit(benchmark::kMillisecond)->Iterations(5);

BENCHMARK_MAIN();
