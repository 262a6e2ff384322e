// The host link: how the supervisor inside the enclave asks the host agent on the parent
// (`shield-nitro host run`) for credentials, sealed artifacts, a log stream and egress
// connections. docs/host-agent.md is the protocol's reference; in short:
//
//   the enclave dials vsock://<host.cid>:<host.port> (runtime config `host:`), writes ONE JSON
//   object on one line ('\n'-terminated, at most 4 KiB) naming an "op", and the host answers ONE
//   JSON line, {"ok":true, ...} or {"ok":false,"error":"<why>"}; then per op:
//     {"op":"credentials"}                 → AccessKeyId, SecretAccessKey, Token, Expiration; close
//     {"op":"artifact","name":"model"}     → size, and sha256 or header_sha256 (the pin the
//                                             runtime config has); then exactly size raw bytes; close
//     {"op":"logs"}                        → the enclave writes log records (LogRecord) until it closes
//     {"op":"connect","target":"HOST:PORT"}→ raw bytes both ways (half-close propagated)
//
//   host_link::HostLink link(runtime_config.host);
//   kms::Credentials c = link.fetch_credentials();
//   auto a = link.open_artifact("model");   // then read exactly a.size bytes from a.fd
//
// Both ends use the framing below (read_line / write_line) and the strict parsers: a line that is
// not exactly what the contract says (unknown or duplicate keys, wrong types, oversize, control
// characters) is refused with Error(kFormat), never half-understood.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/runtime/config.h"

