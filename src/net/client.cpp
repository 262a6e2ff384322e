#include "shield_nitro/net/client.h"

#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "sockaddr.h"
#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::net {
namespace {
constexpr int kPollMs = 50;  // how often the reader checks call deadlines
constexpr int64_t kNoDeadline = INT64_MAX;
}  // namespace

struct Client::Impl {
  struct Pending {
    Callback done;
    int64_t deadline_ns;
  };

  Endpoint endpoint;
  ClientOptions opt;
  UniqueFd fd;
  std::thread reader;
  std::atomic<uint64_t> next_id{1};
  std::atomic<bool> closing{false};

  std::mutex write_mu;
  std::mutex mu;  // guards pending, closed, close_reason
  std::unordered_map<uint64_t, Pending> pending;
  bool closed = false;
  Response close_reason;

  int64_t deadline_after(std::chrono::milliseconds d) const {
    return monotonic_ns() + static_cast<int64_t>(d.count()) * 1000000;
  }

  // A sensitive request's frame and body, zeroed however send() ends.
  struct WipeRequest {
    WipeRequest(Bytes& f, Request& r) : frame(f), req(r) {}
    WipeRequest(const WipeRequest&) = delete;
    Bytes& frame;
    Request& req;
    ~WipeRequest() {
      secure_wipe(frame.data(), frame.capacity());
      req.body.wipe_strings();
    }
  };

  // Registers the callback, then writes the frame. Any failure reaches the callback.
  // sensitive: see call_sensitive.
  void send(Request req, Callback done, int64_t deadline_ns, bool sensitive = false) {
    Bytes frame;
    std::optional<WipeRequest> wipe;
    if (sensitive) {
      // Map head, "v", "id", "op" and "body" with their values: at most 32 bytes besides these.
      frame.reserve(kFrameHeaderSize + 32 + req.op.size() + cbor::encoded_size(req.body));
      wipe.emplace(frame, req);
    }
    append_request_frame(frame, req);
    if (frame.size() - kFrameHeaderSize > opt.max_frame) {
      Response r = failure_for(req.id, Errc::kUsage, "request of " + std::to_string(frame.size()) +
                                                         " bytes exceeds the frame limit");
      if (!done) throw Error(r.code, r.message);
      return done(std::move(r));
    }
    {
      std::unique_lock lock(mu);
      if (closed) {
        Response r = close_reason;
        r.id = req.id;
        lock.unlock();
        if (!done) throw Error(r.code, r.message);
        return done(std::move(r));
      }
      if (!req.continuation()) pending.emplace(req.id, Pending{std::move(done), deadline_ns});
    }
    write_frame(frame);
  }

  // Writes a frame built elsewhere (a stream part), unless the connection is already closed.
  void write_raw(ByteView frame) {
    {
      std::lock_guard lock(mu);
      if (closed) throw Error(close_reason.code, close_reason.message);
    }
    write_frame(frame);
  }

  // Writes a frame's head, then its last n bytes straight from the file; all under one lock,
  // so no other frame interleaves. Any failure closes the connection.
  void write_raw_with_file(ByteView head, int file, uint64_t offset, size_t n) {
    {
      std::lock_guard lock(mu);
      if (closed) throw Error(close_reason.code, close_reason.message);
    }
    std::lock_guard wlock(write_mu);
    auto fail = [&](const std::string& why) {
      fail_all(Errc::kIo, "connection to " + endpoint.to_string() + " closed while sending: " + why);
      throw Error(Errc::kIo, "send to " + endpoint.to_string() + " failed: " + why);
    };
    for (size_t off = 0; off < head.size();) {
      ssize_t w = ::send(fd.get(), head.data() + off, head.size() - off, MSG_NOSIGNAL | MSG_MORE);
      if (w > 0) off += static_cast<size_t>(w);
      else if (w < 0 && errno == EINTR) continue;
      else fail(detail::errno_text(w < 0 ? errno : EPIPE));
    }
    auto pos = static_cast<off_t>(offset);
    for (size_t left = n; left > 0;) {
      ssize_t w = ::sendfile(fd.get(), file, &pos, left);
      if (w > 0) left -= static_cast<size_t>(w);
      else if (w < 0 && errno == EINTR) continue;
      else fail(w == 0 ? "the file ended before the announced bytes" : detail::errno_text(errno));
    }
  }

