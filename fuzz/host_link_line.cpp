// Host-link lines (docs/host-agent.md): arbitrary bytes parsed as a request, as each answer and
// as a log record. Nothing may crash; whatever parses must re-format to a line that parses back
// to the same thing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/host_link/host_link.h"

using namespace shield_nitro;
using namespace shield_nitro::host_link;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  try {
    Request r = parse_request(line);
    Request back = parse_request(format_request(r));
    if (back.op != r.op || back.name != r.name || back.host != r.host || back.port != r.port) __builtin_trap();
  } catch (const Error&) {
  }
  try {
    ArtifactAnswer a = parse_artifact_answer(line);
    ArtifactAnswer back = parse_artifact_answer(answer_artifact(a));
    if (back.size != a.size || back.sha256 != a.sha256 || back.header_sha256 != a.header_sha256) __builtin_trap();
  } catch (const Error&) {
  }
  try {
    parse_ok_answer(line, Op::kConnect);
  } catch (const Error&) {
  }
  try {
    static const FixedClock clock(0);
    parse_credentials_answer(line, clock);
  } catch (const Error&) {
  }
  try {
    LogRecord r = parse_log_record(line);
    LogRecord back = parse_log_record(format_log_record(r));
    if (back.time != r.time || back.source != r.source || back.stream != r.stream || back.event != r.event ||
        back.fields != r.fields)
      __builtin_trap();
  } catch (const Error&) {
  }
  return 0;
}
