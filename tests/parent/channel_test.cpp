// EnclaveClient's attested channel against the real enclave service in-process (simulated NSM,
// a stand-in KMS), directly and through a man-in-the-middle "parent" that tampers with,
// replays or substitutes what it relays. The client must refuse every such answer.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "support/fake_releaser.h"
#include "support/temp_dir.h"
#include "support/expect_error.h"
#include "support/freed_memory_scan.h"
#include "shield_nitro/channel/session.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/enclave/service.h"
#include "shield_nitro/net/client.h"
#include "shield_nitro/net/server.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/parent/enclave_client.h"
#include "shield_nitro/shield/stream.h"

using namespace shield_nitro;
using cbor::entry;
using cbor::Value;
using shield_nitro::test_support::code_of;

namespace {

// A relay speaking the protocol: forwards each plain request to the service and lets the test
// rewrite the answer (op, response body) before it goes back. Streams are not relayed.
class Mitm {
 public:
  using Hook = std::function<void(const std::string& op, const Value& request, Value& response)>;
  Mitm(const std::string& listen, const net::Endpoint& backend) : backend_(backend) {
    server_ = std::make_unique<net::Server>(net::Endpoint::unix_path(listen));
    for (const char* op : {"describe", "attest", "channel-open", "sealed", "set-credentials", "load-key", "encrypt", "unload"}) {
      std::string name = op;
      server_->handle(name, [this, name](const net::Request& req, net::RequestContext&) {
        net::Response r = backend_.request(name, req.body);
        if (!r.ok) throw Error(r.code, r.message);
        Hook h;
        {
          std::lock_guard lock(mu_);
          h = hook_;
        }
        if (h) h(name, req.body, r.body);
        return net::Response::success(std::move(r.body));
      });
    }
    server_->start();
  }
  void set_hook(Hook h) {
    std::lock_guard lock(mu_);
    hook_ = std::move(h);
  }
  std::string endpoint() const { return server_->endpoint().to_string(); }

 private:
  net::Client backend_;
  std::unique_ptr<net::Server> server_;
  std::mutex mu_;
  Hook hook_;
};

Value& field(Value& body, const char* name) {
  for (auto& [k, v] : body.as_map())
    if (k.is(cbor::Type::kText) && k.as_text() == name) return v;
  throw std::runtime_error(std::string("no field ") + name);
}

struct InProcessEnclave : ::testing::Test {
  test_support::TempDir dir;
  Bytes pcr0 = Bytes(48, 0x5e);
  std::shared_ptr<nsm::SimulatedNsm> sim;
  shield::ShieldKey kek = shield::ShieldKey::generate();
  shield::ShieldKey data_key = shield::ShieldKey::generate();
  std::unique_ptr<enclave::EnclaveService> service;
  std::unique_ptr<Mitm> mitm;

  void SetUp() override {
    nsm::BootPcrs pcrs;
    pcrs.values[0] = pcr0;
    sim = nsm::SimulatedNsm::create(dir.path() + "/nsm", pcrs);
    enclave::ServiceOptions opts;
    opts.listen = net::Endpoint::unix_path(dir.sock("enclave.sock"));
    service = std::make_unique<enclave::EnclaveService>(
        std::make_unique<nsm::NsmClient>(std::make_unique<nsm::SimulatorTransport>(sim)),
        std::make_unique<test_support::FakeReleaser>(kek, "AKIDTEST"), std::move(opts));
    service->start();
    mitm = std::make_unique<Mitm>(dir.sock("parent.sock"), service->endpoint());
  }
  void TearDown() override {
    mitm.reset();
    service.reset();
  }

  attest::TrustAnchor root() const { return attest::TrustAnchor::from_pem(sim->root_pem()); }
  attest::Policy policy() const {
    attest::Policy p;
    p.expect_pcr(0, pcr0);
    return p;
  }
  std::unique_ptr<parent::EnclaveClient> direct() { return parent::EnclaveClient::connect(service->endpoint()); }
  std::unique_ptr<parent::EnclaveClient> through_mitm() { return parent::EnclaveClient::connect(mitm->endpoint()); }

