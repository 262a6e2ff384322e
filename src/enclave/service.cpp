#include "shield_nitro/enclave/service.h"

#include <atomic>
#include <climits>
#include <map>
#include <mutex>
#include <optional>

#include "artifact_upload.h"
#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/secret.h"
#include "shield_nitro/channel/handshake.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/core/version.h"
#include "shield_nitro/enclave/artifact_store.h"
#include "shield_nitro/enclave/key_store.h"
#include "shield_nitro/enclave/stats.h"

namespace shield_nitro::enclave {

constexpr size_t kMaxAttestNonce = 512;  // the NSM's limit for a nonce

using cbor::Value;

namespace {

// Body field helpers: every failure names the field (Errc::kFormat, answered to the caller).
const Value& field(const Value& body, const char* name) {
  const Value* v = body.find(name);
  if (!v) throw Error(Errc::kFormat, std::string("missing field '") + name + "'");
  return *v;
}
// Requests arrive with borrowed byte strings (they point into the received frame): a view.
ByteView bytes_field(const Value& body, const char* name) {
  const Value& v = field(body, name);
  if (!v.is(cbor::Type::kBytes)) throw Error(Errc::kFormat, std::string("field '") + name + "' must be a byte string");
  return v.bytes_view();
}
// Views into the request, which stays the only holder of the text: a secret read this way
// (set-credentials) is copied once, into SecureBytes, never into a std::string.
std::string_view text_field(const Value& body, const char* name) {
  const Value& v = field(body, name);
  if (!v.is(cbor::Type::kText)) throw Error(Errc::kFormat, std::string("field '") + name + "' must be text");
  return v.as_text();
}
std::string_view optional_text(const Value& body, const char* name) {
  const Value* v = body.find(name);
  if (!v || v->is_null()) return {};
  if (!v->is(cbor::Type::kText)) throw Error(Errc::kFormat, std::string("field '") + name + "' must be text");
  return v->as_text();
}
std::map<std::string, std::string> context_field(const Value& body) {
  std::map<std::string, std::string> out;
  const Value* v = body.find("encryption_context");
  if (!v || v->is_null()) return out;
  if (!v->is(cbor::Type::kMap)) throw Error(Errc::kFormat, "field 'encryption_context' must be a map of text");
  for (const auto& [k, val] : v->as_map()) {
    if (!k.is(cbor::Type::kText) || !val.is(cbor::Type::kText))
      throw Error(Errc::kFormat, "field 'encryption_context' must be a map of text");
    out[k.as_text()] = val.as_text();
  }
  return out;
}

// Per worker thread: the opened request and the encoded reply of the sealed request in hand.
// Reused so a sealed request costs no allocation for them; wiped after every request, and
// released when one was large (a multi-MiB sealed payload should not stay resident).
struct SealedScratch {
  static constexpr size_t kKeep = 64 * 1024;
  SecureBytes request;
  Bytes reply;
  void wipe() {
    if (request.size() > kKeep) request.clear();
    else request.resize(0);  // wipes the bytes, keeps the storage
    secure_wipe(reply.data(), reply.size());
    reply.clear();
    if (reply.capacity() > kKeep) Bytes().swap(reply);
  }
  ~SealedScratch() {
    secure_wipe(reply.data(), reply.capacity());
  }
};

// Requests whose AEAD input is at most this many bytes run on the server's event loop (the
// fast path): a 16 KiB AES-GCM takes a few µs, little enough to hold every connection's reads for.
constexpr size_t kFastBytes = 16 * 1024;

net::ServerOptions with_borrowed_bytes(net::ServerOptions o) {
  o.borrow_bytes = true;  // every handler here reads byte strings through bytes_field
  return o;
}

Value error_value(Errc code, const std::string& message) {
  return Value::map({cbor::entry("code", Value::text(errc_name(code))), cbor::entry("message", Value::text(message))});
}

}  // namespace

struct EnclaveService::Impl {
  struct Call {
    const Value& body;
    net::RequestContext* net;  // null inside the channel
    bool in_channel;
  };
  using OpFn = Value (Impl::*)(const Call&);
  struct Op {
    OpFn fn;
    bool channel_only;
    const char* aead_input = nullptr;  // the field of an op that is one AEAD: small ones run on the event loop
    std::string name;
    size_t stat = OpStats::kUnknown;
  };

