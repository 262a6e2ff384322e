// EgressRule::matches and EgressConfig::allows: exact names and "*.suffix", case-insensitive,
// the port always required to match.
#include <gtest/gtest.h>

#include "shield_nitro/runtime/config.h"

namespace shield_nitro::runtime {
namespace {

EgressConfig egress(const std::string& allow) {
  return parse_runtime_config("version: 1\negress: {proxy_port: 3128, allow: [" + allow + "]}\n").egress;
}

TEST(EgressRule, ExactNameIgnoresCaseAndOneFinalDot) {
  EgressRule r{"api.example.com", 443};
  EXPECT_TRUE(r.matches("api.example.com", 443));
  EXPECT_TRUE(r.matches("API.Example.Com", 443));
  EXPECT_TRUE(r.matches("api.example.com.", 443));
  EXPECT_FALSE(r.matches("api.example.com", 80));
  EXPECT_FALSE(r.matches("api.example.co", 443));
  EXPECT_FALSE(r.matches("xapi.example.com", 443));
  EXPECT_FALSE(r.matches("a.api.example.com", 443));
  EXPECT_FALSE(r.matches("api.example.com..", 443));
  EXPECT_FALSE(r.matches("", 443));
}

TEST(EgressRule, WildcardMatchesBelowTheSuffixOnly) {
  EgressRule r{"*.example.com", 443};
  EXPECT_TRUE(r.matches("a.example.com", 443));
  EXPECT_TRUE(r.matches("a.b.EXAMPLE.com", 443));
  EXPECT_FALSE(r.matches("example.com", 443));      // never the bare suffix
  EXPECT_FALSE(r.matches("badexample.com", 443));   // a label boundary, not a string suffix
  EXPECT_FALSE(r.matches(".example.com", 443));     // not a DNS name
  EXPECT_FALSE(r.matches("a..example.com", 443));
  EXPECT_FALSE(r.matches("a.example.com", 444));
  EXPECT_FALSE(r.matches("a.example.com.evil.org", 443));
  EXPECT_FALSE(r.matches("a b.example.com", 443));
}

TEST(EgressConfig, AllowsWhatOneRuleMatches) {
  EgressConfig e = egress("\"api.example.com:443\", \"*.s3.amazonaws.com:443\", \"API.example.com:8443\"");
  EXPECT_TRUE(e.allows("api.example.com", 443));
  EXPECT_TRUE(e.allows("api.example.com", 8443));
  EXPECT_TRUE(e.allows("bucket.s3.amazonaws.com", 443));
  EXPECT_FALSE(e.allows("s3.amazonaws.com", 443));
  EXPECT_FALSE(e.allows("api.example.com", 80));
  EXPECT_FALSE(e.allows("evil.org", 443));
}

TEST(EgressConfig, NoProxyPortAllowsNothing) {
  EgressConfig e;
  e.allow.push_back({"api.example.com", 443});
  EXPECT_FALSE(e.allows("api.example.com", 443));
  e.proxy_port = 3128;
  EXPECT_TRUE(e.allows("api.example.com", 443));
  EXPECT_FALSE(EgressConfig{}.allows("api.example.com", 443));
}

}  // namespace
}  // namespace shield_nitro::runtime
