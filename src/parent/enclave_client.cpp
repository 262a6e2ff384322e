#include "shield_nitro/parent/enclave_client.h"

#include "client_impl.h"
#include "shield_nitro/channel/handshake.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/core/pcr.h"

namespace shield_nitro::parent {

using cbor::Value;

namespace {

const Bytes& bytes_in(const Value& body, std::string_view op, const char* name) {
  const Value* v = body.find(name);
  if (!v || !v->is(cbor::Type::kBytes))
    throw Error(Errc::kFormat, std::string(op) + ": response lacks the byte string '" + name + "'");
  return v->as_bytes();
}

std::string text_in(const Value& body, std::string_view op, const char* name) {
  const Value* v = body.find(name);
  if (!v || !v->is(cbor::Type::kText)) throw Error(Errc::kFormat, std::string(op) + ": response lacks the text '" + name + "'");
  return v->as_text();
}

// The enclave's answer to the handshake must name the session we derived; compared in
// constant time (a mismatch means a different enclave key or a tampered exchange).
void check_session(const Value& opened, const Bytes& expected) {
  const Value* s = opened.find("session");
  if (!s || !s->is(cbor::Type::kBytes) || !ct_equal(s->as_bytes(), expected))
    throw Error(Errc::kVerify, "channel-open: the enclave derived a different session (wrong key or tampered handshake)");
}

}  // namespace

void check_channel_policy(const attest::Policy& policy, Unpinned unpinned) {
  for (const auto& [index, values] : policy.pcrs) {
    check_pcr(index, kPcrSize);
    if (values.empty()) throw Error(Errc::kUsage, "policy: PCR" + std::to_string(index) + " is pinned to no value");
    for (const Bytes& v : values) check_pcr(index, v.size());
  }
  if (unpinned == Unpinned::kAcceptForExperiments || policy.pcrs.count(0) || policy.pcrs.count(8)) return;
  throw Error(Errc::kUsage, "open_channel: the policy pins neither PCR0 nor PCR8, so any enclave would get the "
                            "plaintext: pin one (policy.expect_pcr(0, pcr0)) or, for experiments only, pass "
                            "Unpinned::kAcceptForExperiments");
}

// ---------------- Impl plumbing ----------------

Value EnclaveClient::Impl::call_plain(std::string_view op, Value body) {
  Value out = conn->call(op, std::move(body));
  if (op != "sealed") maybe_refresh(out);
  return out;
}

cbor::SecretValue EnclaveClient::Impl::exchange_sealed(detail::SealedChannel& ch, std::string_view op,
                                                       const cbor::SecretValue& body) {
  // The enclave accepts requests in seq order, so taking the seq and writing the frame happen
  // under one lock; the reply is awaited outside it (calls stay pipelined).
  uint64_t seq = 0;
  std::future<net::Response> pending;
  {
    std::lock_guard send_lock(ch.send_mutex());
    Bytes sealed = ch.seal_request(op, body, seq);
    pending = conn->request_async("sealed", Value::map({cbor::entry("session", Value::bytes(ch.info().session_id)),
                                                        cbor::entry("data", Value::bytes(std::move(sealed)))}));
  }
  net::Response r = pending.get();
  if (!r.ok) throw Error(r.code, r.message.rfind("sealed: ", 0) == 0 ? r.message : "sealed: " + r.message);
  const Value& outer = r.body;
  return ch.open_reply(op, bytes_in(outer, op, "data"), seq);
}

cbor::SecretValue EnclaveClient::Impl::call_sealed(detail::SealedChannel& ch, std::string_view op, cbor::SecretValue body) {
  cbor::SecretValue result = exchange_sealed(ch, op, body);
  maybe_refresh(*result);
  return result;
}

Value EnclaveClient::Impl::call_any(std::string_view op, Value body) {
  // The caller asked for a plain Value: it owns the result (encrypt's ciphertext, unload's {}).
  if (auto ch = current_channel()) return std::move(call_sealed(*ch, op, cbor::SecretValue(std::move(body))).value());
  return call_plain(op, std::move(body));
}

std::shared_ptr<detail::SealedChannel> EnclaveClient::Impl::current_channel() const {
  std::lock_guard lock(mu);
  return channel;
}

std::shared_ptr<detail::SealedChannel> EnclaveClient::Impl::require_channel(std::string_view op) const {
  auto ch = current_channel();
  if (!ch) throw Error(Errc::kUsage, std::string(op) + " returns plaintext, so it runs only inside the attested channel: open_channel() first");
  return ch;
}

// ---------------- connection ----------------

EnclaveClient::EnclaveClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EnclaveClient::~EnclaveClient() = default;

std::unique_ptr<EnclaveClient> EnclaveClient::connect(const net::Endpoint& endpoint, ClientOptions options) {
  if (options.chunk_size == 0 || options.chunk_size > options.max_frame / 2)
    throw Error(Errc::kUsage, "chunk_size must be 1 byte to half the frame limit (" + std::to_string(options.max_frame / 2) + ")");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  net::ClientOptions net_options;
  net_options.connect_timeout = options.connect_timeout;
  net_options.call_timeout = options.call_timeout;
  net_options.max_frame = options.max_frame;
  impl->conn = std::make_unique<net::Client>(endpoint, net_options);
  return std::unique_ptr<EnclaveClient>(new EnclaveClient(std::move(impl)));
}

std::unique_ptr<EnclaveClient> EnclaveClient::connect(std::string_view endpoint, ClientOptions options) {
  return connect(net::Endpoint::parse(endpoint), options);
}

net::Client& EnclaveClient::connection() { return *impl_->conn; }

void EnclaveClient::close() { impl_->conn->close(); }

// ---------------- attestation and channel ----------------

Value EnclaveClient::describe() { return impl_->call_plain("describe", Value::map()); }
Value EnclaveClient::stats() { return impl_->call_plain("stats", Value::map()); }

Bytes EnclaveClient::attest(ByteView nonce, std::optional<Bytes> user_data) {
  if (nonce.size() < kMinNonceSize || nonce.size() > kMaxNonceSize)
    throw Error(Errc::kUsage, "attest: the nonce must be 1..512 bytes, got " + std::to_string(nonce.size()));
  cbor::MapEntries body{cbor::entry("nonce", Value::bytes(nonce))};
  if (user_data) body.push_back(cbor::entry("user_data", Value::bytes(std::move(*user_data))));
  Value out = impl_->call_plain("attest", Value::map(std::move(body)));
  return bytes_in(out, "attest", "document");
}

attest::Claims EnclaveClient::attest_and_verify(const attest::Policy& policy, const attest::TrustAnchor& anchor,
                                                std::optional<Bytes> user_data, Bytes* document_out) {
  Bytes nonce = os_random().bytes(channel::kNonceSize);
  Bytes document = attest(nonce, std::move(user_data));
  attest::Policy p = policy;
  p.nonce = nonce;  // a replayed older document fails here
  attest::Claims claims = impl_->verifier_for(anchor)->verify(document, p);
  if (document_out) *document_out = std::move(document);
  return claims;
}

std::shared_ptr<const attest::Verifier> EnclaveClient::Impl::verifier_for(const attest::TrustAnchor& anchor) {
  std::lock_guard lock(mu);
  if (!verifier || verifier->anchor().der() != anchor.der()) verifier = std::make_shared<const attest::Verifier>(anchor);
  return verifier;
}

const ChannelInfo& EnclaveClient::open_channel(const attest::Policy& policy, const attest::TrustAnchor& anchor,
                                               Unpinned unpinned) {
  return open_channel(policy, anchor, ChannelOptions{unpinned, 0});
}

const ChannelInfo& EnclaveClient::open_channel(const attest::Policy& policy, const attest::TrustAnchor& anchor,
                                               const ChannelOptions& options) {
  check_channel_policy(policy, options.unpinned);  // before any request: nothing goes to an unnamed enclave
  if (options.pad > channel::kMaxPadBucket)
    throw Error(Errc::kUsage, "open_channel: pad must be 0.." + std::to_string(channel::kMaxPadBucket) + ", got " +
                                  std::to_string(options.pad));
  channel::ClientHandshake hs;
  Bytes document = attest(hs.nonce());
  attest::Policy p = policy;
  p.nonce = hs.nonce();
  attest::Claims claims = impl_->verifier_for(anchor)->verify(document, p);
  if (!claims.public_key.has_value())
    throw Error(Errc::kVerify, "open_channel: the attestation document carries no public key to agree a channel with");
  const channel::ChannelParams params{channel::kChannelVersion, options.pad};
  channel::ClientHandshake::Opened opened = hs.finish(document, claims.public_key.value, params);
  // Offers channel version 2 only; the keys bind it and the padding, so a relay that changes
  // either gets another session id (check_session refuses it).
  Value answer = impl_->call_plain(
      "channel-open", Value::map({cbor::entry("nonce", Value::bytes(hs.nonce())),
                                  cbor::entry("client_public", Value::bytes(opened.client_public)),
                                  cbor::entry("versions", Value::array({Value::uint(channel::kChannelVersion)})),
                                  cbor::entry("pad", Value::uint(options.pad))}));
  check_session(answer, opened.keys.session_id);
  ChannelInfo info{opened.keys.session_id, std::move(document), std::move(claims), options.pad};
  auto ch = std::make_shared<detail::SealedChannel>(opened.keys, std::move(info));
  std::lock_guard lock(impl_->mu);
  impl_->channel = ch;
  return ch->info();  // the object stays alive while it is the client's channel
}

bool EnclaveClient::channel_open() const { return impl_->current_channel() != nullptr; }

ChannelInfo EnclaveClient::channel_info() const { return impl_->require_channel("channel_info")->info(); }

// ---------------- keys and data ----------------

KeyHandle EnclaveClient::load_key(ByteView ciphertext_blob, const std::string& key_id, const EncryptionContext& context) {
  auto body = [&] {
    cbor::MapEntries b{cbor::entry("ciphertext_blob", Value::bytes(ciphertext_blob))};
    if (!key_id.empty()) b.push_back(cbor::entry("key_id", Value::text(key_id)));
    if (!context.empty()) {
      cbor::MapEntries ctx;
      for (const auto& [k, v] : context) ctx.push_back(cbor::entry(k, Value::text(v)));
      b.push_back(cbor::entry("encryption_context", Value::map(std::move(ctx))));
    }
    return Value::map(std::move(b));
  };
  Value out;
  try {
    out = impl_->call_plain("load-key", body());
  } catch (const Error& e) {
    auto p = impl_->current_provider();
    if (e.code() != Errc::kEnvironment || !p) throw;
    impl_->push_fresh(*p);  // the enclave has no (valid) credentials: push, then retry once
    out = impl_->call_plain("load-key", body());
  }
  return {text_in(out, "load-key", "handle"), text_in(out, "load-key", "key_id")};
}

Bytes EnclaveClient::encrypt(const std::string& key_handle, ByteView plaintext) {
  Value out = impl_->call_any("encrypt", Value::map({cbor::entry("key", Value::text(key_handle)),
                                                      cbor::entry("plaintext", Value::bytes(plaintext))}));
  return bytes_in(out, "encrypt", "ciphertext");
}

SecureBytes EnclaveClient::decrypt(const std::string& key_handle, ByteView ciphertext) {
  auto ch = impl_->require_channel("decrypt");
  cbor::SecretValue out = impl_->call_sealed(*ch, "decrypt", cbor::SecretValue(cbor::map_of(
      cbor::entry("key", Value::text(key_handle)), cbor::entry("ciphertext", Value::bytes(ciphertext)))));
  return detail::take_secret(out, "decrypt", "plaintext");
}

SecureBytes EnclaveClient::invoke(const std::string& artifact_handle, ByteView input) {
  auto ch = impl_->require_channel("invoke");
  cbor::SecretValue out = impl_->call_sealed(*ch, "invoke", cbor::SecretValue(cbor::map_of(
      cbor::entry("artifact", Value::text(artifact_handle)), cbor::entry("input", Value::bytes(input)))));
  return detail::take_secret(out, "invoke", "output");
}

void EnclaveClient::unload(const std::string& handle) {
  impl_->call_any("unload", Value::map({cbor::entry("handle", Value::text(handle))}));
}

Value EnclaveClient::call(std::string_view op, Value body) { return impl_->call_any(op, std::move(body)); }

}  // namespace shield_nitro::parent
