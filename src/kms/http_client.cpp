#include "shield_nitro/kms/http_client.h"

#include <curl/curl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>

#include "shield_nitro/core/error.h"
#include "shield_nitro/net/endpoint.h"

namespace shield_nitro::kms {

namespace {

// An AF_VSOCK tunnel's socket comes from net::connect (curl cannot open one itself).
struct Tunnel {
  net::Endpoint endpoint;
  std::chrono::milliseconds timeout{5000};
  std::string error;  // why the last connect failed
};

curl_socket_t open_tunnel(void* clientp, curlsocktype, curl_sockaddr*) {
  auto* t = static_cast<Tunnel*>(clientp);
  try {
    return net::connect(t->endpoint, t->timeout).release();
  } catch (const Error& e) {
    t->error = e.what();
    return CURL_SOCKET_BAD;
  }
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
  if (via.empty()) return;
  try {
    net::Endpoint ep = net::Endpoint::parse(via);
    if (ep.kind != net::Endpoint::Kind::kTcp) return;
  } catch (const Error&) {
  }
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
  Tunnel tunnel;
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
  // The tunnel replaces the TCP connection; TLS still runs here, to the URL's host. A vsock
  // address resolves as the process's vsock network says (a unix socket under the simulator).
  net::Endpoint via = transport.via.empty() ? net::Endpoint{} : net::map_simulated_vsock(net::Endpoint::parse(transport.via), false);
  if (!transport.via.empty() && via.kind == net::Endpoint::Kind::kUnix) {
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, via.path.c_str());
  } else if (!transport.via.empty()) {
    tunnel.endpoint = via;
    tunnel.timeout = std::chrono::milliseconds(transport.connect_timeout_ms);
    resolve = curl_slist_append(nullptr, resolve_entry(url).c_str());
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_tunnel);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &tunnel);
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
    if (!tunnel.error.empty()) why += " (" + tunnel.error + ")";
    Errc code = rc == CURLE_OPERATION_TIMEDOUT ? Errc::kTimeout : Errc::kIo;
    throw Error(code, method + " " + url + where + " failed: " + why);
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

}  // namespace shield_nitro::kms
