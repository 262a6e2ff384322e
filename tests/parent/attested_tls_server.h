// Test harness: the enclave side of attested TLS (docs/attested-tls.md) with documents from the
// NSM simulator, and a parent that tries to sit in the middle. Tests only.
//
//   sn_test::AttestedTlsServer honest(nsm);                 // P-256 self-signed, user_data binds its SPKI
//   sn_test::AttestedTlsServer relay = AttestedTlsServer::relay_to(honest.port());
//   relay.set_intercept(true);   // its own certificate; attestation requests forwarded upstream
//
// Every connection: TLS; a first request GET /.well-known/shield-nitro/attestation?nonce=HEX gets
// the document (Connection: close), anything else gets "hello from the enclave\n" (the app).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/unique_fd.h"
#include "shield_nitro/nsm_sim/simulator.h"

namespace sn_test {

class AttestedTlsServer {
 public:
  enum class Behaviour {
    kHonest,      // user_data = "sn-tls/1" || SHA-256(own SPKI) || app_user_data
    kOtherKey,    // binds the SPKI of a key it does not serve with
    kWrongNonce,  // attests a nonce of its own instead of the client's
    kNoBinding,   // user_data absent
  };
  static constexpr char kAppAnswer[] = "hello from the enclave\n";

  AttestedTlsServer(std::shared_ptr<shield_nitro::nsm::SimulatedNsm> nsm, Behaviour behaviour = Behaviour::kHonest,
                    shield_nitro::Bytes app_user_data = {});
  // A parent-side relay to 127.0.0.1:upstream_port: passes bytes through until set_intercept(true),
  // then terminates TLS with a certificate of its own and forwards attestation requests upstream.
  static std::unique_ptr<AttestedTlsServer> relay_to(uint16_t upstream_port);
  ~AttestedTlsServer();
  AttestedTlsServer(const AttestedTlsServer&) = delete;
  AttestedTlsServer& operator=(const AttestedTlsServer&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  // SHA-256 of the SPKI of the certificate served now.
  shield_nitro::Bytes spki_sha256() const;
  // A new key and certificate (what the supervisor does on its rotation schedule).
  void rotate();
  void set_intercept(bool on) { intercept_ = on; }
  // Attestation requests answered (by this server, including forwarded ones).
  int attestations() const { return attestations_; }

 private:
  struct Identity;
  AttestedTlsServer();
  void start();
  void serve(shield_nitro::UniqueFd fd);
  void serve_tls(int fd);
  void pass_through(int fd);
  std::string attestation_answer(const std::string& request_line, const std::string& raw_request);

  std::shared_ptr<shield_nitro::nsm::SimulatedNsm> nsm_;
  Behaviour behaviour_ = Behaviour::kHonest;
  shield_nitro::Bytes app_user_data_;
  uint16_t upstream_port_ = 0;  // relay only
  std::atomic<bool> intercept_{false};
  mutable std::mutex mu_;
  std::shared_ptr<Identity> identity_;
  shield_nitro::UniqueFd listen_fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> attestations_{0};
  std::thread acceptor_;
  std::mutex workers_mu_;
  std::vector<std::thread> workers_;
};

}  // namespace sn_test
