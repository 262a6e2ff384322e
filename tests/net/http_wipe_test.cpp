// HttpServerOptions::wipe_buffers: with it, no request or answer bytes are left in freed heap
// memory (tests/support/freed_memory_scan.h looks through every freed block); without it they
// are, so the scan can fail. The client here keeps its bytes on the stack and wipes them.
#include <gtest/gtest.h>
#include <openssl/crypto.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>

#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/http_server.h"
#include "support/freed_memory_scan.h"

namespace {

using namespace shield_nitro;
using namespace shield_nitro::net;
using shield_nitro::test_support::FreedMemoryScan;

constexpr char kMarker[] = "SN-WIPE-MARKER-5b0e3c91d2";  // longer than a small-string buffer

// Serves one request whose body is the marker, answered with it; returns the freed blocks that
// held the marker once the server is gone.
size_t leftovers(bool wipe) {
  FreedMemoryScan scan(as_bytes(std::string_view(kMarker)));
  {
    HttpServerOptions o{"127.0.0.1:0"};
    o.wipe_buffers = wipe;
    o.limits.max_body_bytes = 4096;
    o.workers = 1;
    HttpServer server(o, [](const HttpServerRequest& r) { return HttpServerResponse{200, {}, r.body}; });
    server.start();
    char buf[1024];
    {
      UniqueFd fd = net::connect(net::Endpoint::tcp("127.0.0.1", static_cast<uint16_t>(server.port())));
      int n = std::snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                            std::strlen(kMarker), kMarker);
      ::send(fd.get(), buf, static_cast<size_t>(n), MSG_NOSIGNAL);
      size_t got = 0;
      for (ssize_t r; got < sizeof buf && (r = ::recv(fd.get(), buf + got, sizeof buf - got, 0)) > 0;) got += static_cast<size_t>(r);
      bool answered = memmem(buf, got, kMarker, std::strlen(kMarker)) != nullptr;
      OPENSSL_cleanse(buf, sizeof buf);
      EXPECT_TRUE(answered);
    }
    server.stop();
  }
  return scan.hits();
}

TEST(HttpServerWipe, NothingOfARequestOrAnswerIsLeftInFreedMemory) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  EXPECT_GT(leftovers(false), 0u);  // the scan sees what an unwiped server leaves
  EXPECT_EQ(leftovers(true), 0u);
}

}  // namespace