  std::unique_ptr<nsm::NsmClient> nsm;
  std::unique_ptr<KeyReleaser> releaser;
  ServiceOptions opts;
  net::Server server;
  channel::ChannelServer channels;
  KeyStore keys;
  ArtifactStore artifacts;
  std::map<std::string, Op, std::less<>> ops;
  OpStats stats;
  size_t sealed_stat = stats.index("sealed");
  std::mutex cred_mu;
  std::optional<PushedCredentials> creds;
  // When replies start carrying "refresh_credentials" (Unix s; max: never): read on every
  // request without the lock, written with creds.
  std::atomic<int64_t> refresh_from_s{INT64_MAX};
  int64_t started_ms = system_clock().now_ms();
  std::string module_id, digest;
  std::map<uint16_t, Bytes> boot_pcrs;  // PCRs 0-15: fixed for the enclave's life

  Impl(std::unique_ptr<nsm::NsmClient> n, std::unique_ptr<KeyReleaser> r, ServiceOptions o)
      : nsm(std::move(n)),
        releaser(std::move(r)),
        opts(std::move(o)),
        server(opts.listen, with_borrowed_bytes(opts.server)),
        ops{{"describe", {&Impl::op_describe, false}},     {"attest", {&Impl::op_attest, false}},
            {"channel-open", {&Impl::op_channel_open, false}}, {"sealed", {&Impl::op_sealed, false}},
            {"set-credentials", {&Impl::op_set_credentials, false}}, {"load-key", {&Impl::op_load_key, false}},
            {"load-artifact", {&Impl::op_load_artifact, false}}, {"encrypt", {&Impl::op_encrypt, false, "plaintext"}},
            {"unload", {&Impl::op_unload, false}},          {"stats", {&Impl::op_stats, false}},
            {"invoke", {&Impl::op_invoke, true}},           {"decrypt", {&Impl::op_decrypt, true, "ciphertext"}}},
        stats(op_names(ops)) {
    auto d = nsm->describe_nsm();
    module_id = d.module_id;
    digest = d.digest;
    for (uint16_t i = 0; i < 16; ++i) boot_pcrs[i] = nsm->describe_pcr(i).data;
    for (auto& [name, op] : ops) {
      op.name = name;
      op.stat = stats.index(name);
      const Op* o = &op;  // map nodes stay put
      net::FastPath fast;
      if (o->aead_input)  // a small encrypt runs on the event loop, without a worker
        fast = [this, o](const net::Request& req, net::RequestContext& ctx) {
          if (!small_input(*o, req.body)) return net::FastOutcome::defer();
          return net::FastOutcome::answer(net::Response::success(serve(*o, req.body, ctx)));
        };
      if (o->fn == &Impl::op_sealed)
        fast = [this, o](const net::Request& req, net::RequestContext&) { return fast_sealed(*o, req.body); };
      server.handle(
          name,
          [this, o](const net::Request& req, net::RequestContext& ctx) { return net::Response::success(serve(*o, req.body, ctx)); },
          std::move(fast));
    }
    // A plain push carries the AWS secret in the frame (in a channel it comes sealed): wiped.
    server.mark_sensitive("set-credentials");
  }

  static std::vector<std::string> op_names(const std::map<std::string, Op, std::less<>>& ops) {
    std::vector<std::string> names;
    for (const auto& [name, op] : ops) names.push_back(name);
    return names;
  }

