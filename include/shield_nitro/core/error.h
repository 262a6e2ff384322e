// The one error type of shield-nitro.
//
// Every failure in the library is a shield_nitro::Error: a category (Errc) that decides
// the CLI exit code, and a one-line message that says what failed and why.
//   throw Error(Errc::kAuth, "authentication failed");
#pragma once

#include <stdexcept>
#include <string>

namespace shield_nitro {

enum class Errc {
  kUsage,        // the caller asked for something malformed (exit 2)
  kIo,           // file, socket or device failure (exit 3)
  kEnvironment,  // missing device, namespace, credentials source... (exit 3)
  kTimeout,      // an operation ran out of time (exit 3)
  kAuth,         // authentication failed: wrong key, tampered data (exit 1)
  kVerify,       // a signature, chain or measurement did not verify (exit 1)
  kPolicy,       // verified, but refused by policy (exit 1)
  kExpired,      // stale or from the future (exit 1)
  kFormat,       // malformed untrusted input (exit 1)
  kUnsupported,  // well-formed but a version/algorithm we refuse (exit 1)
  kNotFound,     // no such key, handle, file entry (exit 1)
  kRemote,       // a peer (KMS, enclave) answered with an error (exit 1)
  kInternal,     // a bug or an OpenSSL failure we did not expect (exit 3)
};

// Short stable name, e.g. "auth", used in JSON output and wire errors.
const char* errc_name(Errc c);
// Parses errc_name() output; unknown names map to kInternal.
Errc errc_from_name(const std::string& name);
// CLI exit code: 1 for a "no", 2 for usage, 3 for environment/I/O.
int exit_code(Errc c);

// What every function of the library throws (what() is the one-line message).
class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
  // The category: it decides the exit code and the wire error name.
  Errc code() const { return code_; }

 private:
  Errc code_;
};

// Throws kInternal with the message and OpenSSL's error queue (which it clears).
[[noreturn]] void throw_openssl(const std::string& what);

}  // namespace shield_nitro
