// set-credentials: pushing AWS credentials into the enclave, on request and automatically
// when a response says they are about to expire ("refresh_credentials": true).
#include "client_impl.h"
#include "shield_nitro/attest/certificate.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/log.h"

namespace shield_nitro::parent {

using cbor::Value;

namespace {
// No temporary std::string copy of a secret on the way into the request.
std::string_view text_view(const SecureBytes& s) { return {reinterpret_cast<const char*>(s.data()), s.size()}; }
}  // namespace

std::optional<int64_t> EnclaveClient::Impl::push(const kms::Credentials& c) {
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    throw Error(Errc::kUsage, "push_credentials: the credentials lack an access key id or secret");
  // The enclave would refuse them too, but only after they crossed the channel; say it here,
  // with the time, so the fix (fresh credentials) is obvious.
  if (c.expiration_s != 0 && c.expiration_s <= system_clock().now_s())
    throw Error(Errc::kExpired, "push_credentials: the AWS credentials " + c.describe() + " expired at " +
                                    attest::format_utc_seconds(c.expiration_s) + "; fetch fresh ones before pushing");
  // The request is the only holder of the secret besides c, and wipes itself (SecretValue);
  // the secret goes into it straight from SecureBytes, with no std::string on the way.
  cbor::MapEntries body;
  body.reserve(4);
  body.push_back(cbor::entry("access_key_id", Value::text(c.access_key_id)));
  body.push_back(cbor::entry("secret_access_key", Value::text(text_view(c.secret_access_key))));
  if (!c.session_token.empty()) body.push_back(cbor::entry("session_token", Value::text(text_view(c.session_token))));
  if (c.expiration_s != 0) body.push_back(cbor::entry("expiration", Value::integer(c.expiration_s)));
  cbor::SecretValue request(Value::map(std::move(body)));
  // Straight over the connection, not call_any/call_sealed: a hint in this very answer must
  // not trigger another push. Inside the channel when one is open (sealed end to end);
  // without one, both net layers wipe the frame (Client::call_sensitive, and the enclave
  // marks set-credentials with Server::mark_sensitive).
  cbor::SecretValue out;
  if (auto ch = current_channel()) {
    out = exchange_sealed(*ch, "set-credentials", request);
  } else {
    out = cbor::SecretValue(conn->call_sensitive("set-credentials", std::move(request)));
  }
  const Value* expires = out->find("expires_at");
  if (expires && expires->is_integer()) return expires->as_int();
  return std::nullopt;
}

std::optional<int64_t> EnclaveClient::Impl::push_fresh(kms::CredentialsProvider& p) {
  p.invalidate();  // the enclave asked because the ones it has are stale: do not resend them
  kms::Credentials c = p.get();
  return push(c);
}

void EnclaveClient::Impl::maybe_refresh(const Value& body) {
  const Value* hint = body.find("refresh_credentials");
  if (!hint || !hint->is(cbor::Type::kBool) || !hint->as_bool()) return;
  auto p = current_provider();
  if (!p) return;
  std::unique_lock lock(refreshing, std::try_to_lock);
  if (!lock.owns_lock()) return;  // another thread is pushing right now
  try {
    push_fresh(*p);
    log_debug("parent: pushed fresh AWS credentials on the enclave's request");
  } catch (const Error& e) {
    // The operation itself succeeded; the next KMS call reports the missing credentials.
    log_warn(std::string("parent: the enclave asked for fresh AWS credentials, but pushing failed: ") + e.what());
  }
}

std::optional<int64_t> EnclaveClient::push_credentials(std::optional<kms::Credentials> credentials) {
  if (!credentials) {
    auto p = impl_->current_provider();
    if (!p) throw Error(Errc::kUsage, "push_credentials: no credentials given and no provider set");
    return impl_->push(p->get());
  }
  auto expires = impl_->push(*credentials);  // first: refused (e.g. expired) ones are not adopted
  std::lock_guard lock(impl_->mu);
  if (!impl_->provider) impl_->provider = std::make_shared<kms::StaticCredentials>(credentials->clone());
  return expires;
}

void EnclaveClient::set_credentials_provider(std::shared_ptr<kms::CredentialsProvider> provider) {
  std::lock_guard lock(impl_->mu);
  impl_->provider = std::move(provider);
}

std::shared_ptr<kms::CredentialsProvider> EnclaveClient::Impl::current_provider() const {
  std::lock_guard lock(mu);
  return provider;
}

}  // namespace shield_nitro::parent