  // Runs f as one request of op: stats, the credential-refresh hint, a log line on refusal.
  template <class F>
  Value timed(const Op& op, F&& f) {
    int64_t t0 = monotonic_ns();
    try {
      return answered(op, t0, f());
    } catch (const Error& e) {
      refused(op, t0, e);
      throw;
    }
  }
  Value answered(const Op& op, int64_t t0, Value out) {
    add_refresh_hint(out);
    stats.record(op.stat, monotonic_ns() - t0, true);
    return out;
  }
  void refused(const Op& op, int64_t t0, const Error& e) {
    stats.record(op.stat, monotonic_ns() - t0, false);
    log_info(op.name + " refused: " + e.what());
  }

  // Runs one plain (unsealed) request.
  Value serve(const Op& op, const Value& body, net::RequestContext& ctx) {
    return timed(op, [&] { return dispatch(op, Call{body, &ctx, false}); });
  }

  Value dispatch(const Op& op, const Call& call) {
    if (op.channel_only && !call.in_channel)
      throw Error(Errc::kPolicy, "'" + op.name + "' returns plaintext, so it is answered only inside the attested channel");
    if (!call.body.is(cbor::Type::kMap)) throw Error(Errc::kFormat, "request body must be a map");
    return (this->*(op.fn))(call);
  }

  const Op* find_op(std::string_view name) const {
    auto it = ops.find(name);
    return it == ops.end() ? nullptr : &it->second;
  }

  // Whether op is one AEAD over at most kFastBytes of body (a malformed body is refused at
  // once, so it counts as small too).
  static bool small_input(const Op& op, const Value& body) {
    if (!op.aead_input) return false;
    const Value* v = body.find(op.aead_input);
    return !v || !v->is(cbor::Type::kBytes) || v->bytes_view().size() <= kFastBytes;
  }

  void add_refresh_hint(Value& out) {
    int64_t from = refresh_from_s.load(std::memory_order_relaxed);
    if (from != INT64_MAX && system_clock().now_s() > from)
      out.as_map().push_back(cbor::entry("refresh_credentials", Value::boolean(true)));
  }

  Value op_describe(const Call&) {
    cbor::MapEntries pcrs;
    for (const auto& [i, v] : boot_pcrs) pcrs.push_back(cbor::entry(i, Value::bytes(v)));
    cbor::Array key_list, art_list;
    for (const auto& k : keys.list())
      key_list.push_back(Value::map({cbor::entry("handle", Value::text(k.handle)), cbor::entry("key_id", Value::text(k.key_id))}));
    for (const auto& a : artifacts.list())
      art_list.push_back(Value::map({cbor::entry("handle", Value::text(a.handle)), cbor::entry("name", Value::text(a.name)),
                                     cbor::entry("kind", Value::text(kind_name(a.kind))), cbor::entry("size", Value::uint(a.size))}));
    return Value::map({cbor::entry("version", Value::text(version())), cbor::entry("module_id", Value::text(module_id)),
                       cbor::entry("digest", Value::text(digest)), cbor::entry("pcrs", Value::map(std::move(pcrs))),
                       cbor::entry("keys", Value::array(std::move(key_list))),
                       cbor::entry("artifacts", Value::array(std::move(art_list))),
                       cbor::entry("credentials", credentials_value())});
  }

  Value credentials_value() {
    std::lock_guard<std::mutex> lock(cred_mu);
    bool present = creds.has_value();
    Value expires = present && creds->expiration ? Value::integer(*creds->expiration) : Value::null();
    bool refresh = !present || (creds->expiration && *creds->expiration - system_clock().now_s() < opts.credentials_refresh_margin_s);
    return Value::map({cbor::entry("present", Value::boolean(present)), cbor::entry("expires_at", expires),
                       cbor::entry("refresh_needed", Value::boolean(refresh))});
  }

