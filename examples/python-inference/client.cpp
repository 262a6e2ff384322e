// client-cpp: client.py in C++, through the enclave's attested-TLS ingress with the parent SDK
// (shield_nitro/parent/attested_tls.h): verify the attestation document the enclave serves on the
// TLS connection it describes, then send every batch as an HTTP/1.1 POST /classify on one
// keep-alive connection pinned to that key (a reconnect re-attests if the key rotated).
//
//   client-cpp --url https://127.0.0.1:PORT --pcr 0=HEX --pcr 1=HEX --pcr 2=HEX --root ROOT.pem
//              --testset testset.bin --reference reference.json [--batch 40] [--json]
//
// Exit codes (the CLI's): 0 every prediction equals the reference, 1 refused (attestation, policy,
// binding, pin) or predictions differ, 2 usage, 3 network or file errors.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/kms/http_client.h"
#include "shield_nitro/kms/key_policy.h"
#include "shield_nitro/net/http_headers.h"
#include "shield_nitro/parent/attested_tls.h"
#include "testset.h"  // examples/model-inference

namespace sn = shield_nitro;
using sn::Errc;
using sn::Error;

namespace {

struct Options {
  std::string url, testset, reference, root;
  std::vector<std::string> pcrs;
  int64_t max_age = -1;
  size_t batch = 40;
  bool json = false;
};

sn::attest::Policy make_policy(const Options& o) {
  sn::attest::Policy p;
  for (const auto& arg : o.pcrs) {
    auto [index, value] = sn::kms::parse_pcr_argument(arg);  // kUsage: not N=HEX, not 48 bytes, index > 31
    p.expect_pcr(static_cast<uint32_t>(index), std::move(value));
  }
  if (o.max_age >= 0) p.max_age_s = o.max_age;
  return p;
}

// HTTP/1.1 with keep-alive over one pinned connection: requests in order, answers parsed with
// the SDK's response parser; bytes past one answer stay for the next.
class KeepAlive {
 public:
  KeepAlive(sn::parent::AttestedTlsClient& client, std::string host_header)
      : client_(client), host_(std::move(host_header)) {}

  sn::kms::HttpResponse post(const std::string& path, const std::string& body) {
    std::string request = "POST " + path + " HTTP/1.1\r\nHost: " + host_ +
                          "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
    // A keep-alive connection the server closed while idle fails on first use: one retry on a
    // fresh connection (connect() re-attests when the key changed); never twice.
    for (int attempt = 0;; ++attempt) {
      bool fresh = !conn_;
      if (!conn_) {
        conn_.emplace(client_.connect());
        ++connections_;
        pending_.clear();
      }
      try {
        conn_->write_all(request);
        return read_answer();
      } catch (const Error& e) {
        conn_.reset();
        if (fresh || attempt > 0 || (e.code() != Errc::kIo)) throw;
      }
    }
  }

  size_t connections() const { return connections_; }

 private:
  sn::kms::HttpResponse read_answer() {
    for (;;) {
      sn::kms::HttpResponse answer;
      size_t used = 0;
      if (!pending_.empty() &&
          sn::kms::parse_http_response(pending_, false, {}, answer, used) == sn::kms::HttpResponseParse::kComplete) {
        pending_.erase(0, used);
        auto connection = sn::net::find_header(answer.headers, "Connection");
        if (connection && (*connection == "close" || *connection == "Close")) conn_.reset();
        return answer;
      }
      char buf[16384];
      size_t n = conn_->read_some(buf, sizeof buf);  // kTimeout when the app is silent
      if (n == 0)
        throw Error(Errc::kIo, pending_.empty() ? "the connection was closed before an answer"
                                                : "the connection was closed in the middle of an answer");
      pending_.append(buf, n);
    }
  }

