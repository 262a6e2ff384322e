#include "sim_ca.h"

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/random.h"

namespace shield_nitro::nsm::detail {

namespace {

constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kLeafLifetime = 3 * kHour;  // exactly like AWS leaves
// Backdating absorbs small clock differences between the simulator and a verifier.
constexpr int64_t kCaBackdate = 60;

constexpr const char* kOrganisation = "shield-nitro (simulated, NOT AWS)";
constexpr const char* kRootName = "shield-nitro simulated nitro root (NOT AWS)";
constexpr const char* kNameSuffix = ".sim-1.not-aws";

struct Profile {
  const char* file;
  const char* basic_constraints;
  const char* key_usage;
  int64_t lifetime;
};

// attestation.md §2: CA pathLens 2/1/0 below an unconstrained root; the instance CA only
// signs certificates.
constexpr Profile kProfiles[kCaLevels] = {
    {"root", "critical,CA:TRUE", "critical,keyCertSign,cRLSign,digitalSignature", 30 * 365 * kDay},
    {"regional", "critical,CA:TRUE,pathlen:2", "critical,keyCertSign,cRLSign,digitalSignature", 20 * kDay},
    {"zonal", "critical,CA:TRUE,pathlen:1", "critical,keyCertSign,cRLSign,digitalSignature", 6 * kDay},
    {"instance", "critical,CA:TRUE,pathlen:0", "critical,keyCertSign", 1 * kDay},
};
constexpr Profile kLeafProfile = {"leaf", "critical,CA:FALSE", "digitalSignature,nonRepudiation", kLeafLifetime};

void check(int ok, const char* what) {
  if (ok != 1) throw_openssl(std::string("simulated NSM CA: ") + what);
}

using NamePtr = ossl::Ptr<X509_NAME>;

NamePtr make_name(const std::string& common_name) {
  NamePtr name(X509_NAME_new());
  if (!name) throw_openssl("X509_NAME_new");
  auto add = [&](const char* field, const std::string& v) {
    check(X509_NAME_add_entry_by_txt(name.get(), field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(v.c_str()),
                                     -1, -1, 0),
          "name entry");
  };
  add("O", kOrganisation);
  add("OU", "simulated NSM");
  add("CN", common_name);
  return name;
}

void add_extension(X509* cert, X509V3_CTX& ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) throw_openssl("extension");
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  check(ok, "add extension");
}

void set_serial(X509* cert) {
  Bytes raw = os_random().bytes(16);
  raw[0] &= 0x7f;  // positive
  raw[0] |= 0x40;  // and exactly 16 bytes long
  BIGNUM* bn = BN_bin2bn(raw.data(), static_cast<int>(raw.size()), nullptr);
  if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert))) {
    BN_free(bn);
    throw_openssl("serial");
  }
  BN_free(bn);
}

// issuer == nullptr: self-signed.
X509Ptr make_cert(EVP_PKEY* key, const X509_NAME* subject, X509* issuer, EVP_PKEY* issuer_key, const Profile& p,
                  int64_t not_before, bool is_ca) {
  X509Ptr cert(X509_new());
  if (!cert) throw_openssl("X509_new");
  check(X509_set_version(cert.get(), X509_VERSION_3), "version");
  set_serial(cert.get());
  check(X509_set_subject_name(cert.get(), subject), "subject");
  check(X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : subject), "issuer");
  if (!ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(not_before)) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(not_before + p.lifetime)))
    throw_openssl("validity");
  check(X509_set_pubkey(cert.get(), key), "public key");
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  add_extension(cert.get(), ctx, NID_basic_constraints, p.basic_constraints);
  add_extension(cert.get(), ctx, NID_key_usage, p.key_usage);
  if (is_ca) add_extension(cert.get(), ctx, NID_subject_key_identifier, "hash");
  // Like AWS leaves: no Authority Key Identifier on the leaf (and none on the root).
  if (is_ca && issuer) add_extension(cert.get(), ctx, NID_authority_key_identifier, "keyid:always");
  if (X509_sign(cert.get(), issuer_key, EVP_sha384()) <= 0) throw_openssl("sign certificate");
  return cert;
}

std::string key_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio || PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    BIO_free(bio);
    throw_openssl("write key");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  OPENSSL_cleanse(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

template <class T, class F>
T read_pem(const std::string& path, F reader) {
  std::string text = read_text_file(path);
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  auto* obj = bio ? reader(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  OPENSSL_cleanse(text.data(), text.size());
  if (!obj) throw Error(Errc::kFormat, "simulated NSM state: cannot parse " + path);
  return T(obj);
}

std::string path_of(const std::string& dir, size_t level, const char* ext) {
  return dir + "/" + kProfiles[level].file + ext;
}

}  // namespace

PkeyPtr generate_p384() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
  if (!key) throw_openssl("generate P-384 key");
  return key;
}

