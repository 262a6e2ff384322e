#include "shield_nitro/attest/trust_anchor.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <mutex>

#include "aws_root.h"
#include "shield_nitro/core/error.h"
#include "trust_anchor_state.h"

namespace shield_nitro::attest {
namespace {

[[noreturn]] void bad(const std::string& why) { throw Error(Errc::kFormat, "trust anchor: " + why); }

detail::X509Ptr single_pem_certificate(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) throw_openssl("BIO_new_mem_buf");
  detail::X509Ptr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  detail::X509Ptr second(cert ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr);
  BIO_free(bio);
  ERR_clear_error();
  if (!cert) bad("no PEM certificate found");
  if (second) bad("more than one certificate; a verifier trusts exactly one root");
  return cert;
}

std::shared_ptr<const detail::TrustAnchorAccess::State> make_state(detail::X509Ptr cert, bool aws) {
  if (X509_check_ca(cert.get()) == 0) bad("the certificate is not a CA");
  if (X509_self_signed(cert.get(), 1) != 1) {
    ERR_clear_error();
    bad("the certificate is not a valid self-signed root");
  }
  auto s = std::make_shared<detail::TrustAnchorAccess::State>();
  s->der = detail::der_of(cert.get());
  s->aws = aws || hex_encode(detail::sha256(s->der)) == kAwsRootG1Sha256Hex;
  s->summary = detail::summarize(cert.get(), s->der);
  s->store = X509_STORE_new();
  if (!s->store || X509_STORE_add_cert(s->store, cert.get()) != 1) throw_openssl("X509_STORE_add_cert");
  s->cert = std::move(cert);
  return s;
}

std::shared_ptr<const detail::TrustAnchorAccess::State> load_aws() {
  BIO* bio = BIO_new_mem_buf(detail::kAwsRootG1Pem, -1);
  detail::X509Ptr cert(bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr);
  BIO_free(bio);
  if (!cert) throw_openssl("compiled-in AWS root does not parse");
  if (hex_encode(detail::sha256(detail::der_of(cert.get()))) != kAwsRootG1Sha256Hex)
    throw Error(Errc::kInternal, "compiled-in AWS root does not match its pinned SHA-256");
  return make_state(std::move(cert), true);
}

}  // namespace

TrustAnchor TrustAnchor::aws() {
  static std::once_flag once;
  static std::shared_ptr<const State> state;
  std::call_once(once, [] { state = load_aws(); });
  return TrustAnchor(state);
}

TrustAnchor TrustAnchor::from_pem(std::string_view pem) { return TrustAnchor(make_state(single_pem_certificate(pem), false)); }

TrustAnchor TrustAnchor::from_der(ByteView der) {
  return TrustAnchor(make_state(detail::parse_der(der, "trust anchor"), false));
}

const Bytes& TrustAnchor::der() const { return state_->der; }
std::string TrustAnchor::sha256_hex() const { return hex_encode(detail::sha256(state_->der)); }
std::string TrustAnchor::subject() const { return detail::name_text(X509_get_subject_name(state_->cert.get())); }
bool TrustAnchor::is_aws() const { return state_->aws; }

}  // namespace shield_nitro::attest
