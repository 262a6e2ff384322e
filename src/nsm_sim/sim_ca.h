// The simulated NSM's certificate authority: a 4-level P-384 chain shaped like AWS's
// (attestation.md §2 profile table) and the short-lived leaves that sign documents.
//
// Every name says "simulated" and "NOT AWS", and every key is generated here, so nothing
// this CA signs can chain to the AWS Nitro Enclaves root.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>
#include <memory>
#include <string>

#include "shield_nitro/core/openssl_ptr.h"
#include "shield_nitro/core/bytes.h"

namespace shield_nitro::nsm::detail {

using PkeyPtr = ossl::Ptr<EVP_PKEY>;
using X509Ptr = ossl::Ptr<X509>;

// Chain positions, root first like the document's cabundle.
enum class CaLevel { kRoot = 0, kRegional = 1, kZonal = 2, kInstance = 3 };
inline constexpr size_t kCaLevels = 4;

struct CaCert {
  PkeyPtr key;
  X509Ptr cert;
};

PkeyPtr generate_p384();
Bytes cert_der(X509* cert);
std::string cert_pem(X509* cert);

// The chain kept in a state folder: DIR/<level>.key (PKCS#8 PEM, mode 0600) and
// DIR/<level>.pem. root.pem is what verifiers are told to trust.
class SimulatorCa {
 public:
  // Loads the chain from dir, or generates and writes a new one when dir has none.
  // instance_id ("i-…") names the instance certificate of a new chain.
  static SimulatorCa load_or_create(const std::string& dir, const std::string& instance_id, int64_t now_s);

  // Re-issues (same key, same name) every intermediate that expires within margin_s of now_s
  // and writes it back to the folder, like AWS rotating its regional/zonal/instance CAs.
  void renew(int64_t now_s, int64_t margin_s);

  // A fresh document-signing leaf: CA:FALSE, digitalSignature, valid [now_s, now_s + 3 h].
  CaCert issue_leaf(const std::string& module_id, int64_t now_s) const;

  // The cabundle: DER of root, regional, zonal, instance.
  std::array<Bytes, kCaLevels> bundle() const;
  X509* cert(CaLevel level) const { return levels_[static_cast<size_t>(level)].cert.get(); }

 private:
  void issue(CaLevel level, const std::string& common_name, int64_t now_s);
  void save(CaLevel level, bool with_key) const;
  std::string dir_;
  std::array<CaCert, kCaLevels> levels_;
};

}  // namespace shield_nitro::nsm::detail
