#include "shield_nitro/kms/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>
#include <map>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/kms/kms_error.h"

namespace shield_nitro::kms {

namespace {

constexpr char kAlgorithm[] = "AWS4-HMAC-SHA256";

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Trims and collapses whitespace runs (folded continuation lines included) to one space.
std::string canonical_value(std::string_view v) {
  std::string out;
  bool pending_space = false;
  for (char c : v) {
    if (is_space(c)) {
      pending_space = !out.empty();
    } else {
      if (pending_space) out += ' ';
      pending_space = false;
      out += c;
    }
  }
  return out;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    parts.emplace_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return parts;
}

std::string normalize_path(const std::string& path) {
  std::vector<std::string> out;
  for (const auto& seg : split(path, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.push_back(seg);
  }
  std::string result;
  for (const auto& seg : out) result += "/" + seg;
  bool trailing = path.size() > 1 && path.back() == '/' && !out.empty();
  if (result.empty() || trailing) result += "/";
  return result;
}

std::string date_part(const std::string& amz) { return amz.substr(0, 8); }

std::string credential_scope(const std::string& amz, const std::string& region, const std::string& service) {
  return date_part(amz) + "/" + region + "/" + service + "/aws4_request";
}

std::string build_canonical_request(const SignableRequest& req, const std::string& canon_headers,
                                    const std::string& signed_headers, const std::string& payload_hash,
                                    bool normalize) {
  return req.method + "\n" + sigv4_canonical_uri(req.path, normalize) + "\n" + sigv4_canonical_query(req.query) +
         "\n" + canon_headers + "\n" + signed_headers + "\n" + payload_hash;
}

std::string build_string_to_sign(const std::string& amz, const std::string& scope, const std::string& canonical) {
  return std::string(kAlgorithm) + "\n" + amz + "\n" + scope + "\n" + sha256_hex(as_bytes(canonical));
}

bool has_header(const HeaderList& headers, const std::string& name) { return find_header(headers, name).has_value(); }

}  // namespace

std::string sha256_hex(ByteView data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) throw_openssl("SHA-256");
  return hex_encode({md, len});
}

Bytes hmac_sha256(ByteView key, ByteView data) {
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out.data(), &len))
    throw_openssl("HMAC-SHA256");
  out.resize(len);
  return out;
}

std::string sigv4_canonical_uri(const std::string& path, bool normalize) {
  std::string p = path.empty() ? "/" : path;
  if (normalize) p = normalize_path(p);
  return uri_encode(p, true);
}

std::string sigv4_canonical_query(const std::string& query) {
  if (query.empty()) return "";
  std::vector<std::pair<std::string, std::string>> params;
  for (const auto& part : split(query, '&')) {
    if (part.empty()) continue;
    auto eq = part.find('=');
    std::string key = part.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
    params.emplace_back(uri_encode(percent_decode(key), false), uri_encode(percent_decode(value), false));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) out += (out.empty() ? "" : "&") + k + "=" + v;
  return out;
}

std::pair<std::string, std::string> sigv4_canonical_headers(const HeaderList& headers,
                                                            const std::vector<std::string>* only) {
  std::map<std::string, std::string> merged;
  for (const auto& [name, value] : headers) {
    std::string key = lower(name);
    if (only && std::find(only->begin(), only->end(), key) == only->end()) continue;
    auto [it, inserted] = merged.emplace(key, canonical_value(value));
    if (!inserted) it->second += "," + canonical_value(value);
  }
  std::string block, list;
  for (const auto& [k, v] : merged) {
    block += k + ":" + v + "\n";
    list += (list.empty() ? "" : ";") + k;
  }
  return {block, list};
}

SecureBytes sigv4_signing_key(ByteView secret, const std::string& date, const std::string& region,
                              const std::string& service) {
  SecureBytes seed(as_bytes("AWS4"));
  seed.append(secret);
  SecureBytes k(hmac_sha256(seed.view(), as_bytes(date)));
  k = SecureBytes(hmac_sha256(k.view(), as_bytes(region)));
  k = SecureBytes(hmac_sha256(k.view(), as_bytes(service)));
  return SecureBytes(hmac_sha256(k.view(), as_bytes("aws4_request")));
}

std::string amz_date(int64_t unix_s) { return format_utc(unix_s, "%Y%m%dT%H%M%SZ"); }