  sn::parent::AttestedTlsClient& client_;
  std::string host_;
  std::optional<sn::parent::PinnedConnection> conn_;
  std::string pending_;
  size_t connections_ = 0;
};

int run(const Options& o) {
  auto target = sn::parent::parse_tls_target(o.url);  // kUsage for anything but https://HOST:PORT
  auto policy = make_policy(o);
  auto anchor = o.root.empty() ? sn::attest::TrustAnchor::aws()
                               : sn::attest::TrustAnchor::from_pem(sn::to_string(sn::read_file(o.root)));
  example::TestSet t = example::read_testset(o.testset);
  auto reference = nlohmann::json::parse(sn::to_string(sn::read_file(o.reference)), nullptr, false);
  if (!reference.is_object() || !reference.contains("predictions") || !reference["predictions"].is_array())
    throw Error(Errc::kFormat, o.reference + ": no \"predictions\" array");

  sn::parent::AttestedTlsClient client(o.url, policy, anchor);
  auto verified = client.current();  // verifies before any image leaves this process
  if (!o.json)
    std::cout << "attested: module " << verified.claims.module_id << " holds the TLS key " << verified.curl_pin
              << " (" << policy.pcrs.size() << " PCRs as pinned)\n";
  KeepAlive http(client, sn::parent::tls_authority(target));

  std::vector<int64_t> predictions;
  for (size_t first = 0; first < t.count; first += o.batch) {
    size_t n = std::min<size_t>(o.batch, t.count - first);
    const char* images = reinterpret_cast<const char*>(t.features.data()) + first * t.dim * 4;
    auto answer = http.post("/classify", std::string(images, n * t.dim * 4));
    if (answer.status != 200)
      throw Error(Errc::kRemote, "POST /classify: HTTP " + std::to_string(answer.status) + ": " + answer.body.substr(0, 200));
    auto body = nlohmann::json::parse(answer.body, nullptr, false);
    if (!body.is_object() || !body.contains("predictions") || !body["predictions"].is_array() ||
        body["predictions"].size() != n)
      throw Error(Errc::kFormat, "POST /classify: not " + std::to_string(n) + " predictions in the answer");
    for (const auto& p : body["predictions"]) {
      if (!p.is_number_integer()) throw Error(Errc::kFormat, "POST /classify: a prediction is not an integer");
      predictions.push_back(p.get<int64_t>());
    }
  }
  size_t correct = 0;
  bool same = reference["predictions"].size() == predictions.size();
  for (size_t i = 0; i < predictions.size(); ++i) {
    correct += predictions[i] == t.labels[i];
    same = same && reference["predictions"][i].is_number_integer() && reference["predictions"][i].get<int64_t>() == predictions[i];
  }
  double accuracy = t.count ? double(correct) / t.count : 0;
  if (o.json) {
    nlohmann::ordered_json out = {{"images", predictions.size()},
                                  {"correct", correct},
                                  {"accuracy", std::round(accuracy * 10000) / 10000},
                                  {"matches_reference", same},
                                  {"pin", verified.curl_pin},
                                  {"connections", http.connections()},
                                  {"verifications", client.verifications()}};
    std::cout << out.dump() << "\n";
  } else {
    std::printf("%zu images in %zu requests on %zu pinned connection(s): accuracy %.4f, %s\n", predictions.size(),
                (predictions.size() + o.batch - 1) / o.batch, http.connections(), accuracy,
                same ? "every prediction equals the plaintext model's" : "SOME PREDICTIONS DIFFER from the plaintext model's");
  }
  return same ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "Classifies the example's test set through the enclave's attested-TLS ingress (C++ parent SDK).\n"
      "First the enclave's attestation document, fetched over the very TLS connection it describes,\n"
      "must verify under --root, match every --pcr and name that connection's key; only then do the\n"
      "images leave this process, on keep-alive connections pinned to that key. A parent that ends\n"
      "TLS itself (its own certificate) is refused before any image is sent.",
      "client-cpp"};
  app.add_option("--url", o.url, "The attested-TLS ingress: https://HOST:PORT")->required();
  app.add_option("--pcr", o.pcrs, "Require PCR N to equal HEX (96 hex digits); repeat for 0, 1, 2 (shield-nitro eif build prints them)")
      ->required();
  app.add_option("--root", o.root, "The attestation root certificate (PEM); default the AWS Nitro root (a real enclave)");
  app.add_option("--max-age", o.max_age, "Refuse a document older than this many seconds");
  app.add_option("--testset", o.testset, "testset.bin (SNTS v1) from examples/model-inference/train.py")->required();
  app.add_option("--reference", o.reference, "reference.json: the plaintext model's predictions")->required();
  app.add_option("--batch", o.batch, "Images per request")->check(CLI::Range(1, 10000));
  app.add_flag("--json", o.json, "Print one JSON line: images, correct, accuracy, matches_reference, pin, connections");
  app.footer(
      "Example (the pins come from `shield-nitro eif build --json`, the root from the simulator's state):\n"
      "  client-cpp --url https://127.0.0.1:8443 --pcr 0=$PCR0 --pcr 1=$PCR1 --pcr 2=$PCR2 \\\n"
      "             --root /tmp/enclave/nsm/root.pem --testset testset.bin --reference reference.json\n"
      "Exit codes: 0 every prediction equals the reference, 1 refused (attestation, PCRs, key binding,\n"
      "pin) or predictions differ, 2 usage, 3 network or file errors.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    return run(o);
  } catch (const Error& e) {
    bool refused = e.code() == Errc::kVerify || e.code() == Errc::kPolicy || e.code() == Errc::kExpired;
    std::cerr << "client-cpp: " << o.url << ": " << (refused ? "refused: " : "") << e.what() << "\n";
    return sn::exit_code(e.code());
  } catch (const std::exception& e) {
    std::cerr << "client-cpp: " << e.what() << "\n";
    return 3;
  }
}
