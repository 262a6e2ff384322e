#include "chain.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <string>

#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/error.h"
#include "trust_anchor_state.h"

namespace shield_nitro::attest::detail {
namespace {

[[noreturn]] void fail(Errc code, const std::string& why) { throw Error(code, "certificate chain: " + why); }


std::string common_name(X509* cert) {
  std::string name = name_text(X509_get_subject_name(cert));
  auto pos = name.rfind("CN=");
  return pos == std::string::npos ? name : name.substr(pos + 3);
}

bool has_critical_ca_constraint(X509* cert) {
  int idx = X509_get_ext_by_NID(cert, NID_basic_constraints, -1);
  if (idx < 0) return false;
  X509_EXTENSION* ext = X509_get_ext(cert, idx);
  return X509_EXTENSION_get_critical(ext) == 1 && (X509_get_extension_flags(cert) & EXFLAG_CA);
}

bool has_key_usage(X509* cert, uint32_t bit) {
  return (X509_get_extension_flags(cert) & EXFLAG_KUSAGE) && (X509_get_key_usage(cert) & bit);
}

void check_signature_algorithm(X509* cert, const std::string& what) {
  if (X509_get_signature_nid(cert) != NID_ecdsa_with_SHA384)
    fail(Errc::kVerify, what + " (" + common_name(cert) + ") is not signed with ecdsa-with-SHA384");
}

void check_ca_profile(X509* cert, const std::string& what) {
  if (!has_critical_ca_constraint(cert)) fail(Errc::kVerify, what + " (" + common_name(cert) + ") lacks critical basicConstraints CA:TRUE");
  if (!has_key_usage(cert, KU_KEY_CERT_SIGN)) fail(Errc::kVerify, what + " (" + common_name(cert) + ") lacks keyUsage keyCertSign");
  check_signature_algorithm(cert, what);
}

void check_leaf_profile(X509* leaf) {
  if (X509_get_extension_flags(leaf) & EXFLAG_CA) fail(Errc::kVerify, "leaf certificate (" + common_name(leaf) + ") is a CA");
  if (!has_key_usage(leaf, KU_DIGITAL_SIGNATURE)) fail(Errc::kVerify, "leaf certificate lacks keyUsage digitalSignature");
  EVP_PKEY* key = X509_get0_pubkey(leaf);
  if (!cose::is_p384(key)) fail(Errc::kVerify, "leaf key is " + key_type(key) + ", not EC P-384");
  check_signature_algorithm(leaf, "leaf certificate");
}

[[noreturn]] void fail_openssl_verify(X509_STORE_CTX* ctx) {
  int err = X509_STORE_CTX_get_error(ctx);
  X509* cert = X509_STORE_CTX_get_current_cert(ctx);
  std::string who = cert ? " (" + common_name(cert) + ")" : "";
  ERR_clear_error();
  fail(Errc::kVerify, std::string(X509_verify_cert_error_string(err)) + " at depth " +
                          std::to_string(X509_STORE_CTX_get_error_depth(ctx)) + who);
}

// Validity at at_s with both bounds inclusive (RFC 5280 §4.1.2.5: the notAfter second is
// still valid). OpenSSL's own check counts notAfter == now as expired, so it is switched off
// and this one runs instead, over the path the bundle states, top down as OpenSSL would.
void check_validity(X509* cert, int64_t at_s) {
  const ASN1_TIME* not_before = X509_get0_notBefore(cert);
  const ASN1_TIME* not_after = X509_get0_notAfter(cert);
  time_t at = static_cast<time_t>(at_s);
  if (ASN1_TIME_cmp_time_t(not_before, at) > 0)
    throw Error(Errc::kExpired, "certificate not yet valid (" + common_name(cert) + "): notBefore " +
                                    format_utc_seconds(unix_seconds(not_before)) + " is after the check time " +
                                    format_utc_seconds(at_s));
  if (ASN1_TIME_cmp_time_t(not_after, at) < 0)
    throw Error(Errc::kExpired, "certificate expired (" + common_name(cert) + "): notAfter " +
                                    format_utc_seconds(unix_seconds(not_after)) + " is before the check time " +
                                    format_utc_seconds(at_s));
}

// OpenSSL may build any path it finds; we require the one the bundle states, in its order.
// bundle[0] is null: it is the anchor (checked byte for byte before).
void check_path_is_bundle(X509_STORE_CTX* ctx, X509* leaf, X509* anchor, const std::vector<X509Ptr>& bundle) {
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx);
  size_t n = bundle.size();
  if (!chain || static_cast<size_t>(sk_X509_num(chain)) != n + 1)
    fail(Errc::kVerify, "path does not use every cabundle certificate in order");
  if (X509_cmp(sk_X509_value(chain, 0), leaf) != 0) fail(Errc::kVerify, "path does not start at the leaf");
  for (size_t k = 1; k <= n; ++k)
    if (X509_cmp(sk_X509_value(chain, static_cast<int>(k)), k == n ? anchor : bundle[n - k].get()) != 0)
      fail(Errc::kVerify, "path does not follow the cabundle order");
}

void run_openssl_verify(const TrustAnchor& anchor, X509* leaf, const std::vector<X509Ptr>& bundle, int64_t at_s) {
  ossl::Ptr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  ossl::Ptr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!untrusted || !ctx) throw_openssl("chain: allocation");
  for (size_t i = 1; i < bundle.size(); ++i)
    if (!sk_X509_push(untrusted.get(), bundle[i].get())) throw_openssl("chain: sk_X509_push");
  if (X509_STORE_CTX_init(ctx.get(), TrustAnchorAccess::state(anchor).store, leaf, untrusted.get()) != 1) throw_openssl("chain: init");
  // No X509_STRICT (genuine AWS leaves lack an AKI), no PARTIAL_CHAIN, no CRLs; validity
  // times are checked by check_validity (inclusive notAfter).
  X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx.get()), X509_V_FLAG_NO_CHECK_TIME);
  check_validity(TrustAnchorAccess::state(anchor).cert.get(), at_s);
  for (size_t i = 1; i < bundle.size(); ++i) check_validity(bundle[i].get(), at_s);
  check_validity(leaf, at_s);
  if (X509_verify_cert(ctx.get()) != 1) fail_openssl_verify(ctx.get());
  check_path_is_bundle(ctx.get(), leaf, TrustAnchorAccess::state(anchor).cert.get(), bundle);
}

}  // namespace