  Value op_attest(const Call& c) {
    // Any challenge the NSM takes (1-512 bytes); only a 32-byte one can later open a channel.
    ByteView nonce = bytes_field(c.body, "nonce");
    if (nonce.empty() || nonce.size() > kMaxAttestNonce)
      throw Error(Errc::kFormat, "attest: nonce must be 1-512 bytes, got " + std::to_string(nonce.size()));
    nsm::AttestationRequest req;
    req.nonce = to_bytes(nonce);
    if (const Value* ud = c.body.find("user_data"); ud && !ud->is_null()) req.user_data = to_bytes(bytes_field(c.body, "user_data"));
    auto key = channels.current_key();
    req.public_key = key.spki;
    Bytes doc = nsm->attestation(req);
    if (nonce.size() == channel::kNonceSize) channels.remember_attestation(nonce, doc, key);
    return Value::map({cbor::entry("document", Value::bytes(std::move(doc)))});
  }

  // Version negotiation (docs/protocol.md): the client offers "versions"; only 2 is spoken, so
  // an SDK that offers none (version 1) or no 2 gets a refusal that says to upgrade.
  Value op_channel_open(const Call& c) {
    ByteView nonce = bytes_field(c.body, "nonce");  // malformed fields first: a format error names them
    ByteView client_public = bytes_field(c.body, "client_public");
    std::vector<uint64_t> offered;
    if (const Value* v = c.body.find("versions"); v && v->is(cbor::Type::kArray))
      for (const Value& x : v->as_array())
        if (x.is(cbor::Type::kUnsigned)) offered.push_back(x.as_uint());
    uint64_t pad = 0;
    if (const Value* p = c.body.find("pad"); p && !p->is_null()) {
      if (!p->is(cbor::Type::kUnsigned)) throw Error(Errc::kUsage, "channel-open: 'pad' must be an unsigned integer");
      pad = p->as_uint();
    }
    channel::ChannelParams params = channel::negotiate(offered, pad);
    auto box = channels.open(nonce, client_public, params);
    return Value::map({cbor::entry("session", Value::bytes(box->session_id())),
                       cbor::entry("version", Value::uint(params.version)),
                       cbor::entry("pad", Value::uint(params.pad_bucket))});
  }

  // Per worker (and event-loop) thread, wiped however the request ends.
  struct WipeAfter {
    SealedScratch& s;
    ~WipeAfter() { s.wipe(); }
  };
  static SealedScratch& scratch() {
    thread_local SealedScratch s;
    return s;
  }

  Value op_sealed(const Call& c) {
    if (c.in_channel) throw Error(Errc::kUsage, "sealed requests do not nest");
    auto box = channels.find(bytes_field(c.body, "session"));
    if (!box) throw Error(Errc::kVerify, "unknown or closed channel session");
    SealedScratch& s = scratch();
    WipeAfter wipe_after{s};
    uint64_t seq = 0;
    box->open_into(bytes_field(c.body, "data"), s.request, &seq);  // in wire order (waits for its turn)
    return reply_sealed(*box, seq, s.request.view(), nullptr);
  }

  // The event loop's part of `sealed` (net::FastPath): it reads each connection's records in
  // wire order, so it accepts a record in its turn without waiting (try_open_into) and without
  // workers taking turns. A small AEAD op inside is answered here; any other op finishes on a
  // worker with the opened request. A record whose predecessor is still outstanding (e.g. on
  // another connection), and a large one, go to op_sealed on a worker.
  net::FastOutcome fast_sealed(const Op& sealed_op, const Value& body) {
    int64_t t0 = monotonic_ns();
    try {
      if (!body.is(cbor::Type::kMap)) throw Error(Errc::kFormat, "request body must be a map");
      auto box = channels.find(bytes_field(body, "session"));
      if (!box) throw Error(Errc::kVerify, "unknown or closed channel session");
      ByteView record = bytes_field(body, "data");
      SealedScratch& s = scratch();
      WipeAfter wipe_after{s};
      uint64_t seq = 0;
      // Not answered here: stats are kept where it is (op_sealed, or the worker below).
      if (record.size() > kFastBytes + 1024 || !box->try_open_into(record, s.request, &seq))
        return net::FastOutcome::defer();
      std::optional<cbor::SecretValue> inner;
      try {
        inner.emplace(cbor::decode_borrowed(s.request.view()));
      } catch (const Error&) {
        // reply_sealed decodes again and answers the error, sealed
      }
      if (inner && !cheap_inner(**inner)) {
        inner.reset();  // it borrows from s.request, which moves
        auto opened = std::make_shared<SecureBytes>(std::move(s.request));  // wiped when dropped
        return net::FastOutcome::finish_on_worker([this, &sealed_op, box, seq, opened](net::RequestContext&) {
          return net::Response::success(timed(sealed_op, [&] { return reply_sealed(*box, seq, opened->view(), nullptr); }));
        });
      }
      Value reply = reply_sealed(*box, seq, s.request.view(), inner ? &**inner : nullptr);
      return net::FastOutcome::answer(net::Response::success(answered(sealed_op, t0, std::move(reply))));
    } catch (const Error& e) {
      refused(sealed_op, t0, e);
      throw;
    }
  }

