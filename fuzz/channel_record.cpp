// Fuzzes the channel's record layer (docs/protocol.md, "The attested channel"): the input, after
// one control byte, is offered to a fresh enclave-side SealedBox as a request and to a client
// box as a reply, under fixed session keys. The session id is spliced into the header when the
// input is long enough, so inputs get past the session check to the flags, the order check and
// the AEAD. Requests never wait for a predecessor (order_wait_ms = 0) and keys update every 2
// records, so the ratchet path is reachable. Also checks that seal-then-open returns the input,
// with the padding bucket the control byte picks.
// Oracle: refusals are Error with kFormat, kVerify or kAuth; nothing opens that was not sealed
// with the keys (a forgery would need the key); round trips are exact.
#include <cstddef>
#include <cstdint>

#include "shield_nitro/channel/session.h"
#include "shield_nitro/core/error.h"

using namespace shield_nitro;
using namespace shield_nitro::channel;

namespace {

const SessionKeys& fuzz_keys() {
  static const SessionKeys k = [] {
    Bytes shared(32, 0x5a), transcript(32, 0xa5);
    return derive_session_keys(shared, transcript);
  }();
  return k;
}

void expect_refusal(const Error& e) {
  if (e.code() != Errc::kFormat && e.code() != Errc::kVerify && e.code() != Errc::kAuth) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const SessionKeys& keys = fuzz_keys();
  const uint8_t control = data[0];
  Bytes record(data + 1, data + size);
  if (record.size() >= kHeaderSize && (control & 1))
    std::copy(keys.session_id.begin(), keys.session_id.end(), record.begin() + 2);
  RecordLimits limits;
  limits.order_wait_ms = 0;
  limits.max_records = 2;
  SealedBox enclave(keys, Role::kEnclave, limits), client(keys, Role::kClient, limits);
  try {
    enclave.open(record);
    __builtin_trap();  // a record opened without the client's key
  } catch (const Error& e) {
    expect_refusal(e);
  }
  client.seal(as_bytes("q"));  // one request waits for its reply, seq 0
  try {
    client.open(record);
    __builtin_trap();
  } catch (const Error& e) {
    expect_refusal(e);
  }
  // Round trip with a padding bucket from the control byte (0, 1, 16, 256).
  SessionKeys padded{keys.client_to_enclave.clone(), keys.enclave_to_client.clone(), keys.session_id,
                     static_cast<uint32_t>((control >> 1) % 4 == 0 ? 0 : 1u << (4 * ((control >> 1) % 4 - 1)))};
  SealedBox c(padded, Role::kClient, limits), e(padded, Role::kEnclave, limits);
  for (int i = 0; i < 3; ++i) {  // the third crosses a key update
    uint64_t seq = 0;
    Bytes sealed = c.seal(record, &seq);
    if (to_bytes(e.open(sealed).view()) != record) __builtin_trap();
    Bytes reply;
    e.seal_reply_into(seq, record, reply);
    if (to_bytes(c.open_reply(reply, seq).view()) != record) __builtin_trap();
  }
  return 0;
}
