// net::Client: one connection to a net::Server, shared by any number of threads.
//
//   net::Client client(net::Endpoint::parse("unix:/run/shield-nitro.sock"));
//   cbor::Value out = client.call("describe");                 // throws Error on "ok": false
//   net::Response r = client.request("encrypt", body);         // errors as a Response
//   std::future<net::Response> f = client.request_async("encrypt", body);   // pipelined
//
// Every request gets the next id; a reader thread matches responses by id, so many calls can
// be in flight on one connection and complete in any order. A call that gets no answer within
// call_timeout fails with "timeout". When the server closes the connection, every pending and
// later call fails with Error(kIo, "... connection closed ...").
//
// Large uploads stream (docs/protocol.md, "Streams"):
//   auto up = client.stream("load-artifact", header);
//   while (read chunk) up.send(cbor map with the chunk);
//   net::Response r = up.finish();
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string_view>

#include "shield_nitro/cbor/secret.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/frame.h"
#include "shield_nitro/net/message.h"

namespace shield_nitro::net {

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds call_timeout{std::chrono::seconds(60)};
  size_t max_frame = kDefaultMaxFrame;
};

class Client;

// An open upload stream (see above). Not thread-safe on its own: one thread feeds it.
class ClientStream {
 public:
  ClientStream(ClientStream&&) noexcept;
  ClientStream& operator=(ClientStream&&) noexcept;
  ~ClientStream();  // an unfinished stream is finished with an empty last part; result ignored

  // One continuation frame {"more": true, "body": part}. Throws Error(kIo) if the connection
  // is gone (then finish() reports why).
  void send(cbor::Value part);
  // One continuation frame {"more": true, "body": {key: <bytes>}} whose byte string `fill`
  // writes straight into the frame buffer (no copy of the payload; e.g. a file read). fill
  // gets room for max bytes and returns how many it wrote. Returns that count; 0 sends
  // nothing. Throws like send(); max must fit the frame limit.
  using Fill = std::function<size_t(uint8_t* dst, size_t max)>;
  size_t send_bytes(std::string_view key, size_t max, const Fill& fill);
  // Like send_bytes, but the n bytes at offset of the regular file fd go from the file to the
  // socket inside the kernel (sendfile(2)): they never pass through this process's memory.
  // The file must hold them all: if it ends early, the frame cannot be completed and the
  // connection is closed (Error(kIo)).
  void send_file_bytes(std::string_view key, int fd, uint64_t offset, size_t n);
  // The last continuation frame {"more": false}, then the response (waits call_timeout).
  Response finish(cbor::Value last_part = cbor::Value::map());

 private:
  friend class Client;
  ClientStream(Client* client, uint64_t id, std::future<Response> result);
  Client* client_;
  uint64_t id_;
  std::future<Response> result_;
  bool finished_ = false;
  Bytes frame_;  // send_bytes' reused frame buffer
};

class Client {
 public:
  // Connects (Error(kTimeout) / Error(kIo) when it cannot) and starts the reader thread.
  explicit Client(const Endpoint& endpoint, ClientOptions options = {});
  ~Client();  // close()
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends and waits; remote errors, timeouts and a closed connection come back as a Response
  // with ok == false (never throws for them).
  Response request(std::string_view op, cbor::Value body = cbor::Value::map());
  // Like request(), but returns the body and throws Error(code, "<op>: <message>") on failure.
  cbor::Value call(std::string_view op, cbor::Value body = cbor::Value::map());

  // call() for a body that carries a secret in clear (e.g. credentials pushed outside a
  // channel; the server marks the op with Server::mark_sensitive): the body stays wiped-on-drop
  // (SecretValue), its frame is encoded into a buffer reserved once (a reallocation would leave
  // a partial copy in freed memory) and zeroed once written or refused. The answer is not
  // treated as secret.
  cbor::Value call_sensitive(std::string_view op, cbor::SecretValue body);

  // request() without waiting: the future gets the Response (never an exception).
  std::future<Response> request_async(std::string_view op, cbor::Value body = cbor::Value::map());
  // The callback runs on the reader thread (or the caller's, if sending fails): keep it short
  // and never wait in it for another response of this client.
  using Callback = std::function<void(Response)>;
  void request_async(std::string_view op, cbor::Value body, Callback done);

  // Opens a stream with its first body ("more": true); see ClientStream.
  ClientStream stream(std::string_view op, cbor::Value first_body = cbor::Value::map());

  // True until the connection fails or close() runs.
  bool connected() const;
  // Closes the connection; pending calls fail with kIo. Idempotent.
  void close();

 private:
  struct Impl;
  friend class ClientStream;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shield_nitro::net