Bytes chain_key(const Bytes& leaf, const std::vector<Bytes>& cabundle) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  auto add = [&](const Bytes& b) {
    Bytes len;
    put_u32be(len, static_cast<uint32_t>(b.size()));
    EVP_DigestUpdate(md, len.data(), len.size());
    EVP_DigestUpdate(md, b.data(), b.size());
  };
  Bytes out(32);
  unsigned int n = 0;
  if (!md || EVP_DigestInit_ex(md, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(md);
    throw_openssl("chain: SHA-256 init");
  }
  add(leaf);
  for (const Bytes& c : cabundle) add(c);
  int ok = EVP_DigestFinal_ex(md, out.data(), &n);
  EVP_MD_CTX_free(md);
  if (ok != 1) throw_openssl("chain: SHA-256");
  return out;
}

std::shared_ptr<const ChainResult> verify_chain(const TrustAnchor& anchor, const Bytes& leaf_der,
                                                const std::vector<Bytes>& cabundle, int64_t at_s) {
  // The root copy is compared, never parsed or trusted: the anchor's own object stands in for it.
  if (cabundle.empty() || cabundle[0] != anchor.der())
    fail(Errc::kVerify, "cabundle[0] is not the trusted root " + anchor.subject() + " (SHA-256 " + anchor.sha256_hex() + ")");
  X509Ptr leaf = parse_der(leaf_der, "certificate");
  std::vector<X509Ptr> bundle(1);
  for (size_t i = 1; i < cabundle.size(); ++i) bundle.push_back(parse_der(cabundle[i], "cabundle[" + std::to_string(i) + "]"));
  check_leaf_profile(leaf.get());
  check_ca_profile(TrustAnchorAccess::state(anchor).cert.get(), "the trust anchor");
  for (size_t i = 1; i < bundle.size(); ++i) check_ca_profile(bundle[i].get(), "cabundle[" + std::to_string(i) + "]");
  run_openssl_verify(anchor, leaf.get(), bundle, at_s);

  auto r = std::make_shared<ChainResult>();
  r->leaf_key.reset(X509_get_pubkey(leaf.get()));
  r->leaf_not_before_s = unix_seconds(X509_get0_notBefore(leaf.get()));
  r->leaf_not_after_s = unix_seconds(X509_get0_notAfter(leaf.get()));
  r->valid_from_s = r->leaf_not_before_s;
  r->valid_until_s = r->leaf_not_after_s;
  r->leaf = summarize(leaf.get(), leaf_der);
  for (size_t i = 0; i < bundle.size(); ++i) {
    r->cabundle.push_back(i == 0 ? TrustAnchorAccess::state(anchor).summary : summarize(bundle[i].get(), cabundle[i]));
    r->valid_from_s = std::max(r->valid_from_s, r->cabundle.back().not_before_s);
    r->valid_until_s = std::min(r->valid_until_s, r->cabundle.back().not_after_s);
  }
  return r;
}

}  // namespace shield_nitro::attest::detail