  // An inner request that is answered at once: a small AEAD op, or one refused without work.
  bool cheap_inner(const Value& req) const {
    const Value* op = req.find("op");
    const Value* body = req.find("body");
    if (!op || !op->is(cbor::Type::kText) || !body) return true;
    const Op* o = find_op(op->as_text());
    return !o || small_input(*o, *body);
  }

  // Runs the opened request `inner` (decoded already, or null) and seals the reply to seq.
  Value reply_sealed(channel::SealedBox& box, uint64_t seq, ByteView inner, const Value* decoded) {
    SealedScratch& s = scratch();
    Bytes sealed;
    sealed_reply(inner, decoded, s.reply);
    box.seal_reply_into(seq, s.reply, sealed);  // replies carry their request's seq
    secure_wipe(s.reply.data(), s.reply.size());
    s.reply.clear();
    return cbor::map_of(cbor::entry("data", Value::bytes(std::move(sealed))));
  }

  // Decodes (unless given), runs and encodes one request from inside the channel into out
  // (which the caller seals and wipes); its errors stay sealed.
  // The request and the reply body are SecretValues (they carry plaintext, credentials):
  // wiped however this returns. The request's byte strings are borrowed from inner.
  void sealed_reply(ByteView inner, const Value* decoded, Bytes& out) {
    size_t stat = sealed_stat;  // a made-up name counts under "sealed": names never grow the stats
    int64_t t0 = monotonic_ns();
    try {
      cbor::SecretValue owned;
      if (!decoded) {
        owned = cbor::SecretValue(cbor::decode_borrowed(inner));
        decoded = &*owned;
      }
      std::string_view name = text_field(*decoded, "op");
      const Op* op = find_op(name);
      if (!op) throw Error(Errc::kUnsupported, "unknown operation '" + std::string(name) + "'");  // as net::Server says
      stat = op->stat;
      cbor::SecretValue body(dispatch(*op, Call{field(*decoded, "body"), nullptr, true}));
      add_refresh_hint(body.value());
      // {"ok": true, "body": body}, written straight into the buffer to be sealed, reserved
      // first: growing it would leave partial copies of the reply in freed memory.
      out.reserve(1 + 3 + 1 + 5 + cbor::encoded_size(*body));
      cbor::Writer w(out);
      w.begin_map(2);
      w.text("ok");
      w.boolean(true);
      w.text("body");
      cbor::encode_append(*body, out);
      stats.record(stat, monotonic_ns() - t0, true);
    } catch (const Error& e) {
      stats.record(stat, monotonic_ns() - t0, false);
      secure_wipe(out.data(), out.size());
      out.clear();
      cbor::encode_append(cbor::map_of(cbor::entry("ok", Value::boolean(false)),
                                 cbor::entry("error", error_value(e.code(), e.what()))),
                          out);
    }
  }

