#include "shield_nitro/enclave/service.h"

#include <map>
#include <mutex>

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
const Bytes& bytes_field(const Value& body, const char* name) {
  const Value& v = field(body, name);
  if (!v.is(cbor::Type::kBytes)) throw Error(Errc::kFormat, std::string("field '") + name + "' must be a byte string");
  return v.as_bytes();
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
  };

  std::unique_ptr<nsm::NsmClient> nsm;
  std::unique_ptr<KeyReleaser> releaser;
  ServiceOptions opts;
  net::Server server;
  channel::ChannelServer channels;
  KeyStore keys;
  ArtifactStore artifacts;
  OpStats stats;
  std::map<std::string, Op> ops;
  std::mutex cred_mu;
  std::optional<PushedCredentials> creds;
  int64_t started_ms = system_clock().now_ms();
  std::string module_id, digest;
  std::map<uint16_t, Bytes> boot_pcrs;  // PCRs 0-15: fixed for the enclave's life

  Impl(std::unique_ptr<nsm::NsmClient> n, std::unique_ptr<KeyReleaser> r, ServiceOptions o)
      : nsm(std::move(n)), releaser(std::move(r)), opts(std::move(o)), server(opts.listen, opts.server) {
    auto d = nsm->describe_nsm();
    module_id = d.module_id;
    digest = d.digest;
    for (uint16_t i = 0; i < 16; ++i) boot_pcrs[i] = nsm->describe_pcr(i).data;
    ops = {{"describe", {&Impl::op_describe, false}},     {"attest", {&Impl::op_attest, false}},
           {"channel-open", {&Impl::op_channel_open, false}}, {"sealed", {&Impl::op_sealed, false}},
           {"set-credentials", {&Impl::op_set_credentials, false}}, {"load-key", {&Impl::op_load_key, false}},
           {"load-artifact", {&Impl::op_load_artifact, false}}, {"encrypt", {&Impl::op_encrypt, false}},
           {"unload", {&Impl::op_unload, false}},          {"stats", {&Impl::op_stats, false}},
           {"invoke", {&Impl::op_invoke, true}},           {"decrypt", {&Impl::op_decrypt, true}}};
    for (const auto& [name, op] : ops) {
      std::string op_name = name;
      server.handle(name, [this, op_name](const net::Request& req, net::RequestContext& ctx) {
        return net::Response::success(serve(op_name, req.body, ctx));
      });
    }
  }

  // Runs one plain (unsealed) request, with stats and the credential-refresh hint.
  Value serve(const std::string& name, const Value& body, net::RequestContext& ctx) {
    int64_t t0 = monotonic_ns();
    try {
      Value out = dispatch(name, Call{body, &ctx, false});
      add_refresh_hint(out);
      stats.record(name, monotonic_ns() - t0, true);
      return out;
    } catch (const Error& e) {
      stats.record(name, monotonic_ns() - t0, false);
      log_info(name + " refused: " + e.what());
      throw;
    }
  }

  Value dispatch(const std::string& name, const Call& call) {
    auto it = ops.find(name);
    if (it == ops.end()) throw Error(Errc::kUnsupported, "unknown operation '" + name + "'");  // as net::Server says
    if (it->second.channel_only && !call.in_channel)
      throw Error(Errc::kPolicy, "'" + name + "' returns plaintext, so it is answered only inside the attested channel");
    if (!call.body.is(cbor::Type::kMap)) throw Error(Errc::kFormat, "request body must be a map");
    return (this->*(it->second.fn))(call);
  }

  void add_refresh_hint(Value& out) {
    std::lock_guard<std::mutex> lock(cred_mu);
    if (creds && creds->expiration && *creds->expiration - system_clock().now_s() < opts.credentials_refresh_margin_s)
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
    const Bytes& nonce = bytes_field(c.body, "nonce");
    if (nonce.empty() || nonce.size() > kMaxAttestNonce)
      throw Error(Errc::kFormat, "attest: nonce must be 1-512 bytes, got " + std::to_string(nonce.size()));
    nsm::AttestationRequest req;
    req.nonce = nonce;
    if (const Value* ud = c.body.find("user_data"); ud && !ud->is_null()) req.user_data = bytes_field(c.body, "user_data");
    auto key = channels.current_key();
    req.public_key = key.spki;
    Bytes doc = nsm->attestation(req);
    if (nonce.size() == channel::kNonceSize) channels.remember_attestation(nonce, doc, key);
    return Value::map({cbor::entry("document", Value::bytes(std::move(doc)))});
  }

  // Version negotiation (docs/protocol.md): the client offers "versions"; only 2 is spoken, so
  // an SDK that offers none (version 1) or no 2 gets a refusal that says to upgrade.
  Value op_channel_open(const Call& c) {
    const Bytes& nonce = bytes_field(c.body, "nonce");  // malformed fields first: a format error names them
    const Bytes& client_public = bytes_field(c.body, "client_public");
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

  Value op_sealed(const Call& c) {
    if (c.in_channel) throw Error(Errc::kUsage, "sealed requests do not nest");
    auto box = channels.find(bytes_field(c.body, "session"));
    if (!box) throw Error(Errc::kVerify, "unknown or closed channel session");
    thread_local SealedScratch scratch;
    struct WipeAfter {
      SealedScratch& s;
      ~WipeAfter() { s.wipe(); }
    } wipe_after{scratch};  // however this returns
    Bytes sealed;
    uint64_t seq = 0;
    box->open_into(bytes_field(c.body, "data"), scratch.request, &seq);  // in wire order
    sealed_reply(scratch.request.view(), scratch.reply);
    box->seal_reply_into(seq, scratch.reply, sealed);  // replies carry their request's seq
    return cbor::map_of(cbor::entry("data", Value::bytes(std::move(sealed))));
  }

  // Decodes, runs and encodes one request from inside the channel into out (which the caller
  // seals and wipes); its errors stay sealed.
  // The request and the reply body are SecretValues (they carry plaintext, credentials):
  // wiped however this returns.
  void sealed_reply(ByteView inner, Bytes& out) {
    std::string name = "sealed";
    int64_t t0 = monotonic_ns();
    try {
      cbor::SecretValue req = cbor::decode_secret(inner);
      std::string op(text_field(*req, "op"));
      // Stats are keyed by known ops only: a peer's made-up names must not grow the map.
      if (ops.count(op)) name = op;
      cbor::SecretValue body(dispatch(op, Call{field(*req, "body"), nullptr, true}));
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
      stats.record(name, monotonic_ns() - t0, true);
    } catch (const Error& e) {
      stats.record(name, monotonic_ns() - t0, false);
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

  Value op_load_key(const Call& c) {
    ReleaseRequest req;
    req.ciphertext_blob = bytes_field(c.body, "ciphertext_blob");
    req.key_id = optional_text(c.body, "key_id");
    req.encryption_context = context_field(c.body);
    opts.policy.check_load_key(req.key_id, req.encryption_context);
    ReleasedKey released = releaser->release(req, current_credentials());
    opts.policy.check_released_key(released.key_arn);
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
    shield::Shield s = keys.shield_for(text_field(c.body, "key"));
    std::optional<uint64_t> announced;  // the sealed size, if the sender knows it: one allocation
    if (const Value* z = c.body.find("size"); z && !z->is_null()) {
      if (!z->is(cbor::Type::kUnsigned)) throw Error(Errc::kFormat, "field 'size' must be an unsigned integer");
      announced = z->as_uint();
    }
    ArtifactUpload upload(s, opts.policy.max_artifact_bytes(), announced, opts.artifact_workers);
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
  if (!impl_->ops.count(op)) throw Error(Errc::kUnsupported, "unknown operation '" + op + "'");
  return impl_->serve(op, body, context);
}

void EnclaveService::stop() {
  if (impl_) impl_->server.stop();
}

const net::Endpoint& EnclaveService::endpoint() const { return impl_->server.endpoint(); }

}  // namespace shield_nitro::enclave
