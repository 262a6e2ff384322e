// A program that knows shield-nitro only as an installed package (tests/package): Shield round
// trip, then the parent SDK's EnclaveClient refusing a socket nobody listens on.
#include <cstdio>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/parent/enclave_client.h"
#include "shield_nitro/shield/shield.h"

using namespace shield_nitro;

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto sh = shield::Shield::with_key(shield::ShieldKey::generate());
  SecureBytes opened = sh.decrypt(sh.encrypt(as_bytes("installed")));
  if (std::string(opened.view().begin(), opened.view().end()) != "installed") return 1;
  try {
    parent::EnclaveClient::connect(std::string("unix:") + argv[1]);
  } catch (const Error& e) {
    std::printf("shield round trip ok; connect refused (%s): %s\n", errc_name(e.code()), e.what());
    return 0;
  }
  return 1;
}