  Value op_set_credentials(const Call& c) {
    PushedCredentials p;
    p.access_key_id = std::string(text_field(c.body, "access_key_id"));
    p.secret_access_key = SecureBytes(as_bytes(text_field(c.body, "secret_access_key")));
    p.session_token = SecureBytes(as_bytes(optional_text(c.body, "session_token")));
    if (const Value* e = c.body.find("expiration"); e && !e->is_null()) {
      // Unsigned only: a negative time would overflow the "expires within" arithmetic.
      if (!e->is(cbor::Type::kUnsigned)) throw Error(Errc::kFormat, "field 'expiration' must be an unsigned integer (Unix seconds)");
      p.expiration = e->as_int();
    }
    if (p.access_key_id.empty() || p.secret_access_key.empty()) throw Error(Errc::kFormat, "set-credentials: empty access key");
    Value expires = p.expiration ? Value::integer(*p.expiration) : Value::null();
    std::lock_guard<std::mutex> lock(cred_mu);
    refresh_from_s.store(p.expiration ? *p.expiration - opts.credentials_refresh_margin_s : INT64_MAX);
    creds = std::move(p);
    return Value::map({cbor::entry("expires_at", expires)});
  }

  PushedCredentials current_credentials() {
    std::lock_guard<std::mutex> lock(cred_mu);
    if (!creds) throw Error(Errc::kEnvironment, "no AWS credentials: push them with set-credentials first");
    if (creds->expiration && *creds->expiration <= system_clock().now_s())
      throw Error(Errc::kEnvironment, "the pushed AWS credentials have expired: push fresh ones with set-credentials");
    PushedCredentials copy;
    copy.access_key_id = creds->access_key_id;
    copy.secret_access_key = creds->secret_access_key.clone();
    copy.session_token = creds->session_token.clone();
    copy.expiration = creds->expiration;
    return copy;
  }

  // KMS Decrypt with a Recipient, within the release policy (load-key, and sealed artifacts).
  ReleasedKey release_key(const ReleaseRequest& req) {
    opts.policy.check_load_key(req.key_id, req.encryption_context);
    ReleasedKey released = releaser->release(req, current_credentials());
    opts.policy.check_released_key(released.key_arn);
    return released;
  }

  Value op_load_key(const Call& c) {
    ReleaseRequest req;
    req.ciphertext_blob = to_bytes(bytes_field(c.body, "ciphertext_blob"));
    req.key_id = optional_text(c.body, "key_id");
    req.encryption_context = context_field(c.body);
    ReleasedKey released = release_key(req);
    std::string handle = keys.add(std::move(released.plaintext), released.key_arn);
    return Value::map({cbor::entry("handle", Value::text(handle)), cbor::entry("key_id", Value::text(released.key_arn))});
  }

  Value op_load_artifact(const Call& c) {
    ArtifactKind kind = parse_kind(std::string(text_field(c.body, "kind")));
    std::string name(text_field(c.body, "name"));
    std::vector<std::string> models;
    if (const Value* m = c.body.find("models"); m && !m->is_null()) {
      if (!m->is(cbor::Type::kArray)) throw Error(Errc::kFormat, "field 'models' must be an array of handles");
      for (const auto& h : m->as_array()) models.push_back(h.as_text());
    }
    opts.policy.check_artifact(kind == ArtifactKind::kCode, 0);
    std::optional<shield::Shield> s;  // none: a sealed file, whose header names its KMS key
    if (const Value* k = c.body.find("key"); k && !k->is_null()) s = keys.shield_for(text_field(c.body, "key"));
    auto release = [this](const sealed::Header& h) {
      return release_key({h.ciphertext_blob, h.key_id, {h.context.begin(), h.context.end()}}).plaintext;
    };
    std::optional<uint64_t> announced;  // the sealed size, if the sender knows it: one allocation
    if (const Value* z = c.body.find("size"); z && !z->is_null()) {
      if (!z->is(cbor::Type::kUnsigned)) throw Error(Errc::kFormat, "field 'size' must be an unsigned integer");
      announced = z->as_uint();
    }
    ArtifactUpload upload(std::move(s), release, opts.policy.max_artifact_bytes(), announced, opts.artifact_workers);
    if (const Value* d = c.body.find("data"); d && !d->is_null()) upload.push(bytes_field(c.body, "data"));
    if (c.net && c.net->streaming()) {
      while (auto part = c.net->next_part()) upload.push_part(std::move(*part));  // lent, not copied
    }
    SecureBytes plaintext = upload.finish();
    opts.policy.check_artifact(kind == ArtifactKind::kCode, plaintext.size());
    uint64_t size = plaintext.size();
    std::string handle = kind == ArtifactKind::kModel ? artifacts.add_model(name, std::move(plaintext))
                                                      : artifacts.add_code(name, plaintext, models);
    return Value::map({cbor::entry("handle", Value::text(handle)), cbor::entry("kind", Value::text(kind_name(kind))),
                       cbor::entry("name", Value::text(name)), cbor::entry("size", Value::uint(size))});
  }

