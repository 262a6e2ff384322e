// The vsock-proxy allowlist (YAML, as shipped in /etc/nitro_enclaves/vsock-proxy.yaml):
//
//   allowlist:
//   - {address: kms.us-east-1.amazonaws.com, port: 443}
//   - address: kms-fips.us-east-1.amazonaws.com     # the block form is accepted too
//     port: 443
//
// We parse exactly this subset of YAML ourselves (comments, blank lines, optional quotes);
// anything else is rejected with its line number rather than guessed at, because a lenient
// parse of a security allowlist could silently allow or drop entries.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shield_nitro::net {

struct AllowlistEntry {
  std::string address;
  uint16_t port = 0;
};

// A parsed allowlist; immutable, safe to share between threads.
class Allowlist {
 public:
  // Throws Error(kFormat, "allowlist line N: ...") on anything outside the subset.
  static Allowlist parse(std::string_view yaml);
  // Throws Error(kIo) if the file cannot be read, kFormat as parse().
  static Allowlist load(const std::string& path);

  // The parsed entries, in file order.
  const std::vector<AllowlistEntry>& entries() const { return entries_; }

  // vsock-proxy's rule: the port must match, then the host name must match exactly (case
  // does not matter in DNS names), or, when resolve is true, one of the allow-listed names
  // with that port must resolve to an address the host also resolves to. No wildcards.
  bool allows(const std::string& host, uint16_t port, bool resolve = true) const;

 private:
  std::vector<AllowlistEntry> entries_;
};

}  // namespace shield_nitro::net
