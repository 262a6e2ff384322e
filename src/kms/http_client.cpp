#include "shield_nitro/kms/http_client.h"

#include <curl/curl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

#include "shield_nitro/core/error.h"

namespace shield_nitro::kms {

namespace {

struct VsockTarget {
  uint32_t cid = 0;
  uint32_t port = 0;
  int last_errno = 0;
};

bool parse_u32(const std::string& s, uint32_t& out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > 0xffffffffu) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

bool parse_vsock(const std::string& via, VsockTarget& t) {
  const std::string prefix = "vsock://";
  if (via.rfind(prefix, 0) != 0) return false;
  auto rest = via.substr(prefix.size());
  auto colon = rest.find(':');
  return colon != std::string::npos && parse_u32(rest.substr(0, colon), t.cid) &&
         parse_u32(rest.substr(colon + 1), t.port);
}

curl_socket_t open_vsock(void* clientp, curlsocktype, curl_sockaddr*) {
  auto* t = static_cast<VsockTarget*>(clientp);
  int fd = vsock_connect(t->cid, t->port);
  if (fd < 0) {
    t->last_errno = errno;
    return CURL_SOCKET_BAD;
  }
  return fd;
}

int already_connected(void*, curl_socket_t, curlsocktype) { return CURL_SOCKOPT_ALREADY_CONNECTED; }

size_t collect_body(char* data, size_t size, size_t n, void* userp) {
  static_cast<std::string*>(userp)->append(data, size * n);
  return size * n;
}

size_t collect_header(char* data, size_t size, size_t n, void* userp) {
  auto* headers = static_cast<HeaderList*>(userp);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) headers->clear();  // a new response (after 100-continue)
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
    headers->emplace_back(line.substr(0, colon), value);
  }
  return size * n;
}

// host:port of a URL, for CURLOPT_RESOLVE (so an enclave never needs DNS for a tunnel).
std::string resolve_entry(const std::string& url) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(), curl_url_cleanup);
  char *host = nullptr, *port = nullptr;
  if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK ||
      curl_url_get(u.get(), CURLUPART_HOST, &host, 0) != CURLUE_OK ||
      curl_url_get(u.get(), CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
    throw Error(Errc::kUsage, "malformed URL '" + url + "'");
  std::string entry = std::string(host) + ":" + port + ":127.0.0.1";
  curl_free(host);
  curl_free(port);
  return entry;
}

// curl's own text for this ("SSL peer certificate or SSH remote key was not OK") names
// neither the cause nor the fix; a private endpoint (kms-local) needs its CA passed.
std::string untrusted_certificate(const std::string& ca_file, const char* detail) {
  std::string why = *detail ? std::string(" (") + detail + ")" : "";
  if (ca_file.empty())
    return "the server's TLS certificate is not signed by a CA in the system trust store" + why +
           "; for a private endpoint such as kms-local, pass its CA with --kms-ca FILE";
  return "the server's TLS certificate does not verify with the CA file " + ca_file + why;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

void check_via(const std::string& via) {
  VsockTarget t;
  if (via.empty() || parse_vsock(via, t) || (via.rfind("unix:", 0) == 0 && via.size() > 5)) return;
  throw Error(Errc::kUsage, "--kms-via must be vsock://CID:PORT (e.g. vsock://3:8000) or unix:PATH, got '" + via + "'");
}

HttpResponse http_request(const std::string& method, const std::string& url, const HeaderList& headers,
                          ByteView body, const TransportOptions& transport) {
  check_via(transport.via);
  global_init();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) throw Error(Errc::kInternal, "curl_easy_init failed");
  CURL* c = curl.get();
  HttpResponse resp;
  curl_slist* list = nullptr;
  for (const auto& [k, v] : headers) list = curl_slist_append(list, (k + ": " + v).c_str());
  list = curl_slist_append(list, "Expect:");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> list_guard(list, curl_slist_free_all);
  curl_slist* resolve = nullptr;
  VsockTarget vsock;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &resp.headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, transport.timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, transport.connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!transport.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, transport.ca_file.c_str());
  if (transport.via.rfind("unix:", 0) == 0) {
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, transport.via.substr(5).c_str());
  } else if (parse_vsock(transport.via, vsock)) {
    resolve = curl_slist_append(nullptr, resolve_entry(url).c_str());
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_vsock);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &vsock);
    curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, already_connected);
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> resolve_guard(resolve, curl_slist_free_all);
  char detail[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    std::string where = transport.via.empty() ? "" : " via " + transport.via;
    std::string why = rc == CURLE_PEER_FAILED_VERIFICATION ? untrusted_certificate(transport.ca_file, detail)
                                                           : curl_easy_strerror(rc);
    if (vsock.last_errno) why += std::string(" (vsock: ") + std::strerror(vsock.last_errno) + ")";
    Errc code = rc == CURLE_OPERATION_TIMEDOUT ? Errc::kTimeout : Errc::kIo;
    throw Error(code, method + " " + url + where + " failed: " + why);
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

}  // namespace shield_nitro::kms
