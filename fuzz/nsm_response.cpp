// Fuzzes the NSM client's reply parsers (nsm.md §3.2): arbitrary bytes must either parse or
// throw shield_nitro::Error, never crash, and a parsed document must survive a round trip.
#include <cstdint>
#include <cstdlib>

#include "shield_nitro/core/error.h"
#include "shield_nitro/nsm/messages.h"

using namespace shield_nitro;
using namespace shield_nitro::nsm;

namespace {

template <class F>
void guarded(F f) {
  try {
    f();
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView reply(data, size);
  guarded([&] { parse_describe_nsm(reply); });
  guarded([&] { parse_describe_pcr(reply); });
  guarded([&] { parse_extend_pcr(reply); });
  guarded([&] { parse_lock_pcr(reply); });
  guarded([&] { parse_lock_pcrs(reply); });
  guarded([&] { parse_get_random(reply); });
  guarded([&] {
    Bytes doc = parse_attestation(reply).document;
    // The document is handed on exactly: re-wrapping it yields the same document.
    if (parse_attestation(encode_response(AttestationResponse{doc})).document != doc) std::abort();
  });
  return 0;
}
