#include "shield_nitro/sim/pcrs.h"

namespace shield_nitro::sim {

namespace {
Bytes digest_bytes(const eif::Digest48& d) { return Bytes(d.begin(), d.end()); }
}  // namespace

eif::Digest48 runtime_pcr(const std::string& identifier) {
  // One extend of the zero register with the identifier's bytes themselves (not their digest,
  // unlike the image PCRs): SHA384(0^48 || identifier).
  Bytes data(48, 0);
  data.insert(data.end(), identifier.begin(), identifier.end());
  return eif::sha384(data);
}

std::map<int, Bytes> enclave_pcrs(const PcrInputs& in) {
  std::map<int, Bytes> pcrs;
  for (int i = 0; i < 16; ++i) pcrs[i] = Bytes(48, 0);
  if (!in.debug_mode) {
    pcrs[0] = digest_bytes(in.image.pcr0);
    pcrs[1] = digest_bytes(in.image.pcr1);
    pcrs[2] = digest_bytes(in.image.pcr2);
    if (in.image.pcr8) pcrs[8] = digest_bytes(*in.image.pcr8);
  }
  if (!in.role_arn.empty()) pcrs[3] = digest_bytes(runtime_pcr(in.role_arn));
  if (!in.instance_id.empty()) pcrs[4] = digest_bytes(runtime_pcr(in.instance_id));
  return pcrs;
}

}  // namespace shield_nitro::sim
