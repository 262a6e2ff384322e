// Fuzzes the simulated NSM's request handler: any bytes get a well-formed reply of at most
// 0x3000 bytes (an answer or {"Error": code}), never a crash or an exception.
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/nsm/messages.h"
#include "shield_nitro/nsm_sim/simulator.h"

using namespace shield_nitro;
using namespace shield_nitro::nsm;

namespace {

struct Fixture {
  std::string dir;
  std::shared_ptr<SimulatedNsm> sim;
  Fixture() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fuzz-nsm-XXXXXX").string();
    dir = ::mkdtemp(tmpl.data());
    BootPcrs pcrs;
    pcrs.debug = true;
    sim = SimulatedNsm::create(dir, pcrs);
  }
  ~Fixture() { std::filesystem::remove_all(dir); }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView request(data, size);
  Bytes reply = fixture().sim->handle(request);
  if (reply.empty() || reply.size() > kMaxResponseSize) std::abort();
  cbor::decode(reply);  // throws (and so fails the run) if the reply is not one CBOR item
  try {
    Request r = decode_request(request);
    // Whatever the simulator accepted re-encodes to a request it accepts again.
    if (decode_request(encode_request(r)).index() != r.index()) std::abort();
  } catch (const Error&) {
  }
  return 0;
}
