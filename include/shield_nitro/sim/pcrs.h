// The PCRs a simulated enclave reports, derived the way the Nitro hypervisor does
// (spec/nsm.md §4, spec/eif.md §2):
//   0, 1, 2 (and 8 when signed): measured from the EIF;
//   3: SHA384(0^48 || parent role ARN), zeros when the parent has no role;
//   4: SHA384(0^48 || parent instance id);
//   everything else in 0..15: zeros.
// A debug-mode enclave reads 0, 1, 2 and 8 as zeros while 3 and 4 keep their values, which is
// exactly why a policy that pins PCR0 refuses it.
#pragma once

#include <map>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/eif/pcr.h"

namespace shield_nitro::sim {

struct PcrInputs {
  eif::Measurements image;  // from eif::measure()
  std::string role_arn;     // empty: PCR3 stays zero
  std::string instance_id;  // empty: PCR4 stays zero
  bool debug_mode = false;
};

// PCR3 / PCR4: SHA384(0^48 || identifier bytes), matching the AWS user guide's examples.
eif::Digest48 runtime_pcr(const std::string& identifier);

// The locked registers 0..15, each 48 bytes, as the simulated NSM should serve them.
std::map<int, Bytes> enclave_pcrs(const PcrInputs& in);

}  // namespace shield_nitro::sim
