#include "shield_nitro/channel/handshake.h"

#include <algorithm>
#include <cstring>

#include "shield_nitro/core/error.h"

namespace shield_nitro::channel {

ClientHandshake::ClientHandshake(Random& rng) : nonce_(rng.bytes(kNonceSize)) {}

ClientHandshake::Opened ClientHandshake::finish(ByteView document, ByteView enclave_spki,
                                                  const ChannelParams& params) const {
  Bytes enclave_raw = x25519_raw_from_spki(enclave_spki);
  X25519KeyPair mine = X25519KeyPair::generate();
  Opened out;
  out.client_public = mine.public_raw();
  SecureBytes shared = mine.agree(enclave_raw);
  out.keys = derive_session_keys(shared.view(), transcript_hash(nonce_, document, out.client_public, params),
                                 params.pad_bucket);
  return out;
}

ChannelServer::ChannelServer(ChannelServerOptions options) : options_(options) {}

int64_t ChannelServer::now() const { return (options_.clock ? *options_.clock : system_clock()).now_ms(); }

ChannelServer::KeyRef ChannelServer::current_key() {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t t = now();
  if (!key_ || t - key_born_ms_ >= options_.key_rotation_ms) {
    auto fresh = std::make_shared<X25519KeyPair>(X25519KeyPair::generate());
    key_spki_ = fresh->public_spki();
    key_ = std::move(fresh);
    key_born_ms_ = t;
  }
  return {key_spki_, key_};
}

void ChannelServer::expire_pending_locked() {
  int64_t t = now();
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (t - it->second.issued_ms > options_.attestation_ttl_ms) it = pending_.erase(it);
    else ++it;
  }
}

void ChannelServer::remember_attestation(ByteView nonce, ByteView document, const KeyRef& key) {
  if (nonce.size() != kNonceSize)
    throw Error(Errc::kFormat, "channel: the nonce must be " + std::to_string(kNonceSize) + " bytes");
  std::lock_guard<std::mutex> lock(mu_);
  expire_pending_locked();
  if (pending_.size() >= options_.max_pending) {
    auto oldest = pending_.begin();
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
      if (it->second.issued_ms < oldest->second.issued_ms) oldest = it;
    pending_.erase(oldest);
  }
  pending_[to_bytes(nonce)] = Pending{to_bytes(document), key.pair, now()};
}

ChannelParams negotiate(const std::vector<uint64_t>& offered_versions, uint64_t pad_bucket) {
  if (std::find(offered_versions.begin(), offered_versions.end(), kChannelVersion) == offered_versions.end())
    throw Error(Errc::kVerify, "channel-open: this enclave speaks channel version 2; upgrade the SDK");
  if (pad_bucket > kMaxPadBucket)
    throw Error(Errc::kUsage, "channel-open: pad bucket " + std::to_string(pad_bucket) + " is above 65536");
  return ChannelParams{kChannelVersion, static_cast<uint32_t>(pad_bucket)};
}

std::shared_ptr<SealedBox> ChannelServer::open(ByteView nonce, ByteView client_public_raw, const ChannelParams& params) {
  Pending p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    expire_pending_locked();
    auto it = pending_.find(to_bytes(nonce));
    if (it == pending_.end())
      throw Error(Errc::kVerify, "channel: no attestation was issued for this nonce (unknown, expired or already used)");
    p = std::move(it->second);
    pending_.erase(it);
  }
  SecureBytes shared = p.pair->agree(client_public_raw);
  SessionKeys keys = derive_session_keys(shared.view(), transcript_hash(nonce, p.document, client_public_raw, params),
                                         params.pad_bucket);
  auto box = std::make_shared<SealedBox>(keys, Role::kEnclave, options_.limits);
  std::lock_guard<std::mutex> lock(mu_);
  if (sessions_.size() >= options_.max_sessions) {
    auto oldest = sessions_.begin();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
      if (it->second.second < oldest->second.second) oldest = it;
    sessions_.erase(oldest);
  }
  sessions_[keys.session_id] = {box, session_counter_++};
  return box;
}

bool ChannelServer::IdLess::operator()(ByteView a, ByteView b) const {
  const size_t n = std::min(a.size(), b.size());
  const int c = n ? std::memcmp(a.data(), b.data(), n) : 0;
  return c != 0 ? c < 0 : a.size() < b.size();
}

std::shared_ptr<SealedBox> ChannelServer::find(ByteView session_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session_id);
  return it == sessions_.end() ? nullptr : it->second.first;
}

void ChannelServer::close(ByteView session_id) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(to_bytes(session_id));
}

size_t ChannelServer::session_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

}  // namespace shield_nitro::channel