  // A loaded data key, a model of 3000 bytes named "weights" and the test plugin over it.
  struct Loaded {
    std::string key, model, code;
  };
  Loaded load_everything(parent::EnclaveClient& c) {
    kms::Credentials creds;
    creds.access_key_id = "AKIDTEST";
    creds.secret_access_key = SecureBytes(as_bytes("secret"));
    c.push_credentials(std::move(creds));
    Bytes wrapped = shield::Shield::with_key(kek).encrypt(data_key.expose_secret());
    Loaded l;
    l.key = c.load_key(wrapped).handle;
    shield::Shield s = shield::Shield::with_key(data_key);
    std::istringstream model(to_string(shield::encrypt_stream(s, Bytes(3000, 0x11))));
    l.model = c.load_artifact(l.key, model, "model", "weights").handle;
    std::istringstream code(to_string(shield::encrypt_stream(s, read_file(SN_TEST_PLUGIN))));
    l.code = c.load_artifact(l.key, code, "code", "plugin", {l.model}).handle;
    return l;
  }
};

std::string reversed(std::string s) { return {s.rbegin(), s.rend()}; }

}  // namespace

TEST_F(InProcessEnclave, ChannelVerifiesTheEnclaveThenCarriesInvokeAndDecrypt) {
  auto c = direct();
  Loaded l = load_everything(*c);
  const parent::ChannelInfo& info = c->open_channel(policy(), root());
  EXPECT_TRUE(c->channel_open());
  EXPECT_EQ(info.session_id.size(), 16u);
  EXPECT_EQ(info.claims.pcrs.at(0), pcr0);
  EXPECT_TRUE(info.claims.public_key.has_value());
  EXPECT_EQ(to_string(c->invoke(l.code, as_bytes("hello")).view()), "weights:3000|" + reversed("hello"));
  Bytes ct = c->encrypt(l.key, as_bytes("a record"));  // sealed too, now that a channel is open
  EXPECT_EQ(to_string(shield::Shield::with_key(data_key).decrypt(ct).view()), "a record");
  EXPECT_EQ(to_string(c->decrypt(l.key, ct).view()), "a record");
  // Errors inside the channel keep their code.
  EXPECT_EQ(code_of([&] { c->invoke("art-404", as_bytes("x")); }), Errc::kNotFound);
  try {
    c->invoke(l.code, as_bytes("fail"));  // the plugin refuses this input
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kRemote);
    EXPECT_NE(std::string(e.what()).find("asked to fail"), std::string::npos) << e.what();
  }
  c->unload(l.code);
  EXPECT_EQ(code_of([&] { c->invoke(l.code, as_bytes("x")); }), Errc::kNotFound);
  // A second channel on the same connection replaces the first.
  Bytes first = c->channel_info().session_id;
  c->open_channel(policy(), root());
  EXPECT_NE(c->channel_info().session_id, first);
  EXPECT_EQ(to_string(c->decrypt(l.key, ct).view()), "a record");
}

// The secret access key pushed through the channel, and a plaintext decrypted through it, are
// never left in freed memory by either side (client, enclave, the network layer between):
// they live only in SecureBytes and in wiped CBOR values (cbor::SecretValue).
TEST_F(InProcessEnclave, ChannelCredentialsAndPlaintextLeaveNoCopyInFreedMemory) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY-SCAN-ME-1";
  constexpr char kPlain[] = "PLAINTEXT-RECORD-scan-me-0123456789";
  auto c = direct();
  Loaded l = load_everything(*c);
  c->open_channel(policy(), root());
  Bytes ct = shield::Shield::with_key(data_key).encrypt(as_bytes(kPlain));
  kms::Credentials creds;
  creds.access_key_id = "AKIDTEST";
  creds.secret_access_key = SecureBytes(as_bytes(kSecret));
  creds.session_token = SecureBytes(as_bytes(kSecret));
  {
    test_support::FreedMemoryScan scan(as_bytes(kSecret));
    c->push_credentials(std::move(creds));
    EXPECT_EQ(scan.hits(), 0u);
  }
  EXPECT_NO_THROW(c->load_key(shield::Shield::with_key(kek).encrypt(data_key.expose_secret())));  // they work
  {
    test_support::FreedMemoryScan scan(as_bytes(kPlain));
    SecureBytes pt = c->decrypt(l.key, ct);
    EXPECT_TRUE(std::ranges::equal(pt.view(), as_bytes(kPlain)));
    EXPECT_EQ(scan.hits(), 0u);
  }
}

