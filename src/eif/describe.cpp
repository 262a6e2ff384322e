#include "shield_nitro/eif/describe.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <map>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/signature.h"

namespace shield_nitro::eif {
namespace {

using ojson = nlohmann::ordered_json;

ojson to_ordered(const nlohmann::json& j) { return ojson::parse(j.dump()); }

std::string asn1_time(const ASN1_TIME* t) {
  BIO* bio = BIO_new(BIO_s_mem());
  ASN1_TIME_print(bio, t);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

std::string colon_hex_upper(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i) out += ':';
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

ojson certificate_json(ByteView pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (!cert) throw Error(Errc::kFormat, "signature section: the signing certificate is not a PEM certificate");
  std::map<std::string, std::string> issuer;  // BTreeMap order
  X509_NAME* name = X509_get_issuer_name(cert);
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    if (len < 0) continue;
    issuer[OBJ_nid2ln(OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)))] = std::string(reinterpret_cast<char*>(utf8), len);
    OPENSSL_free(utf8);
  }
  const ASN1_BIT_STRING* sig = nullptr;
  const X509_ALGOR* alg = nullptr;
  X509_get0_signature(&sig, &alg, cert);
  const ASN1_OBJECT* alg_obj = nullptr;
  X509_ALGOR_get0(&alg_obj, nullptr, nullptr, alg);
  char alg_name[128];
  OBJ_obj2txt(alg_name, sizeof alg_name, alg_obj, 0);
  ojson j;
  j["IssuerName"] = ojson::object();
  for (const auto& [k, v] : issuer) j["IssuerName"][k] = v;
  j["Algorithm"] = alg_name;
  j["NotBefore"] = asn1_time(X509_get0_notBefore(cert));
  j["NotAfter"] = asn1_time(X509_get0_notAfter(cert));
  j["Signature"] = colon_hex_upper(ASN1_STRING_get0_data(sig), static_cast<size_t>(ASN1_STRING_length(sig)));
  X509_free(cert);
  return j;
}

void add_metadata(ojson& out, ByteView raw) {
  nlohmann::json m = nlohmann::json::parse(raw.begin(), raw.end(), nullptr, false);
  if (m.is_discarded() || !m.is_object()) throw Error(Errc::kFormat, "metadata section is not a JSON object");
  if (m.contains("ImageName")) out["ImageName"] = to_ordered(m["ImageName"]);
  if (m.contains("ImageVersion")) out["ImageVersion"] = to_ordered(m["ImageVersion"]);
  ojson meta = ojson::object();
  if (m.contains("BuildMetadata") && m["BuildMetadata"].is_object()) {
    for (const char* k : {"BuildTime", "BuildTool", "BuildToolVersion", "OperatingSystem", "KernelVersion"})
      if (m["BuildMetadata"].contains(k)) meta[k] = to_ordered(m["BuildMetadata"][k]);
  }
  meta["DockerInfo"] = m.contains("DockerInfo") ? to_ordered(m["DockerInfo"]) : ojson();
  const nlohmann::json custom = m.value("CustomMetadata", nlohmann::json());
  if (custom.is_object()) {
    for (const auto& [k, v] : custom.items()) meta[k] = to_ordered(v);
  } else if (!custom.is_null()) {
    meta["CustomMetadata"] = to_ordered(custom);
  }
  out["Metadata"] = meta;
}

}  // namespace

ojson measurements_json(const Measurements& m, HashLabel label) {
  ojson j;
  j["HashAlgorithm"] = hash_label(label);
  j["PCR0"] = hex_encode(m.pcr0);
  j["PCR1"] = hex_encode(m.pcr1);
  j["PCR2"] = hex_encode(m.pcr2);
  if (m.pcr8) j["PCR8"] = hex_encode(*m.pcr8);
  return j;
}

ojson build_output_json(const Measurements& m, HashLabel label) {
  ojson j;
  j["Measurements"] = measurements_json(m, label);
  return j;
}

ojson describe_json(const EifReader& reader, HashLabel label) {
  ScanResult scan = reader.scan();
  ojson j;
  j["EifVersion"] = reader.header().version;
  j["Measurements"] = measurements_json(scan.measurements, label);
  j["IsSigned"] = reader.is_signed();
  std::optional<SignatureEntry> first;
  if (auto sig = reader.signature()) {
    first = decode_signature_section(*sig).front();
    j["SigningCertificate"] = certificate_json(first->certificate_pem);
  }
  j["CheckCRC"] = scan.crc_ok;
  if (first) j["SignatureCheck"] = verify_pcr0_signature(*first, scan.measurements.pcr0);
  if (auto meta = reader.metadata()) add_metadata(j, *meta);
  return j;
}

}  // namespace shield_nitro::eif
