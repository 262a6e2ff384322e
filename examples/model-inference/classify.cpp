// classify: the digits example's parent program in C++ (the C++ parent SDK, sn_parent).
//
//   classify --enclave vsock://16:5000 --root STATE/nsm/root.pem --pcr 0=HEX [--pcr N=HEX]...
//            --model-dir DIR --weights mlp.snst --plugin mlp_plugin.snst
//            --key-id ARN --wrapped-key data.key.wrapped [--context K=V]...
//            [--credentials FILE --profile NAME] [--images N]
//
// attest -> verify (root, PCRs) -> channel -> push credentials -> load-key (KMS releases the data
// key to the enclave only) -> load the sealed weights and plugin -> classify DIR/testset.bin in
// batches through the channel. Prints accuracy, images/s and latency; exits 0 only if every
// prediction equals DIR/reference.json's (the plaintext model's), 1 if not or refused, 2 on
// bad usage, 3 on I/O or environment errors (the CLI's exit codes). Without --root the AWS Nitro root is trusted (a real enclave).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/parent/enclave_client.h"
#include "testset.h"

namespace sn = shield_nitro;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint32_t kBatch = 36;

struct Options {
  std::string enclave, root, model_dir, weights, plugin, key_id, wrapped_key, credentials, profile = "default";
  std::map<uint32_t, sn::Bytes> pcrs;
  sn::parent::EncryptionContext context;
  size_t images = 0;  // 0 = all
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::pair<std::string, std::string> split_pair(const std::string& arg, const std::string& what) {
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) throw UsageError(what + " expects K=V, got '" + arg + "'");
  return {arg.substr(0, eq), arg.substr(eq + 1)};
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) throw UsageError(flag + " needs a value (see the top of classify.cpp)");
    std::string v = argv[++i];
    if (flag == "--enclave") o.enclave = v;
    else if (flag == "--root") o.root = v;
    else if (flag == "--model-dir") o.model_dir = v;
    else if (flag == "--weights") o.weights = v;
    else if (flag == "--plugin") o.plugin = v;
    else if (flag == "--key-id") o.key_id = v;
    else if (flag == "--wrapped-key") o.wrapped_key = v;
    else if (flag == "--credentials") o.credentials = v;
    else if (flag == "--profile") o.profile = v;
    else if (flag == "--images") o.images = std::stoul(v);
    else if (flag == "--context") o.context.insert(split_pair(v, "--context"));
    else if (flag == "--pcr") {
      auto [index, hex] = split_pair(v, "--pcr");
      o.pcrs[static_cast<uint32_t>(std::stoul(index))] = sn::hex_decode(hex);
    } else {
      throw UsageError("unknown option " + flag);
    }
  }
  for (auto* required : {&o.enclave, &o.model_dir, &o.weights, &o.plugin, &o.wrapped_key})
    if (required->empty()) throw UsageError("--enclave, --model-dir, --weights, --plugin and --wrapped-key are required");
  if (o.pcrs.count(0) == 0) throw UsageError("pin at least --pcr 0=HEX (the image)");
  return o;
}

using example::TestSet;
using example::u32_at;