// Without a channel (a plain set-credentials, as the Python SDK always sends it) neither net
// layer keeps a copy either: the client zeroes the frame it sent (net::Client::call_sensitive)
// and the enclave's server its receive buffer, its copy of the frame and the decoded strings
// (the service marks set-credentials sensitive). The connection is closed and the service
// stopped inside the scan, so the release of the receive buffer is seen too.
TEST_F(InProcessEnclave, PlainCredentialsPushLeavesNoCopyInFreedMemory) {
  SN_SKIP_UNLESS_FREED_MEMORY_SCANNED();
  static constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG/plain-push-SCAN-ME-2";
  auto c = direct();
  kms::Credentials creds;
  creds.access_key_id = "AKIDTEST";
  creds.secret_access_key = SecureBytes(as_bytes(kSecret));
  creds.session_token = SecureBytes(as_bytes(kSecret));
  Bytes wrapped = shield::Shield::with_key(kek).encrypt(data_key.expose_secret());
  test_support::FreedMemoryScan scan(as_bytes(kSecret));
  ASSERT_FALSE(c->channel_open());
  c->push_credentials(std::move(creds));
  EXPECT_NO_THROW(c->load_key(wrapped));  // they arrived and work
  c.reset();
  mitm.reset();
  service.reset();
  EXPECT_EQ(scan.hits(), 0u);
}

TEST_F(InProcessEnclave, AttestAndVerifyUsesAFreshNonce) {
  auto c = direct();
  Bytes doc1, doc2;
  attest::Claims claims = c->attest_and_verify(policy(), root(), Bytes{1, 2, 3}, &doc1);
  EXPECT_EQ(claims.pcrs.at(0), pcr0);
  EXPECT_EQ(claims.user_data.value, (Bytes{1, 2, 3}));
  ASSERT_TRUE(claims.nonce.has_value());
  c->attest_and_verify(policy(), root(), std::nullopt, &doc2);
  EXPECT_NE(doc1, doc2);
  attest::Policy wrong;
  wrong.expect_pcr(0, Bytes(48, 0x01));
  EXPECT_EQ(code_of([&] { c->attest_and_verify(wrong, root()); }), Errc::kPolicy);
}