Bytes cert_der(X509* cert) {
  int n = i2d_X509(cert, nullptr);
  if (n <= 0) throw_openssl("encode certificate");
  Bytes out(static_cast<size_t>(n));
  uint8_t* p = out.data();
  i2d_X509(cert, &p);
  return out;
}

std::string cert_pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio || PEM_write_bio_X509(bio, cert) != 1) {
    BIO_free(bio);
    throw_openssl("write certificate");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

SimulatorCa SimulatorCa::load_or_create(const std::string& dir, const std::string& instance_id, int64_t now_s) {
  SimulatorCa ca;
  ca.dir_ = dir;
  if (file_exists(path_of(dir, 0, ".key"))) {
    for (size_t i = 0; i < kCaLevels; ++i) {
      ca.levels_[i].key = read_pem<PkeyPtr>(path_of(dir, i, ".key"), PEM_read_bio_PrivateKey);
      ca.levels_[i].cert = read_pem<X509Ptr>(path_of(dir, i, ".pem"), PEM_read_bio_X509);
      if (X509_check_private_key(ca.levels_[i].cert.get(), ca.levels_[i].key.get()) != 1)
        throw Error(Errc::kFormat, "simulated NSM state: " + path_of(dir, i, ".key") + " does not match its certificate");
    }
    return ca;
  }
  std::string tag = hex_encode(os_random().bytes(8));
  const std::string names[kCaLevels] = {kRootName, tag + kNameSuffix, tag + ".zonal" + kNameSuffix,
                                        instance_id + kNameSuffix};
  for (size_t i = 0; i < kCaLevels; ++i) {
    ca.levels_[i].key = generate_p384();
    ca.issue(static_cast<CaLevel>(i), names[i], now_s);
    ca.save(static_cast<CaLevel>(i), true);
  }
  return ca;
}

void SimulatorCa::issue(CaLevel level, const std::string& common_name, int64_t now_s) {
  auto i = static_cast<size_t>(level);
  NamePtr fresh;
  const X509_NAME* subject;
  if (common_name.empty()) {
    subject = X509_get_subject_name(levels_[i].cert.get());
  } else {
    fresh = make_name(common_name);
    subject = fresh.get();
  }
  X509* issuer = i == 0 ? nullptr : levels_[i - 1].cert.get();
  EVP_PKEY* issuer_key = i == 0 ? levels_[i].key.get() : levels_[i - 1].key.get();
  levels_[i].cert = make_cert(levels_[i].key.get(), subject, issuer, issuer_key, kProfiles[i], now_s - kCaBackdate, true);
}

void SimulatorCa::save(CaLevel level, bool with_key) const {
  auto i = static_cast<size_t>(level);
  if (with_key) {
    std::string pem = key_pem(levels_[i].key.get());
    write_file_atomic(path_of(dir_, i, ".key"), as_bytes(pem), 0600);
    OPENSSL_cleanse(pem.data(), pem.size());
  }
  write_file_atomic(path_of(dir_, i, ".pem"), as_bytes(cert_pem(levels_[i].cert.get())), 0644);
}

void SimulatorCa::renew(int64_t now_s, int64_t margin_s) {
  time_t horizon = static_cast<time_t>(now_s + margin_s);
  for (size_t i = 1; i < kCaLevels; ++i) {
    if (X509_cmp_time(X509_get0_notAfter(levels_[i].cert.get()), &horizon) > 0) continue;
    issue(static_cast<CaLevel>(i), "", now_s);  // the same key and name, a new validity window
    save(static_cast<CaLevel>(i), false);
  }
}

CaCert SimulatorCa::issue_leaf(const std::string& module_id, int64_t now_s) const {
  CaCert leaf;
  leaf.key = generate_p384();
  NamePtr name = make_name(module_id + kNameSuffix);
  const CaCert& instance = levels_[static_cast<size_t>(CaLevel::kInstance)];
  leaf.cert = make_cert(leaf.key.get(), name.get(), instance.cert.get(), instance.key.get(), kLeafProfile, now_s, false);
  return leaf;
}

std::array<Bytes, kCaLevels> SimulatorCa::bundle() const {
  std::array<Bytes, kCaLevels> out;
  for (size_t i = 0; i < kCaLevels; ++i) out[i] = cert_der(levels_[i].cert.get());
  return out;
}

}  // namespace shield_nitro::nsm::detail
