// Test helper: a small fake KMS speaking AWS's JSON shapes for GenerateDataKeyPair(WithoutPlaintext),
// DeriveSharedSecret and GetPublicKey (no SigV4 check), its answers made with OpenSSL here, with
// switches for the wrong answers a client must refuse; and the OpenSSL helpers the tests share.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <nlohmann/json.hpp>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/kms/client.h"
#include "shield_nitro/kms/cms.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/kms_local/http_server.h"

namespace sn_test {

using namespace shield_nitro;
using namespace shield_nitro::kms;
using json = nlohmann::json;


inline ossl::Ptr<EVP_PKEY> keygen(const std::string& spec) {
  if (spec.rfind("RSA_", 0) == 0)
    return ossl::Ptr<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(std::stoi(spec.substr(4)))));
  const char* curve = spec == "ECC_NIST_P256" ? "P-256" : spec == "ECC_NIST_P384" ? "P-384" : "P-521";
  return ossl::Ptr<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}

inline Bytes spki(EVP_PKEY* k) {
  unsigned char* p = nullptr;
  int n = i2d_PUBKEY(k, &p);
  Bytes out(p, p + n);
  OPENSSL_free(p);
  return out;
}

inline Bytes pkcs8(EVP_PKEY* k) {
  PKCS8_PRIV_KEY_INFO* info = EVP_PKEY2PKCS8(k);
  unsigned char* p = nullptr;
  int n = i2d_PKCS8_PRIV_KEY_INFO(info, &p);
  Bytes out(p, p + n);
  OPENSSL_clear_free(p, n);
  PKCS8_PRIV_KEY_INFO_free(info);
  return out;
}

inline Bytes ecdh(EVP_PKEY* mine, EVP_PKEY* peer) {
  ossl::Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new(mine, nullptr));
  size_t n = 0;
  if (EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_derive_set_peer(ctx.get(), peer) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &n) != 1)
    throw std::runtime_error("test ECDH failed");
  Bytes out(n);
  EVP_PKEY_derive(ctx.get(), out.data(), &n);
  return out;
}

inline ossl::Ptr<EVP_PKEY> from_spki(const Bytes& der) {
  const unsigned char* p = der.data();
  return ossl::Ptr<EVP_PKEY>(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
}

// Stands in for the NSM: the "document" is the recipient key's SPKI itself, which the fake KMS
// envelopes to (the real document path is covered against kms-local).
class SpkiAsDocument final : public AttestationSource {
 public:
  Bytes attestation_document(ByteView public_key_der) override { return to_bytes(public_key_der); }
};

// What the fake answers wrong, one switch per refusal the client must make.
struct Faults {
  bool other_private_key = false;   // a private key that is not the public key's
  std::string answered_spec;        // KeyPairSpec in the answer, when not the one asked
  bool clear_with_recipient = false;  // the secret in clear as well as for the Recipient
  int secret_size = 0;              // truncate the shared secret to this many bytes
};

class FakeKms {
 public:
  FakeKms() : agreement_(keygen("ECC_NIST_P256")) {
    HttpServerOptions o;
    o.listen = "127.0.0.1:0";
    server_ = std::make_unique<HttpServer>(o, [this](const HttpServerRequest& r) { return handle(r); });
    server_->start();
  }
  std::string url() const { return server_->url() + "/"; }
  KmsClient client() {
    KmsClientOptions o;
    o.endpoint = server_->url() + "/";
    o.max_attempts = 1;
    Credentials c;
    c.access_key_id = "AKIDFAKE";
    c.secret_access_key = SecureBytes(as_bytes("fake-secret"));
    return KmsClient(o, std::make_shared<StaticCredentials>(std::move(c)));
  }
  json last(const std::string& op) {
    std::lock_guard<std::mutex> l(mu_);
    return requests_[op];
  }
  int count() {
    std::lock_guard<std::mutex> l(mu_);
    return static_cast<int>(requests_.size());
  }
  EVP_PKEY* agreement_key() { return agreement_.get(); }
  Faults faults;

 private:
  HttpServerResponse handle(const HttpServerRequest& r) {
    std::string op = find_header(r.headers, "X-Amz-Target").value_or("").substr(std::string("TrentService.").size());
    json req = json::parse(r.body);
    {
      std::lock_guard<std::mutex> l(mu_);
      requests_[op] = req;
    }
    json resp = {{"KeyId", "arn:aws:kms:us-east-1:111122223333:key/fake"}};
    Bytes secret;
    if (op == "GenerateDataKeyPair" || op == "GenerateDataKeyPairWithoutPlaintext") {
      std::string spec = req["KeyPairSpec"];
      auto pair = keygen(spec);
      auto other = faults.other_private_key ? keygen(spec) : nullptr;
      resp["KeyPairSpec"] = faults.answered_spec.empty() ? spec : faults.answered_spec;
      resp["PublicKey"] = base64_encode(spki(pair.get()));
      resp["PrivateKeyCiphertextBlob"] = base64_encode(as_bytes("wrapped:" + spec));
      if (op == "GenerateDataKeyPair") secret = pkcs8(other ? other.get() : pair.get());
      if (op == "GenerateDataKeyPairWithoutPlaintext" && faults.clear_with_recipient)
        resp["PrivateKeyPlaintext"] = base64_encode(pkcs8(pair.get()));
    } else if (op == "DeriveSharedSecret") {
      auto peer = from_spki(base64_decode(req["PublicKey"].get<std::string>()));
      secret = ecdh(agreement_.get(), peer.get());
      if (faults.secret_size) secret.resize(static_cast<size_t>(faults.secret_size));
      resp["KeyAgreementAlgorithm"] = "ECDH";
    } else if (op == "GetPublicKey") {
      resp.update({{"PublicKey", base64_encode(spki(agreement_.get()))}, {"KeySpec", "ECC_NIST_P256"},
                   {"KeyUsage", "KEY_AGREEMENT"}, {"KeyAgreementAlgorithms", {"ECDH"}}});
    }
    const char* clear = op == "DeriveSharedSecret" ? "SharedSecret" : "PrivateKeyPlaintext";
    if (!secret.empty()) {
      if (req.contains("Recipient")) {
        Bytes doc = base64_decode(req["Recipient"]["AttestationDocument"].get<std::string>());
        resp["CiphertextForRecipient"] = base64_encode(build_recipient_envelope(secret, doc));
        if (faults.clear_with_recipient) resp[clear] = base64_encode(secret);
      } else {
        resp[clear] = base64_encode(secret);
      }
    }
    return {200, {{"Content-Type", "application/x-amz-json-1.1"}}, resp.dump()};
  }

  ossl::Ptr<EVP_PKEY> agreement_;
  std::mutex mu_;
  std::map<std::string, json> requests_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace sn_test