namespace shield_nitro::host_link {

// The longest request or answer line, '\n' included.
inline constexpr size_t kMaxLineBytes = 4096;
// The longest "error" text an answer carries (longer reasons are cut, on the sending side).
inline constexpr size_t kMaxErrorBytes = 512;

// ---- framing (both ends) ----

// Reads one '\n'-terminated line from the stream socket fd and returns it without the '\n'.
// Never reads past the '\n' (raw bytes may follow it). Errors: nothing within `timeout`
// → Error(kTimeout); the peer closed before the '\n' (or a read failed) → Error(kIo); no '\n'
// within max_bytes → Error(kFormat). `what` names the peer in messages ("host agent").
std::string read_line(int fd, std::chrono::milliseconds timeout, std::string_view what,
                      size_t max_bytes = kMaxLineBytes);
// Writes line plus '\n' in full (MSG_NOSIGNAL). Throws Error(kUsage) if line holds a '\n' or is
// longer than kMaxLineBytes - 1, Error(kTimeout) if the peer does not take it within timeout,
// Error(kIo) if the peer is gone.
void write_line(int fd, std::string_view line, std::chrono::milliseconds timeout);
// Writes all n bytes (blocking; MSG_NOSIGNAL). Error(kIo) if the peer is gone.
void write_all(int fd, const uint8_t* data, size_t n);

// ---- requests (the enclave writes them, the host parses them) ----

enum class Op { kCredentials, kArtifact, kLogs, kConnect };

// One parsed request line.
struct Request {
  Op op = Op::kCredentials;
  std::string name{};  // kArtifact: the artifact's name (as in the runtime config)
  std::string host{};  // kConnect: the target's host (IPv6 literals without brackets)
  uint16_t port = 0;   // kConnect: the target's port (1..65535)
};

// The request line for r (without '\n').
std::string format_request(const Request& r);
// Parses a request line strictly: an object with "op" and exactly that op's members.
// Error(kFormat) naming what is wrong ("unknown op 'x'", "missing 'name'", ...).
Request parse_request(std::string_view line);
// "HOST:PORT" or "[V6]:PORT" → host and port; Error(kFormat) on anything else (empty host,
// spaces or control characters, port 0 or past 65535, leading zeros, signs).
std::pair<std::string, uint16_t> parse_target(std::string_view target);
// The op's wire name ("credentials", ...).
const char* op_name(Op op);

// ---- answers (the host writes them, the enclave parses them) ----

// {"ok":true}
std::string answer_ok();
// {"ok":false,"error":why}, why cut to kMaxErrorBytes and its control characters replaced.
std::string answer_error(std::string_view why);
struct ArtifactAnswer;
// {"ok":true,"size":size,"sha256":...} or {"ok":true,"size":size,"header_sha256":...}: the one
// digest that a is set (kUsage unless exactly one is).
std::string answer_artifact(const ArtifactAnswer& a);
// Writes the credentials answer line to fd (the secrets pass through memory that is wiped before
// returning). creds.expiration_s must be set (the enclave needs to know when to ask again).
void write_credentials_answer(int fd, const kms::Credentials& creds, std::chrono::milliseconds timeout);

// The size and digest an artifact answer announces: the digest of the kind the runtime
// config pins (runtime::ArtifactConfig), so the host never hashes more than the enclave needs.
// Exactly one of the two is set (64 lowercase hex digits), the other empty.
struct ArtifactAnswer {
  uint64_t size = 0;
  std::string sha256;         // the whole sealed file's
  std::string header_sha256;  // the file's prefix's: sealed + stream header (sealed::Header::prefix_digest_hex)
};

// Strict answer parsers for each op. An {"ok":false} answer throws Error(kPolicy,
// "host agent refused <op>: <its error>"); a malformed one Error(kFormat). The credentials
// parser wipes the line's copies of the secrets; expired credentials (by clock) → Error(kExpired).
void parse_ok_answer(std::string_view line, Op op);
ArtifactAnswer parse_artifact_answer(std::string_view line);
kms::Credentials parse_credentials_answer(std::string_view line, const Clock& clock = system_clock());

// ---- log records (the enclave writes them on the "logs" link, the host reads them) ----

// A field of a supervisor event: a number ("status", "restarts", "count") or text.
using LogField = std::variant<int64_t, std::string>;

// One line of the log stream.
struct LogRecord {
  std::string time{};    // RFC 3339 UTC with milliseconds, "2026-12-06T08:00:00.123Z"
  std::string source{};  // "app" or "supervisor"
  std::string stream{};  // "stdout", "stderr" or "event"
  std::string line{};    // the text (one line, without its '\n')
  std::string event{};   // for stream "event": app_started, app_exited, artifact_ready, logs_dropped, ...
  std::map<std::string, LogField> fields{};  // the event's other members
};

// The record as one JSON line (without '\n'); `line` is cut so the whole fits kMaxLineBytes.
std::string format_log_record(const LogRecord& r);
// Parses one log line: the members above with the right types; unknown members only as event
// fields (numbers or strings). Error(kFormat) otherwise.
LogRecord parse_log_record(std::string_view line);
// Milliseconds since the epoch as "2026-12-06T08:00:00.123Z".
std::string format_log_time(int64_t unix_ms);

// ---- the enclave's client ----

// Timeouts of the client.
struct HostLinkOptions {
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  // How long the host may take to answer (it may be fetching credentials from IMDS).
  std::chrono::milliseconds answer_timeout{std::chrono::seconds(30)};
};

// The enclave's side of the host link. Holds only the address: each call opens its own
// connection, so it is safe to use from many threads. Errors: the host unreachable, silent or
// gone mid-answer → Error(kIo); the host refused → Error(kPolicy) with its reason; a malformed
// answer → Error(kFormat).
class HostLink {
 public:
  explicit HostLink(runtime::HostLinkConfig config, HostLinkOptions options = {},
                    const Clock& clock = system_clock());

  // The parent's role credentials (source "host agent"); ask again before their expiration.
  kms::Credentials fetch_credentials();

  // An artifact being streamed: read exactly `size` bytes from fd (then it ends). The caller
  // checks size and the announced digest against its measured config before trusting a byte.
  struct Artifact {
    UniqueFd fd;
    uint64_t size = 0;
    std::string sha256;         // exactly one of these two is set (ArtifactAnswer)
    std::string header_sha256;
  };
  // Asks for the named `source: host` artifact; the answer's size and digest, and the stream.
  Artifact open_artifact(const std::string& name);

  // A connection accepted for the log stream: write format_log_record() lines + '\n' to it.
  UniqueFd open_logs();

  // An egress connection to host:port relayed by the host (raw bytes both ways).
  UniqueFd connect(const std::string& host, uint16_t port);

  // Where this link dials ("vsock://3:7000").
  std::string describe() const;

 private:
  UniqueFd request(const Request& r, std::string& answer);
  runtime::HostLinkConfig config_;
  HostLinkOptions options_;
  const Clock& clock_;
};

}  // namespace shield_nitro::host_link
