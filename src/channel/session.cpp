#include "shield_nitro/channel/session.h"

#include <openssl/evp.h>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/hkdf.h"

namespace shield_nitro::channel {
namespace {

void put_prefixed(Bytes& out, ByteView part) {
  put_u32be(out, static_cast<uint32_t>(part.size()));
  out.insert(out.end(), part.begin(), part.end());
}

std::string info(std::string_view purpose) { return std::string(kLabel) + " " + std::string(purpose); }

}  // namespace

Bytes transcript_hash(ByteView nonce, ByteView document, ByteView client_public_raw) {
  Bytes t;
  put_prefixed(t, as_bytes(kLabel));
  put_prefixed(t, nonce);
  put_prefixed(t, document);
  put_prefixed(t, client_public_raw);
  Bytes digest(32);
  unsigned int len = 0;
  if (EVP_Digest(t.data(), t.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1) throw_openssl("SHA-256 failed");
  return digest;
}

SessionKeys derive_session_keys(ByteView shared_secret, ByteView transcript) {
  SessionKeys k;
  k.client_to_enclave = hkdf_sha256(shared_secret, transcript, as_bytes(info("client->enclave")), 32);
  k.enclave_to_client = hkdf_sha256(shared_secret, transcript, as_bytes(info("enclave->client")), 32);
  SecureBytes id = hkdf_sha256(shared_secret, transcript, as_bytes(info("session id")), kSessionIdSize);
  k.session_id = to_bytes(id.view());
  return k;
}

namespace {
shield::Shield direction(const SecureBytes& key) {
  return shield::Shield::with_key(shield::ShieldKey::from_bytes(key.view()));
}
}  // namespace

SealedBox::SealedBox(const SessionKeys& keys, Role role)
    : send_(direction(role == Role::kClient ? keys.client_to_enclave : keys.enclave_to_client)),
      recv_(direction(role == Role::kClient ? keys.enclave_to_client : keys.client_to_enclave)),
      session_id_(keys.session_id) {}

Bytes SealedBox::seal(ByteView payload) {
  Bytes out;
  seal_into(payload, out);
  return out;
}

void SealedBox::seal_into(ByteView payload, Bytes& out) {
  // relaxed: the counter only has to hand out each value once; nothing else is ordered by it.
  const uint64_t seq = next_send_.fetch_add(1, std::memory_order_relaxed);
  uint8_t prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<uint8_t>(seq >> (56 - 8 * i));
  send_.encrypt_into(ByteView(prefix, sizeof prefix), payload, out);
}

SecureBytes SealedBox::open(ByteView message) {
  SecureBytes payload;
  open_into(message, payload);
  return payload;
}

void SealedBox::open_into(ByteView message, SecureBytes& payload) {
  uint8_t prefix[8];
  recv_.decrypt_split_into(message, prefix, payload);  // authenticates before anything is used
  try {
    accept(get_u64be(prefix));
  } catch (const Error&) {
    payload.clear();
    throw;
  }
}

void SealedBox::accept(uint64_t seq) {
  std::lock_guard<std::mutex> lock(recv_mu_);
  if (seq >= highest_seen_) {
    uint64_t shift = seq + 1 - highest_seen_;
    if (shift >= kReplayWindow) window_.reset();
    else window_ <<= static_cast<size_t>(shift);
    window_.set(0);
    highest_seen_ = seq + 1;
    return;
  }
  uint64_t age = highest_seen_ - 1 - seq;
  if (age >= kReplayWindow) throw Error(Errc::kVerify, "channel: message is older than the replay window");
  if (window_.test(static_cast<size_t>(age))) throw Error(Errc::kVerify, "channel: replayed message");
  window_.set(static_cast<size_t>(age));
}

}  // namespace shield_nitro::channel