TEST_F(InProcessEnclave, ConcurrentInvokesArePipelinedOnOneConnection) {
  auto c = direct();
  Loaded l = load_everything(*c);
  c->open_channel(policy(), root());
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        std::string in = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (to_string(c->invoke(l.code, as_bytes(in)).view()) != "weights:3000|" + reversed(in)) ++wrong;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(InProcessEnclave, RefusesAnEnclaveThatIsNotTheOneNamed) {
  auto c = direct();
  attest::Policy other;
  other.expect_pcr(0, Bytes(48, 0x01));
  EXPECT_EQ(code_of([&] { c->open_channel(other, root()); }), Errc::kPolicy);
  EXPECT_EQ(code_of([&] { c->open_channel(policy(), attest::TrustAnchor::aws()); }), Errc::kVerify);
  EXPECT_FALSE(c->channel_open());
}

TEST_F(InProcessEnclave, TamperedSealedResponseIsRejected) {
  auto setup = direct();
  Loaded l = load_everything(*setup);  // handles are the service's, usable from any connection
  auto c = through_mitm();
  c->open_channel(policy(), root());
  EXPECT_EQ(to_string(c->invoke(l.code, as_bytes("abc")).view()), "weights:3000|cba");
  mitm->set_hook([](const std::string& op, const Value&, Value& body) {
    if (op != "sealed") return;
    Bytes data = field(body, "data").as_bytes();
    data[data.size() / 2] ^= 0x01;
    field(body, "data") = Value::bytes(std::move(data));
  });
  EXPECT_EQ(code_of([&] { c->invoke(l.code, as_bytes("abc")); }), Errc::kAuth);
  mitm->set_hook(nullptr);
  EXPECT_EQ(to_string(c->invoke(l.code, as_bytes("xyz")).view()), "weights:3000|zyx");  // one forgery breaks nothing
}

TEST_F(InProcessEnclave, ReplayedSealedResponseIsRejected) {
  auto setup = direct();
  Loaded l = load_everything(*setup);
  auto c = through_mitm();
  c->open_channel(policy(), root());
  std::mutex mu;
  std::optional<Bytes> first;
  mitm->set_hook([&](const std::string& op, const Value&, Value& body) {
    if (op != "sealed") return;
    std::lock_guard lock(mu);
    if (!first) first = field(body, "data").as_bytes();
    else field(body, "data") = Value::bytes(*first);  // the parent answers with an old reply
  });
  EXPECT_EQ(to_string(c->invoke(l.code, as_bytes("one")).view()), "weights:3000|eno");
  EXPECT_EQ(code_of([&] { c->invoke(l.code, as_bytes("two")); }), Errc::kVerify);
}

TEST_F(InProcessEnclave, SubstitutedSessionIsRejected) {
  auto c = through_mitm();
  mitm->set_hook([](const std::string& op, const Value&, Value& body) {
    if (op == "channel-open") field(body, "session") = Value::bytes(Bytes(16, 0xab));
  });
  EXPECT_EQ(code_of([&] { c->open_channel(policy(), root()); }), Errc::kVerify);
  EXPECT_FALSE(c->channel_open());
}

TEST_F(InProcessEnclave, ReplayedOrKeylessDocumentsAreRejected) {
  auto c = through_mitm();
  // An older genuine document (another nonce): the parent cannot replay attestations.
  Bytes old = direct()->attest(Bytes(32, 0x42));
  mitm->set_hook([&](const std::string& op, const Value&, Value& body) {
    if (op == "attest") field(body, "document") = Value::bytes(old);
  });
  EXPECT_EQ(code_of([&] { c->open_channel(policy(), root()); }), Errc::kPolicy);
  // A genuine document for our nonce but without a key: no channel can be agreed.
  nsm::NsmClient nsm(std::make_unique<nsm::SimulatorTransport>(sim));
  mitm->set_hook([&](const std::string& op, const Value& request, Value& body) {
    if (op != "attest") return;
    nsm::AttestationRequest req;
    req.nonce = request.find("nonce")->as_bytes();
    field(body, "document") = Value::bytes(nsm.attestation(req));
  });
  EXPECT_EQ(code_of([&] { c->open_channel(policy(), root()); }), Errc::kVerify);
  EXPECT_FALSE(c->channel_open());
}

// A version-1 SDK offers no versions at channel-open: the enclave refuses it in words that say
// what to do, and the nonce stays unused (a v2 client could still open with it).
TEST_F(InProcessEnclave, OldChannelVersionPeerIsRefusedClearly) {
  auto c = direct();
  Bytes nonce = os_random().bytes(32);
  c->attest(nonce);
  for (Value versions : {Value::array({}), Value::array({Value::uint(1)})}) {
    net::Response r = c->connection().request(
        "channel-open", Value::map({entry("nonce", Value::bytes(nonce)), entry("client_public", Value::bytes(Bytes(32, 9))),
                                    entry("versions", std::move(versions))}));
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.code, Errc::kVerify);
    EXPECT_NE(r.message.find("this enclave speaks channel version 2; upgrade the SDK"), std::string::npos) << r.message;
  }
  net::Response none = c->connection().request(
      "channel-open", Value::map({entry("nonce", Value::bytes(nonce)), entry("client_public", Value::bytes(Bytes(32, 9)))}));
  EXPECT_NE(none.message.find("upgrade the SDK"), std::string::npos) << none.message;
}

