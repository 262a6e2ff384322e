// Attestation-document verification throughput (documents/s, one core) beside its floor: the
// raw cost of the five ECDSA P-384 verifications a genuine AWS document needs (four chain
// signatures: root->regional->zonal->instance->leaf, plus the COSE signature), done with
// EVP_DigestVerify on pre-parsed keys and pre-extracted to-be-signed bytes.
// Counters:
//   x_floor  cold verification rate / 5-verify floor rate   (target >= 0.8)
//   x_cold   warm (chain cache) rate / cold rate            (target >= 2)
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"

using namespace shield_nitro;

namespace {

const std::string kDocPath = std::string(SN_FIXTURES_DIR) + "/nsm/real/anjuna_prod_2021-03-17.cbor";
constexpr int64_t kAtMs = 1616020200000;  // 2021-03-17T22:30:00Z, inside the chain window

const Bytes& document() {
  static const Bytes doc = read_file(kDocPath);
  return doc;
}

// One signature check, everything but the verification itself prepared in advance.
struct RawVerify {
  std::shared_ptr<EVP_PKEY> key;
  Bytes message;
  Bytes der_signature;
  bool run() const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha384(), nullptr, key.get()) == 1 &&
              EVP_DigestVerify(ctx, der_signature.data(), der_signature.size(), message.data(), message.size()) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
  }
};

std::shared_ptr<X509> parse(const Bytes& der) {
  const uint8_t* p = der.data();
  return {d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free};
}

RawVerify cert_signature(X509* cert, X509* issuer) {
  RawVerify v;
  v.key.reset(X509_get_pubkey(issuer), EVP_PKEY_free);
  uint8_t* tbs = nullptr;
  int len = i2d_re_X509_tbs(cert, &tbs);
  v.message.assign(tbs, tbs + len);
  OPENSSL_free(tbs);
  const ASN1_BIT_STRING* sig = nullptr;
  X509_get0_signature(&sig, nullptr, cert);
  v.der_signature.assign(sig->data, sig->data + sig->length);
  return v;
}

// The five verifications of the floor, built from the document itself.
std::vector<RawVerify> floor_verifies() {
  attest::Document d = attest::decode_document(document());
  std::vector<std::shared_ptr<X509>> chain;  // root, regional, zonal, instance, leaf
  for (const Bytes& c : d.cabundle) chain.push_back(parse(c));
  chain.push_back(parse(d.certificate));
  std::vector<RawVerify> out;
  for (size_t i = 1; i < chain.size(); ++i) out.push_back(cert_signature(chain[i].get(), chain[i - 1].get()));
  RawVerify cose;
  cose.key.reset(X509_get_pubkey(chain.back().get()), EVP_PKEY_free);
  cose.message = cose::sig_structure(d.envelope.protected_header, d.envelope.payload);
  cose.der_signature = cose::es384_raw_to_der(d.envelope.signature);
  out.push_back(cose);
  return out;
}

void floor_once(const std::vector<RawVerify>& vs) {
  for (const RawVerify& v : vs)
    if (!v.run()) throw Error(Errc::kInternal, "bench: floor verification failed");
}

int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Documents per CPU-second of fn over about 0.5 s of this thread's CPU time (for the ratio
// counters; CPU time, like the docs_per_s counters, so other load on the machine cancels out).
template <typename F>
double rate(F&& fn) {
  int64_t start = thread_cpu_ns(), n = 0;
  while (thread_cpu_ns() - start < 500000000) {
    fn();
    ++n;
  }
  return static_cast<double>(n) * 1e9 / static_cast<double>(thread_cpu_ns() - start);
}

struct Rates {
  double floor, cold;
};

const Rates& reference_rates() {
  static const Rates r = [] {
    std::vector<RawVerify> vs = floor_verifies();
    attest::Verifier cold(attest::TrustAnchor::aws(), {.chain_cache = false});
    return Rates{rate([&] { floor_once(vs); }), rate([&] { cold.verify_at(document(), kAtMs); })};
  }();
  return r;
}

void BM_Floor5VerifiesP384(benchmark::State& state) {
  std::vector<RawVerify> vs = floor_verifies();
  for (auto _ : state) floor_once(vs);
  state.counters["docs_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_VerifyCold(benchmark::State& state) {
  attest::Verifier v(attest::TrustAnchor::aws(), {.chain_cache = false});
  for (auto _ : state) benchmark::DoNotOptimize(v.verify_at(document(), kAtMs));
  state.counters["docs_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  const Rates& r = reference_rates();
  state.counters["x_floor"] = r.cold / r.floor;
}

void BM_VerifyWarm(benchmark::State& state) {
  attest::Verifier v(attest::TrustAnchor::aws());
  v.verify_at(document(), kAtMs);
  for (auto _ : state) benchmark::DoNotOptimize(v.verify_at(document(), kAtMs));
  state.counters["docs_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  const Rates& r = reference_rates();
  state.counters["x_cold"] = rate([&] { v.verify_at(document(), kAtMs); }) / r.cold;
}

}  // namespace

BENCHMARK(BM_Floor5VerifiesP384)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_VerifyCold)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_VerifyWarm)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