  Value op_encrypt(const Call& c) {
    Bytes ct = keys.shield_for(text_field(c.body, "key")).encrypt(bytes_field(c.body, "plaintext"));
    return cbor::map_of(cbor::entry("ciphertext", Value::bytes(std::move(ct))));
  }

  Value op_decrypt(const Call& c) {
    SecureBytes pt = keys.shield_for(text_field(c.body, "key")).decrypt(bytes_field(c.body, "ciphertext"));
    return cbor::map_of(cbor::entry("plaintext", Value::bytes(pt.view())));
  }

  Value op_invoke(const Call& c) {
    auto plugin = artifacts.plugin(std::string(text_field(c.body, "artifact")));
    SecureBytes out = plugin->invoke(bytes_field(c.body, "input"));
    return cbor::map_of(cbor::entry("output", Value::bytes(out.view())));
  }

  Value op_unload(const Call& c) {
    std::string handle(text_field(c.body, "handle"));
    if (!keys.remove(handle) && !artifacts.remove(handle))
      throw Error(Errc::kNotFound, "nothing loaded under handle '" + handle + "'");
    return Value::map();
  }

  Value op_stats(const Call&) {
    cbor::MapEntries requests, errors, latency;
    for (const auto& [op, s] : stats.summary()) {
      requests.push_back(cbor::entry(op, Value::uint(s.requests)));
      errors.push_back(cbor::entry(op, Value::uint(s.errors)));
      latency.push_back(cbor::entry(op, Value::map({cbor::entry("p50", Value::floating(s.p50_us)),
                                                     cbor::entry("p99", Value::floating(s.p99_us))})));
    }
    auto ns = server.stats();
    return Value::map({cbor::entry("uptime_ms", Value::integer(system_clock().now_ms() - started_ms)),
                       cbor::entry("requests", Value::map(std::move(requests))),
                       cbor::entry("errors", Value::map(std::move(errors))),
                       cbor::entry("latency_us", Value::map(std::move(latency))),
                       cbor::entry("connections", Value::uint(ns.connections_open)),
                       cbor::entry("connections_refused", Value::uint(ns.connections_refused)),
                       cbor::entry("connections_dropped", Value::uint(ns.connections_dropped)),
                       cbor::entry("buffered_reply_bytes", Value::uint(ns.buffered_output_bytes)),
                       cbor::entry("sessions", Value::uint(channels.session_count()))});
  }
};

EnclaveService::EnclaveService(std::unique_ptr<nsm::NsmClient> nsm, std::unique_ptr<KeyReleaser> releaser,
                               ServiceOptions options)
    : impl_(std::make_unique<Impl>(std::move(nsm), std::move(releaser), std::move(options))) {}

EnclaveService::~EnclaveService() { stop(); }

void EnclaveService::start() { impl_->server.start(); }

Value EnclaveService::handle(const std::string& op, const Value& body, net::RequestContext& context) {
  const Impl::Op* o = impl_->find_op(op);
  if (!o) throw Error(Errc::kUnsupported, "unknown operation '" + op + "'");
  return impl_->serve(*o, body, context);
}

void EnclaveService::stop() {
  if (impl_) impl_->server.stop();
}

const net::Endpoint& EnclaveService::endpoint() const { return impl_->server.endpoint(); }

}  // namespace shield_nitro::enclave
