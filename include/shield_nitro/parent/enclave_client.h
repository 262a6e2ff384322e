// parent::EnclaveClient: the parent's (or a remote client's) handle on one enclave service
// (docs/enclave-api.md, docs/parent-sdk.md). The C++ twin of python/shield_nitro/client.py.
//
//   auto client = parent::EnclaveClient::connect("vsock://16:5000");
//   client->set_credentials_provider(std::make_shared<kms::DefaultCredentialsChain>());
//   attest::Policy policy;
//   policy.expect_pcr(0, pcr0);
//   client->open_channel(policy, attest::TrustAnchor::aws());   // attest -> verify -> X25519
//   client->push_credentials();
//   auto key = client->load_key(blob, "arn:aws:kms:...", {{"app", "demo"}});
//   auto model = client->load_artifact(key.handle, "model.snst", "model", "weights");
//   auto code = client->load_artifact(key.handle, "plugin.shield", "code", "mlp", {model.handle});
//   SecureBytes out = client->invoke(code.handle, input);      // sealed: the parent sees ciphertext
//
// Plain operations travel as they are; invoke and decrypt (which return plaintext) only inside
// the attested channel, and refuse with Error(kUsage) until open_channel() succeeded. A channel
// opens only to an enclave the policy names: PCR0 or PCR8 pinned, or Error(kUsage) before any
// request (Unpinned::kAcceptForExperiments is the explicit opt-out). Once a
// channel is open, encrypt and unload are sealed too. Any response carrying
// "refresh_credentials": true makes the client push fresh credentials from its provider.
//
// Thread-safe: any number of threads may call at once; requests are pipelined over the one
// connection and matched by id. Errors are shield_nitro::Error with the enclave's code
// (policy, verify, not_found, environment...) or io/timeout for the connection.
#pragma once

#include <chrono>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shield_nitro/attest/policy.h"
#include "shield_nitro/attest/trust_anchor.h"
#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/cbor/value.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/kms/credentials.h"
#include "shield_nitro/net/endpoint.h"
#include "shield_nitro/net/frame.h"

namespace shield_nitro::net {
class Client;
}

namespace shield_nitro::parent {

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds call_timeout{std::chrono::seconds(60)};
  size_t chunk_size = size_t{1} << 20;    // bytes of artifact per stream frame
  size_t max_frame = net::kDefaultMaxFrame;
};

// The open attested session.
struct ChannelInfo {
  Bytes session_id;       // 16 bytes, public: names the session on the wire
  Bytes document;         // the attestation document exactly as the enclave returned it
  attest::Claims claims;  // what verification established (PCRs, module id, time...)
  uint32_t pad = 0;       // the negotiated length padding (0: none), see ChannelOptions
};

struct KeyHandle {
  std::string handle;  // "key-1"
  std::string key_id;  // the KMS key ARN that released it
};

struct ArtifactInfo {
  std::string handle;  // "art-2"
  std::string kind;    // "model" | "code"
  std::string name;
  uint64_t size = 0;   // plaintext bytes, as the enclave measured them
};

using EncryptionContext = std::map<std::string, std::string>;

// Whether open_channel may proceed with a policy that pins neither PCR0 nor PCR8. Accepting it
// hands plaintext to any enclave with a valid document: for experiments only.
enum class Unpinned { kRefuse, kAcceptForExperiments };

// How open_channel opens the channel (the Python SDK's open_channel(..., pad=) is the same).
struct ChannelOptions {
  Unpinned unpinned = Unpinned::kRefuse;
  // > 0: every record's plaintext, both ways, is padded to a multiple of this many bytes, so
  // the parent sees only size buckets (docs/protocol.md, channel version 2). At most 65536;
  // negotiated at channel-open and bound into the keys. 0: no padding.
  uint32_t pad = 0;
};

// A nonce the NSM accepts: 1..512 bytes (32 random bytes when the caller has none).
inline constexpr size_t kMinNonceSize = 1;
inline constexpr size_t kMaxNonceSize = 512;

// Error(kUsage) unless every pinned PCR is an index 0..31 with at least one value of 48 bytes,
// and PCR0 or PCR8 is pinned (unless `unpinned` accepts that).
void check_channel_policy(const attest::Policy& policy, Unpinned unpinned = Unpinned::kRefuse);

