// Test helper: the enclave service in-process, as the enclave tests use it. A fresh folder holds
// a simulated NSM (PCR0 = a0…a0, chain in DIR/nsm) and the service's unix socket
// (DIR/enclave.sock); a FakeReleaser under a fresh KEK stands in for KMS; `client` talks to the
// service. Fixtures inherit from it and call start() in SetUp.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "support/fake_releaser.h"
#include "shield_nitro/cbor/value.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/enclave/service.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/shield/shield.h"

namespace shield_nitro::test_support {

struct EnclaveHost {
  std::string dir;
  shield::ShieldKey kek = shield::ShieldKey::generate();
  shield::ShieldKey data_key = shield::ShieldKey::generate();
  std::unique_ptr<enclave::EnclaveService> service;
  std::unique_ptr<net::Client> client;

  explicit EnclaveHost(const std::string& prefix = "sn-enclave-")
      : dir((std::filesystem::temp_directory_path() / (prefix + hex_encode(os_random().bytes(4)))).string()) {
    std::filesystem::create_directories(dir);
  }
  ~EnclaveHost() {
    client.reset();
    service.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  EnclaveHost(const EnclaveHost&) = delete;
  EnclaveHost& operator=(const EnclaveHost&) = delete;

  // Starts the service with `opts` (its listen endpoint is set here) and connects `client`.
  // required_akid: the access key id the stand-in KMS insists on ("" = any).
  void start(enclave::ServiceOptions opts, std::string required_akid = "") {
    nsm::BootPcrs pcrs;
    pcrs.values[0] = Bytes(48, 0xa0);
    auto sim = nsm::SimulatedNsm::create(dir + "/nsm", pcrs);
    opts.listen = net::Endpoint::unix_path(dir + "/enclave.sock");
    service = std::make_unique<enclave::EnclaveService>(
        std::make_unique<nsm::NsmClient>(std::make_unique<nsm::SimulatorTransport>(sim)),
        std::make_unique<FakeReleaser>(kek, std::move(required_akid)), std::move(opts));
    service->start();
    client = std::make_unique<net::Client>(service->endpoint());
  }

  // Pushes test credentials (AKIDTEST) and has the service release data_key; its handle.
  std::string load_data_key() {
    using cbor::entry;
    using cbor::Value;
    client->call("set-credentials", Value::map({entry("access_key_id", Value::text("AKIDTEST")),
                                                entry("secret_access_key", Value::text("secret"))}));
    Bytes wrapped = shield::Shield::with_key(kek).encrypt(data_key.expose_secret());
    return client->call("load-key", Value::map({entry("ciphertext_blob", Value::bytes(wrapped))})).find("handle")->as_text();
  }
};

}  // namespace shield_nitro::test_support