  // Writes one whole frame; a failure closes the connection (which fails what is pending).
  void write_frame(ByteView frame) {
    std::lock_guard wlock(write_mu);
    size_t off = 0;
    while (off < frame.size()) {
      ssize_t n = ::send(fd.get(), frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      fail_all(Errc::kIo, "connection to " + endpoint.to_string() + " closed while sending: " +
                              detail::errno_text(n < 0 ? errno : EPIPE));
      throw Error(Errc::kIo, "send to " + endpoint.to_string() + " failed: connection closed");
    }
  }

  static Response failure_for(uint64_t id, Errc code, std::string message) {
    Response r = Response::failure(code, std::move(message));
    r.id = id;
    return r;
  }

  void fail_all(Errc code, const std::string& message) {
    std::unordered_map<uint64_t, Pending> failed;
    {
      std::lock_guard lock(mu);
      if (!closed) {
        closed = true;
        close_reason = Response::failure(code, message);
      }
      failed.swap(pending);
    }
    for (auto& [id, p] : failed) p.done(failure_for(id, code, message));
  }

  void deliver(Response r) {
    if (r.id == 0) {  // connection-level error: the server closes next
      fail_all(r.code, "server: " + r.message);
      return;
    }
    Callback done;
    {
      std::lock_guard lock(mu);
      auto it = pending.find(r.id);
      if (it == pending.end()) return;  // timed out earlier
      done = std::move(it->second.done);
      pending.erase(it);
    }
    done(std::move(r));
  }

  void expire(int64_t now) {
    std::vector<std::pair<uint64_t, Callback>> expired;
    {
      std::lock_guard lock(mu);
      for (auto it = pending.begin(); it != pending.end();) {
        if (it->second.deadline_ns <= now) {
          expired.emplace_back(it->first, std::move(it->second.done));
          it = pending.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& [id, done] : expired)
      done(failure_for(id, Errc::kTimeout, "no response from " + endpoint.to_string() + " within " +
                                               std::to_string(opt.call_timeout.count()) + " ms"));
  }

  void read_loop() {
    FrameDecoder decoder(opt.max_frame);
    std::vector<uint8_t> buf(64 * 1024);
    std::string why = "connection closed by the server (" + endpoint.to_string() + ")";
    for (;;) {
      pollfd p{fd.get(), POLLIN, 0};
      int rc = ::poll(&p, 1, kPollMs);
      expire(monotonic_ns());
      if (rc == 0 || (rc < 0 && errno == EINTR)) continue;
      ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        if (n < 0) why = "connection to " + endpoint.to_string() + " failed: " + detail::errno_text(errno);
        break;
      }
      decoder.feed({buf.data(), static_cast<size_t>(n)});
      try {
        while (auto frame = decoder.next()) deliver(decode_response(*frame, opt.max_frame));
      } catch (const Error& e) {
        why = std::string("bad response from ") + endpoint.to_string() + ": " + e.what();
        ::shutdown(fd.get(), SHUT_RDWR);
        break;
      }
    }
    if (closing) why = "connection closed by the client";
    fail_all(Errc::kIo, why);
  }
};

Client::Client(const Endpoint& endpoint, ClientOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->endpoint = endpoint;
  impl_->opt = options;
  impl_->fd = net::connect(endpoint, options.connect_timeout);
  impl_->reader = std::thread([impl = impl_.get()] { impl->read_loop(); });
}

Client::~Client() { close(); }

void Client::close() {
  if (!impl_ || impl_->closing.exchange(true)) return;
  ::shutdown(impl_->fd.get(), SHUT_RDWR);
  if (impl_->reader.joinable()) impl_->reader.join();
  impl_->fd.reset();
}

bool Client::connected() const {
  std::lock_guard lock(impl_->mu);
  return !impl_->closed;
}

void Client::request_async(std::string_view op, cbor::Value body, Callback done) {
  Request req;
  req.id = impl_->next_id++;
  req.op = std::string(op);
  req.body = std::move(body);
  try {
    impl_->send(std::move(req), std::move(done), impl_->deadline_after(impl_->opt.call_timeout));
  } catch (const Error&) {
    // write_frame already failed every pending call, including this one.
  }
}

std::future<Response> Client::request_async(std::string_view op, cbor::Value body) {
  auto promise = std::make_shared<std::promise<Response>>();
  std::future<Response> f = promise->get_future();
  request_async(op, std::move(body), [promise](Response r) { promise->set_value(std::move(r)); });
  return f;
}

Response Client::request(std::string_view op, cbor::Value body) { return request_async(op, std::move(body)).get(); }

namespace {
// The body of an ok response; else Error(code, "<op>: <message>").
cbor::Value body_or_throw(std::string_view op, Response r) {
  if (!r.ok) {
    // Name the operation once: the server's message often names it already ("attest: ...").
    std::string prefix = std::string(op) + ": ";
    throw Error(r.code, r.message.rfind(prefix, 0) == 0 ? r.message : prefix + r.message);
  }
  return std::move(r.body);
}
}  // namespace

cbor::Value Client::call(std::string_view op, cbor::Value body) { return body_or_throw(op, request(op, std::move(body))); }

cbor::Value Client::call_sensitive(std::string_view op, cbor::SecretValue body) {
  auto promise = std::make_shared<std::promise<Response>>();
  std::future<Response> f = promise->get_future();
  Request req;
  req.id = impl_->next_id++;
  req.op = std::string(op);
  req.body = std::move(body.value());  // what the move leaves in body is wiped
  try {
    impl_->send(std::move(req), [promise](Response r) { promise->set_value(std::move(r)); },
                impl_->deadline_after(impl_->opt.call_timeout), true);
  } catch (const Error&) {
    // write_frame already failed every pending call, including this one.
  }
  return body_or_throw(op, f.get());
}

ClientStream Client::stream(std::string_view op, cbor::Value first_body) {
  auto promise = std::make_shared<std::promise<Response>>();
  std::future<Response> f = promise->get_future();
  Request req;
  req.id = impl_->next_id++;
  req.op = std::string(op);
  req.body = std::move(first_body);
  req.more = true;
  uint64_t id = req.id;
  try {
    impl_->send(std::move(req), [promise](Response r) { promise->set_value(std::move(r)); }, kNoDeadline);
  } catch (const Error&) {
  }
  return ClientStream(this, id, std::move(f));
}

// ---------------- ClientStream ----------------

ClientStream::ClientStream(Client* client, uint64_t id, std::future<Response> result)
    : client_(client), id_(id), result_(std::move(result)) {}

ClientStream::ClientStream(ClientStream&& o) noexcept
    : client_(o.client_),
      id_(o.id_),
      result_(std::move(o.result_)),
      finished_(std::exchange(o.finished_, true)),
      frame_(std::move(o.frame_)) {}

ClientStream& ClientStream::operator=(ClientStream&& o) noexcept {
  if (this != &o) {
    client_ = o.client_;
    id_ = o.id_;
    result_ = std::move(o.result_);
    finished_ = std::exchange(o.finished_, true);
    frame_ = std::move(o.frame_);
  }
  return *this;
}

ClientStream::~ClientStream() {
  if (finished_) return;
  try {
    Request last;
    last.id = id_;
    client_->impl_->send(std::move(last), nullptr, 0);
  } catch (...) {
  }
}

void ClientStream::send(cbor::Value part) {
  if (finished_) throw Error(Errc::kUsage, "stream: send() after finish()");
  Request r;
  r.id = id_;
  r.body = std::move(part);
  r.more = true;
  if (result_.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
    throw Error(Errc::kIo, "stream: the server already answered; finish() returns its response");
  client_->impl_->send(std::move(r), nullptr, 0);
}

namespace {

// Frame header (length left zero) and everything encode_request_into() writes before the bytes
// of a continuation {"v", "id", "more": true, "body": {key: <n bytes>}}.
Bytes bytes_part_prefix(uint64_t id, std::string_view key, size_t n) {
  Bytes p(kFrameHeaderSize, 0);
  cbor::Writer w(p);
  w.begin_map(4);
  w.text("v");
  w.uint(kProtocolVersion);
  w.text("id");
  w.uint(id);
  w.text("more");
  w.boolean(true);
  w.text("body");
  w.begin_map(1);
  w.text(key);
  w.head(2, n);
  return p;
}

}  // namespace

size_t ClientStream::send_bytes(std::string_view key, size_t max, const Fill& fill) {
  if (finished_) throw Error(Errc::kUsage, "stream: send_bytes() after finish()");
  Client::Impl& c = *client_->impl_;
  const size_t room = bytes_part_prefix(id_, key, max).size();
  if (room - kFrameHeaderSize + max > c.opt.max_frame)
    throw Error(Errc::kUsage, "stream: a part of " + std::to_string(max) + " bytes exceeds the frame limit");
  if (frame_.size() < room + max) frame_.resize(room + max);  // zero-filled once, then reused
  const size_t n = fill(frame_.data() + room, max);
  if (n == 0) return 0;
  if (n > max) throw Error(Errc::kUsage, "stream: send_bytes' fill wrote more than it had room for");
  // A short last part may have a shorter length head: the prefix then starts later.
  const Bytes prefix = bytes_part_prefix(id_, key, n);
  const size_t start = room - prefix.size();
  std::memcpy(frame_.data() + start, prefix.data(), prefix.size());
  const size_t len = prefix.size() - kFrameHeaderSize + n;
  for (int b = 0; b < 4; ++b) frame_[start + static_cast<size_t>(b)] = static_cast<uint8_t>(len >> (24 - 8 * b));
  if (result_.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
    throw Error(Errc::kIo, "stream: the server already answered; finish() returns its response");
  c.write_raw({frame_.data() + start, kFrameHeaderSize + len});
  return n;
}

void ClientStream::send_file_bytes(std::string_view key, int fd, uint64_t offset, size_t n) {
  if (finished_) throw Error(Errc::kUsage, "stream: send_file_bytes() after finish()");
  Client::Impl& c = *client_->impl_;
  Bytes head = bytes_part_prefix(id_, key, n);
  if (head.size() - kFrameHeaderSize + n > c.opt.max_frame)
    throw Error(Errc::kUsage, "stream: a part of " + std::to_string(n) + " bytes exceeds the frame limit");
  const size_t len = head.size() - kFrameHeaderSize + n;
  for (int b = 0; b < 4; ++b) head[static_cast<size_t>(b)] = static_cast<uint8_t>(len >> (24 - 8 * b));
  if (result_.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
    throw Error(Errc::kIo, "stream: the server already answered; finish() returns its response");
  c.write_raw_with_file(head, fd, offset, n);
}

Response ClientStream::finish(cbor::Value last_part) {
  if (finished_) throw Error(Errc::kUsage, "stream: finish() called twice");
  finished_ = true;
  Client::Impl& c = *client_->impl_;
  {
    std::lock_guard lock(c.mu);
    auto it = c.pending.find(id_);
    if (it != c.pending.end()) it->second.deadline_ns = c.deadline_after(c.opt.call_timeout);
  }
  // Sent even when the server already answered, so it can forget the stream.
  Request r;
  r.id = id_;
  r.body = std::move(last_part);
  try {
    c.send(std::move(r), nullptr, 0);
  } catch (const Error&) {
    // The connection failed; the pending entry reports why.
  }
  return result_.get();
}

}  // namespace shield_nitro::net
