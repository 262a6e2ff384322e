#include "shield_nitro/nsm/client.h"

#include <algorithm>

namespace shield_nitro::nsm {

NsmClient::NsmClient(std::unique_ptr<NsmTransport> transport) : transport_(std::move(transport)) {
  if (!transport_) throw Error(Errc::kInternal, "NsmClient needs a transport");
}

Bytes NsmClient::call(const Request& request) { return transport_->roundtrip(encode_request(request)); }

DescribeNsmResponse NsmClient::describe_nsm() { return parse_describe_nsm(call(DescribeNsmRequest{})); }

DescribePcrResponse NsmClient::describe_pcr(uint16_t index) {
  return parse_describe_pcr(call(DescribePcrRequest{index}));
}

Bytes NsmClient::extend_pcr(uint16_t index, ByteView data) {
  return parse_extend_pcr(call(ExtendPcrRequest{index, to_bytes(data)})).data;
}

void NsmClient::lock_pcr(uint16_t index) { parse_lock_pcr(call(LockPcrRequest{index})); }

void NsmClient::lock_pcrs(uint16_t range) { parse_lock_pcrs(call(LockPcrsRequest{range})); }

Bytes NsmClient::attestation(const AttestationRequest& request) {
  return std::move(parse_attestation(call(request)).document);
}

Bytes NsmClient::get_random() {
  Bytes r = std::move(parse_get_random(call(GetRandomRequest{})).random);
  if (r.empty() || r.size() > kMaxRandomPerCall)
    throw NsmError(ErrorCode::kInvalidResponse,
                   "nsm: GetRandom returned " + std::to_string(r.size()) + " bytes (expected 1..256)");
  return r;
}

Bytes NsmClient::get_random(size_t n) {
  Bytes out;
  out.reserve(n);
  while (out.size() < n) {
    Bytes chunk = get_random();
    size_t take = std::min(chunk.size(), n - out.size());
    out.insert(out.end(), chunk.begin(), chunk.begin() + static_cast<ptrdiff_t>(take));
  }
  return out;
}

}  // namespace shield_nitro::nsm