// A parent that sends an accepted sealed request again: the enclave refuses it by its sequence
// number (before running anything), and the session goes on.
TEST_F(InProcessEnclave, SealedRequestReplayedByTheParentIsRefused) {
  Loaded l = load_everything(*direct());  // handles belong to the enclave; the relay does not stream
  auto c = through_mitm();
  c->open_channel(policy(), root());
  std::mutex mu;
  Value first;
  mitm->set_hook([&](const std::string& op, const Value& request, Value&) {
    std::lock_guard lock(mu);
    if (op == "sealed" && first.is_null()) first = request;
  });
  EXPECT_EQ(to_string(c->invoke(l.code, as_bytes("ab")).view()), "weights:3000|ba");
  mitm->set_hook(nullptr);
  // The relay sends the already-accepted request again on its own connection.
  net::Response again = c->connection().request("sealed", first);
  EXPECT_FALSE(again.ok);
  EXPECT_EQ(again.code, Errc::kVerify);
  EXPECT_NE(again.message.find("replayed or reordered"), std::string::npos) << again.message;
  // The session goes on: a replay is refused without ending it.
  EXPECT_EQ(to_string(c->invoke(l.code, as_bytes("cd")).view()), "weights:3000|dc");
}

// ChannelOptions::pad (as the Python SDK's pad=): every sealed record the parent relays is a
// multiple of the bucket, whatever the plaintext's size; calls work as without it; the enclave
// and the client agreed on it (the session id binds it). Out of range is kUsage, sent nowhere.
TEST_F(InProcessEnclave, PaddedChannelShowsTheParentOnlySizeBuckets) {
  auto setup = direct();
  Loaded l = load_everything(*setup);
  std::mutex mu;
  std::vector<size_t> request_records, reply_records;
  mitm->set_hook([&](const std::string& op, const Value& request, Value& response) {
    if (op != "sealed") return;
    std::lock_guard lock(mu);
    request_records.push_back(request.find("data")->bytes_view().size());
    reply_records.push_back(response.find("data")->bytes_view().size());
  });
  constexpr size_t kOverhead = channel::kHeaderSize + channel::kTagSize;
  for (uint32_t pad : {0u, 512u}) {
    auto c = through_mitm();
    const parent::ChannelInfo& info = c->open_channel(policy(), root(), parent::ChannelOptions{parent::Unpinned::kRefuse, pad});
    EXPECT_EQ(info.pad, pad);
    {
      std::lock_guard lock(mu);
      request_records.clear();
      reply_records.clear();
    }
    for (size_t n : {1u, 40u, 300u}) {
      std::string in(n, 'x');
      EXPECT_EQ(to_string(c->invoke(l.code, as_bytes(in)).view()), "weights:3000|" + reversed(in));
    }
    std::lock_guard lock(mu);
    ASSERT_EQ(request_records.size(), 3u);
    std::set<size_t> sizes(request_records.begin(), request_records.end());
    sizes.insert(reply_records.begin(), reply_records.end());
    if (pad == 0) {
      EXPECT_EQ(std::set<size_t>(request_records.begin(), request_records.end()).size(), 3u);  // sizes show
    } else {
      EXPECT_EQ(sizes, std::set<size_t>({512 + kOverhead}));  // one bucket for all, both ways
    }
  }
  auto c = direct();
  EXPECT_EQ(code_of([&] { c->open_channel(policy(), root(), parent::ChannelOptions{parent::Unpinned::kRefuse, 65537}); }),
            Errc::kUsage);
  EXPECT_FALSE(c->channel_open());
}