class EnclaveClient {
 public:
  // Connects (Error(kIo) / Error(kTimeout) when it cannot). Endpoint strings as in
  // net/endpoint.h: vsock://16:5000, unix:PATH, tcp://127.0.0.1:PORT.
  static std::unique_ptr<EnclaveClient> connect(const net::Endpoint& endpoint, ClientOptions options = {});
  static std::unique_ptr<EnclaveClient> connect(std::string_view endpoint, ClientOptions options = {});
  ~EnclaveClient();
  EnclaveClient(const EnclaveClient&) = delete;
  EnclaveClient& operator=(const EnclaveClient&) = delete;

  // Where pushes and automatic refreshes take AWS credentials from (env/file/IMDSv2 chain,
  // a fixed set...). Without one, refresh hints are ignored.
  void set_credentials_provider(std::shared_ptr<kms::CredentialsProvider> provider);

  // The describe / stats response bodies as the enclave sent them (docs/enclave-api.md);
  // parent::to_json() renders them. Always plain requests: they carry nothing secret.
  cbor::Value describe();
  cbor::Value stats();

  // The raw attestation document for this nonce (1..512 bytes) and optional user data.
  Bytes attest(ByteView nonce, std::optional<Bytes> user_data = std::nullopt);
  // Attests with a fresh nonce and verifies the document against `anchor` and `policy`
  // (whose nonce is replaced by the fresh one). document_out, when given, receives the bytes.
  attest::Claims attest_and_verify(const attest::Policy& policy, const attest::TrustAnchor& anchor,
                                   std::optional<Bytes> user_data = std::nullopt, Bytes* document_out = nullptr);
  // attest(handshake nonce) -> verify (chain, policy, nonce, public key present) -> X25519 ->
  // channel-open -> the enclave's session id must equal ours (constant time). Replaces an
  // earlier channel (the returned reference is valid until then; channel_info() copies).
  // Throws kUsage (before any request) when the policy is malformed or pins neither PCR0 nor
  // PCR8 (see check_channel_policy), kVerify/kPolicy/kExpired when the enclave is not the one wanted.
  // Verification keeps a chain cache per client (for its last trust anchor), so a reopened
  // channel pays one ES384 check instead of the whole chain. kUsage also for a pad above 65536.
  const ChannelInfo& open_channel(const attest::Policy& policy, const attest::TrustAnchor& anchor,
                                  Unpinned unpinned = Unpinned::kRefuse);
  const ChannelInfo& open_channel(const attest::Policy& policy, const attest::TrustAnchor& anchor,
                                  const ChannelOptions& options);
  bool channel_open() const;
  // The open channel's description; Error(kUsage) when none.
  ChannelInfo channel_info() const;

  // Sends credentials (given, or from the provider) with set-credentials; returns the
  // enclave's expires_at (Unix seconds) if they expire. Given credentials without a provider
  // become the provider, as in the Python SDK.
  std::optional<int64_t> push_credentials(std::optional<kms::Credentials> credentials = std::nullopt);

  // KMS Decrypt with Recipient inside the enclave. On an "environment" error (credentials
  // missing or expired in the enclave) pushes fresh ones from the provider and retries once.
  KeyHandle load_key(ByteView ciphertext_blob, const std::string& key_id = "", const EncryptionContext& context = {});

  // Streams a Shield container or v4 message under key_handle, never holding it whole (a
  // stream container one record per frame; a regular file by sendfile, its size announced). An
  // empty key_handle sends a sealed file (sealed/sealed.h): the enclave releases its data key
  // from the file's header with the credentials it was pushed. Stops sending as soon as the
  // enclave answers (e.g. refuses); its answer is returned or thrown. kind: "model" or "code";
  // models: model handles a code artifact needs.
  ArtifactInfo load_artifact(const std::string& key_handle, const std::string& path, const std::string& kind,
                             const std::string& name = "", const std::vector<std::string>& models = {});
  ArtifactInfo load_artifact(const std::string& key_handle, std::istream& in, const std::string& kind,
                             const std::string& name, const std::vector<std::string>& models = {});

  // Shield v4 ciphertext under a loaded key (the parent may see the plaintext it sends).
  Bytes encrypt(const std::string& key_handle, ByteView plaintext);
  // Channel only: the plaintext never crosses the parent unsealed.
  SecureBytes decrypt(const std::string& key_handle, ByteView ciphertext);
  SecureBytes invoke(const std::string& artifact_handle, ByteView input);
  void unload(const std::string& handle);

  // Any operation by name: inside the channel when one is open, else plain.
  cbor::Value call(std::string_view op, cbor::Value body = cbor::Value::map());
  // The underlying connection, for raw requests (tests, tools).
  net::Client& connection();
  void close();

 private:
  struct Impl;
  explicit EnclaveClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shield_nitro::parent
