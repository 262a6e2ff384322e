// Attestation-gated key release against an in-process kms-local over loopback HTTP:
// attest (simulated NSM) + Decrypt with Recipient + CMS open, beside the same Decrypt without
// Recipient, and the physical floors (RSA-2048 OAEP decrypt, which the release must do once,
// and raw AES-256-GCM). RSA key generation runs once, before timing: never on the request path.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <filesystem>
#include <unistd.h>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/kms/attested.h"
#include "shield_nitro/kms_local/recipient_verifier.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/cms.h"
#include "shield_nitro/kms_local/local_kms.h"
#include "shield_nitro/nsm_sim/simulator.h"

using namespace shield_nitro;
using namespace shield_nitro::kms;

namespace {

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
    std::string key = client->call("CreateKey", nlohmann::json::object())["KeyMetadata"]["Arn"];
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

}  // namespace

BENCHMARK(BM_ReleaseWithRecipient)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_DecryptWithoutRecipient)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_AttestOnly)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CmsOpenOnly)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FloorRsaOaepDecrypt)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FloorAesGcm32)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_RsaKeygenOffPath)->Unit(benchmark::kMillisecond)->Iterations(5);

BENCHMARK_MAIN();