void put_u32(sn::Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// One SNMI request for images [first, first + n).
sn::Bytes request(const TestSet& t, size_t first, uint32_t n) {
  sn::Bytes r = {'S', 'N', 'M', 'I'};
  put_u32(r, n);
  put_u32(r, t.dim);
  put_u32(r, 0);  // flags: classes only
  auto begin = t.features.begin() + first * t.dim * 4;
  r.insert(r.end(), begin, begin + size_t(n) * t.dim * 4);
  return r;
}

// The classes of an SNMO reply.
std::vector<uint32_t> classes(sn::ByteView reply, uint32_t n) {
  sn::Bytes b(reply.begin(), reply.end());
  if (b.size() < 12 + size_t(n) * 4 || std::memcmp(b.data(), "SNMO", 4) != 0 || u32_at(b, 4) != n)
    throw sn::Error(sn::Errc::kFormat, "malformed reply from the plugin");
  std::vector<uint32_t> out(n);
  for (uint32_t i = 0; i < n; ++i) out[i] = u32_at(b, 12 + 4 * i);
  return out;
}

std::unique_ptr<sn::parent::EnclaveClient> open_session(const Options& o) {
  auto client = sn::parent::EnclaveClient::connect(o.enclave);
  sn::attest::Policy policy;
  for (const auto& [index, value] : o.pcrs) policy.expect_pcr(index, value);
  auto anchor = o.root.empty() ? sn::attest::TrustAnchor::aws()
                               : sn::attest::TrustAnchor::from_pem(sn::to_string(sn::read_file(o.root)));
  const auto& channel = client->open_channel(policy, anchor);
  std::cout << "attested module " << channel.claims.module_id << ": " << o.pcrs.size()
            << " PCRs as pinned; channel open\n";
  if (!o.credentials.empty()) {
    auto creds = sn::kms::credentials_from_file(o.credentials, o.profile);
    if (!creds) throw sn::Error(sn::Errc::kEnvironment, "no profile '" + o.profile + "' in " + o.credentials);
    client->push_credentials(std::move(*creds));
  } else {
    client->set_credentials_provider(std::make_shared<sn::kms::DefaultCredentialsChain>());
    client->push_credentials();
  }
  return client;
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int run(const Options& o) {
  TestSet t = example::read_testset(o.model_dir + "/testset.bin");
  auto reference = nlohmann::json::parse(sn::to_string(sn::read_file(o.model_dir + "/reference.json")));
  size_t n = o.images == 0 ? t.count : std::min<size_t>(o.images, t.count);

  auto client = open_session(o);
  auto key = client->load_key(sn::read_file(o.wrapped_key), o.key_id, o.context);
  auto weights = client->load_artifact(key.handle, o.weights, "model", "mlp.weights");
  auto code = client->load_artifact(key.handle, o.plugin, "code", "mlp", {weights.handle});
  std::cout << "KMS released the data key to the enclave (" << key.handle << "); loaded " << weights.handle << " ("
            << weights.size << " bytes) and " << code.handle << "\n";

  std::vector<uint32_t> predictions;
  std::vector<double> latency;
  auto start = Clock::now();
  for (size_t first = 0; first < n; first += kBatch) {
    uint32_t k = static_cast<uint32_t>(std::min<size_t>(kBatch, n - first));
    auto t0 = Clock::now();
    sn::SecureBytes reply = client->invoke(code.handle, request(t, first, k));
    latency.push_back(ms(Clock::now() - t0));
    auto got = classes(reply.view(), k);
    predictions.insert(predictions.end(), got.begin(), got.end());
  }
  double seconds = ms(Clock::now() - start) / 1000;
  size_t correct = 0, agree = 0, ref_correct = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t ref = reference["predictions"][i].get<uint32_t>();
    correct += predictions[i] == t.labels[i];
    ref_correct += ref == t.labels[i];
    agree += predictions[i] == ref;
  }
  std::sort(latency.begin(), latency.end());
  std::printf("accuracy %.4f on %zu images (plaintext model: %.4f); %.0f images/s, p50 %.2f ms per batch of %u\n",
              double(correct) / n, n, double(ref_correct) / n, n / seconds, latency[latency.size() / 2], kBatch);
  if (agree != n) {
    std::printf("%zu of %zu predictions differ from the plaintext model's\n", n - agree, n);
    return 1;
  }
  std::printf("every prediction equals the plaintext model's\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const UsageError& e) {
    std::cerr << "classify: " << e.what() << "\n";
    return 2;
  } catch (const sn::Error& e) {
    std::cerr << "classify: " << e.what() << "\n";
    return sn::exit_code(e.code());  // the CLI's: 1 refused, 2 usage, 3 environment or I/O
  } catch (const std::exception& e) {
    std::cerr << "classify: " << e.what() << "\n";
    return 3;
  }
}
