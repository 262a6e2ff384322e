// The simulator's documents against the real verifier: valid with the simulator's root,
// never with the pinned AWS root.
#include <gtest/gtest.h>

#include "shield_nitro/attest/verifier.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/nsm/client.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "sim_test_util.h"

using namespace shield_nitro;
using namespace shield_nitro::nsm;

namespace {

constexpr int64_t kT0 = 1740830400000;  // 2025-03-01T12:00:00Z

struct SimUnderTest {
  nsm_test::TempDir dir;
  FixedClock clock{kT0};
  std::shared_ptr<SimulatedNsm> sim;
  std::unique_ptr<NsmClient> client;

  explicit SimUnderTest(bool debug = false, bool indefinite = false) {
    BootPcrs pcrs;
    pcrs.debug = debug;
    if (!debug) pcrs.values[0] = Bytes(48, 0xa0);
    pcrs.values[3] = Bytes(48, 0x33);
    SimulatorOptions o;
    o.clock = &clock;
    o.indefinite_payload = indefinite;
    sim = SimulatedNsm::create(dir.path(), pcrs, o);
    client = std::make_unique<NsmClient>(std::make_unique<SimulatorTransport>(sim));
  }
  attest::TrustAnchor root() const { return attest::TrustAnchor::from_pem(read_text_file(dir / "root.pem")); }
};

Errc failure_of(const attest::Verifier& v, const Bytes& doc, const attest::Policy& p = {}) {
  auto r = v.check(doc, p, kT0);
  return r.ok() ? Errc::kInternal : r.error->code();
}

}  // namespace

TEST(SimulatorVsVerifier, VerifiesWithItsOwnRootOnly) {
  for (bool indefinite : {false, true}) {
    SimUnderTest s(false, indefinite);
    s.client->extend_pcr(16, Bytes{1});
    s.client->lock_pcr(16);
    Bytes doc = s.client->attestation({Bytes{0x75}, Bytes{1, 2, 3, 4}, std::nullopt});
    attest::VerifierOptions vo;
    vo.clock = &s.clock;
    attest::Verifier mine(s.root(), vo);
    attest::Policy p;
    p.nonce = Bytes{1, 2, 3, 4};
    p.expect_pcr(0, Bytes(48, 0xa0));
    p.expect_pcr(3, Bytes(48, 0x33));
    p.max_age_s = 60;
    attest::Claims c = mine.verify(doc, p);  // live, at the simulator's "now"
    EXPECT_EQ(c.module_id, s.sim->module_id());
    EXPECT_EQ(c.timestamp_ms, static_cast<uint64_t>(kT0));
    EXPECT_EQ(c.pcrs.size(), 17u);
    EXPECT_EQ(c.user_data.value, Bytes{0x75});
    EXPECT_EQ(c.public_key.presence, attest::Presence::kNull);
    EXPECT_FALSE(c.debug);

    attest::Verifier aws(attest::TrustAnchor::aws(), vo);
    EXPECT_EQ(failure_of(aws, doc), Errc::kVerify) << "indefinite=" << indefinite;
    EXPECT_THROW(aws.verify(doc), Error);
  }
}

TEST(SimulatorVsVerifier, LeafWindowAndPolicy) {
  SimUnderTest s;
  Bytes doc = s.client->attestation({});
  attest::Verifier v(s.root());
  EXPECT_TRUE(v.check(doc, {}, kT0 + 3 * 3600 * 1000 - 1000).ok());
  EXPECT_EQ(failure_of(v, doc, {}), Errc::kInternal);  // ok at T0
  auto late = v.check(doc, {}, kT0 + 3 * 3600 * 1000 + 1000);
  ASSERT_FALSE(late.ok());
  attest::Policy wrong_nonce;
  wrong_nonce.nonce = Bytes{9};
  EXPECT_EQ(failure_of(v, doc, wrong_nonce), Errc::kPolicy);
}

TEST(SimulatorVsVerifier, DebugSimulatorDocumentsNeedAllowDebug) {
  SimUnderTest s(true);
  Bytes doc = s.client->attestation({});
  attest::Verifier v(s.root());
  EXPECT_EQ(failure_of(v, doc), Errc::kPolicy);
  attest::Policy allow;
  allow.allow_debug = true;
  auto r = v.check(doc, allow, kT0);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.claims->debug);
}