int64_t parse_amz_date(const std::string& stamp) {
  bool ok = stamp.size() == 16 && stamp[8] == 'T' && stamp[15] == 'Z';
  for (size_t i = 0; ok && i < 15; ++i)
    if (i != 8 && !std::isdigit(static_cast<unsigned char>(stamp[i]))) ok = false;
  if (!ok) throw Error(Errc::kFormat, "malformed X-Amz-Date '" + stamp + "' (want YYYYMMDDTHHMMSSZ)");
  std::tm tm{};
  tm.tm_year = std::stoi(stamp.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(stamp.substr(4, 2)) - 1;
  tm.tm_mday = std::stoi(stamp.substr(6, 2));
  tm.tm_hour = std::stoi(stamp.substr(9, 2));
  tm.tm_min = std::stoi(stamp.substr(11, 2));
  tm.tm_sec = std::stoi(stamp.substr(13, 2));
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
    throw Error(Errc::kFormat, "X-Amz-Date '" + stamp + "' is out of range");
  return static_cast<int64_t>(timegm(&tm));
}

SigV4Result sigv4_sign(const SignableRequest& request, const SigV4Params& params) {
  if (params.amz_date.size() != 16) throw Error(Errc::kUsage, "SigV4: amz_date must be YYYYMMDDTHHMMSSZ");
  SigV4Result r;
  r.payload_hash = sha256_hex(request.body);
  SignableRequest req = request;
  if (!has_header(req.headers, "x-amz-date")) r.added_headers.emplace_back("X-Amz-Date", params.amz_date);
  if (params.sign_body_header && !has_header(req.headers, "x-amz-content-sha256"))
    r.added_headers.emplace_back("X-Amz-Content-Sha256", r.payload_hash);
  bool token_added = !params.session_token.empty() && !has_header(req.headers, "x-amz-security-token");
  if (token_added && params.sign_session_token) r.added_headers.emplace_back("X-Amz-Security-Token", params.session_token);
  for (const auto& h : r.added_headers) req.headers.push_back(h);

  auto [block, list] = sigv4_canonical_headers(req.headers);
  r.signed_headers = list;
  r.canonical_request = build_canonical_request(req, block, list, r.payload_hash, params.normalize_path);
  r.credential_scope = credential_scope(params.amz_date, params.region, params.service);
  r.string_to_sign = build_string_to_sign(params.amz_date, r.credential_scope, r.canonical_request);
  SecureBytes key = sigv4_signing_key(params.secret_access_key, date_part(params.amz_date), params.region,
                                      params.service);
  r.signature = hex_encode(hmac_sha256(key.view(), as_bytes(r.string_to_sign)));
  r.authorization = std::string(kAlgorithm) + " Credential=" + params.access_key_id + "/" + r.credential_scope +
                    ", SignedHeaders=" + r.signed_headers + ", Signature=" + r.signature;
  if (token_added && !params.sign_session_token) r.added_headers.emplace_back("X-Amz-Security-Token", params.session_token);
  return r;
}

// ---- verification ----

namespace {

[[noreturn]] void incomplete(const std::string& what) {
  throw KmsError(400, "IncompleteSignatureException", what);
}

std::string trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return std::string(s);
}

bool is_lower_hex(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

void check_skew(const std::string& stamp, const VerifyOptions& opt) {
  int64_t t = 0;
  try {
    t = parse_amz_date(stamp);
  } catch (const Error&) {
    incomplete("Date must be in ISO-8601 'basic format'. Got '" + stamp + "'.");
  }
  if (t < opt.now_s - opt.max_skew_s)
    throw KmsError(400, "InvalidSignatureException",
                   "Signature expired: " + stamp + " is now earlier than " + amz_date(opt.now_s - opt.max_skew_s) +
                       " (" + amz_date(opt.now_s) + " - " + std::to_string(opt.max_skew_s / 60) + " min.)");
  if (t > opt.now_s + opt.max_skew_s)
    throw KmsError(400, "InvalidSignatureException",
                   "Signature not yet current: " + stamp + " is still later than " +
                       amz_date(opt.now_s + opt.max_skew_s) + " (" + amz_date(opt.now_s) + " + " +
                       std::to_string(opt.max_skew_s / 60) + " min.)");
}

}  // namespace

ParsedAuthorization parse_authorization(const std::string& header) {
  std::string h = trim(header);
  std::string prefix = std::string(kAlgorithm) + " ";
  if (h.compare(0, prefix.size(), prefix) != 0)
    incomplete("Authorization header requires the AWS4-HMAC-SHA256 algorithm.");
  std::map<std::string, std::string> fields;
  for (const auto& part : split(std::string_view(h).substr(prefix.size()), ',')) {
    std::string p = trim(part);
    auto eq = p.find('=');
    if (eq == std::string::npos) incomplete("Authorization header parameter '" + p.substr(0, 64) + "' has no value.");
    if (!fields.emplace(p.substr(0, eq), p.substr(eq + 1)).second)
      incomplete("Authorization header repeats parameter '" + p.substr(0, eq) + "'.");
  }
  for (const char* need : {"Credential", "SignedHeaders", "Signature"})
    if (!fields.count(need))
      incomplete(std::string("Authorization header requires '") + need + "' parameter. Authorization=" +
                 h.substr(0, 128));
  auto scope = split(fields["Credential"], '/');
  if (scope.size() != 5 || scope[4] != "aws4_request" || scope[0].empty() || scope[1].size() != 8)
    incomplete("Credential should be scoped to a valid region and end with 'aws4_request'.");
  ParsedAuthorization a{scope[0], scope[1], scope[2], scope[3], split(fields["SignedHeaders"], ';'),
                        fields["Signature"]};
  for (const auto& name : a.signed_headers)
    if (name.empty() || name != lower(name)) incomplete("SignedHeaders must be lower-case names separated by ';'.");
  if (a.signature.size() != 64 || !is_lower_hex(a.signature))
    incomplete("Signature must be 64 lower-case hex characters.");
  return a;
}

std::string sigv4_verify(const SignableRequest& request, const SecretLookup& lookup, const VerifyOptions& opt) {
  auto auth_header = find_header(request.headers, "authorization");
  if (!auth_header) throw KmsError(400, "MissingAuthenticationTokenException", "Missing Authentication Token");
  ParsedAuthorization a = parse_authorization(*auth_header);
  auto stamp = find_header(request.headers, "x-amz-date");
  if (!stamp) incomplete("Authorization requires the X-Amz-Date header.");
  if (std::find(a.signed_headers.begin(), a.signed_headers.end(), "host") == a.signed_headers.end())
    incomplete("'Host' must be a signed header.");
  if (date_part(*stamp) != a.date)
    throw KmsError(400, "InvalidSignatureException",
                   "Credential should be scoped to a valid date: '" + a.date + "' does not match X-Amz-Date.");
  if (a.service != opt.service || (!opt.region.empty() && a.region != opt.region))
    throw KmsError(400, "InvalidSignatureException",
                   "Credential should be scoped to correct service and region: '" + opt.service + "' in '" +
                       opt.region + "', not '" + a.service + "' in '" + a.region + "'.");
  check_skew(*stamp, opt);
  auto secret = lookup(a.access_key_id);
  if (!secret) throw KmsError(400, "UnrecognizedClientException", "The security token included in the request is invalid.");
  if (!secret->session_token.empty()) {
    auto token = find_header(request.headers, "x-amz-security-token");
    if (!token || !ct_equal(as_bytes(*token), as_bytes(secret->session_token)))
      throw KmsError(400, "UnrecognizedClientException", "The security token included in the request is invalid.");
  }
  for (const auto& name : a.signed_headers)
    if (!has_header(request.headers, name)) incomplete("Signed header '" + name + "' is missing from the request.");
  auto [block, list] = sigv4_canonical_headers(request.headers, &a.signed_headers);
  std::string canonical = build_canonical_request(request, block, list, sha256_hex(request.body), true);
  std::string sts = build_string_to_sign(*stamp, credential_scope(*stamp, a.region, a.service), canonical);
  SecureBytes key = sigv4_signing_key(secret->secret_access_key.view(), a.date, a.region, a.service);
  std::string expect = hex_encode(hmac_sha256(key.view(), as_bytes(sts)));
  if (!ct_equal(as_bytes(expect), as_bytes(a.signature)))
    throw KmsError(400, "InvalidSignatureException",
                   "The request signature we calculated does not match the signature you provided. Check your AWS "
                   "Secret Access Key and signing method. Consult the service documentation for details.");
  return a.access_key_id;
}

}  // namespace shield_nitro::kms
