// The simulated NSM: PCR semantics, document shape, certificate chain, state folder, server.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/nsm/client.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "sim_test_util.h"

using namespace shield_nitro;
using namespace shield_nitro::nsm;
using nsm_test::TempDir;

namespace {

// 2025-03-01T12:00:00Z
constexpr int64_t kT0 = 1740830400000;

Bytes pcr_of(uint8_t fill) { return Bytes(kPcrSize, fill); }

BootPcrs prod_pcrs() {
  BootPcrs p;
  p.values = {{0, pcr_of(0xa0)}, {1, pcr_of(0xa1)}, {2, pcr_of(0xa2)}, {4, pcr_of(0xa4)}};
  return p;
}

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const NsmError& e) {
    return e.nsm_code();
  }
  return ErrorCode::kSuccess;
}

Bytes sha384_concat(const Bytes& a, const Bytes& b) {
  Bytes in = a;
  in.insert(in.end(), b.begin(), b.end());
  Bytes out(48);
  EVP_Digest(in.data(), in.size(), out.data(), nullptr, EVP_sha384(), nullptr);
  return out;
}

struct Sim {
  TempDir dir;
  FixedClock clock{kT0};
  std::shared_ptr<SimulatedNsm> nsm;
  std::unique_ptr<NsmClient> client;

  explicit Sim(BootPcrs pcrs = prod_pcrs(), SimulatorOptions opts = {}) {
    opts.clock = &clock;
    nsm = SimulatedNsm::create(dir.path(), pcrs, opts);
    client = std::make_unique<NsmClient>(std::make_unique<SimulatorTransport>(nsm));
  }
};

struct Doc {
  cose::Sign1 sign1;
  cbor::Value payload;
  std::vector<Bytes> bundle;
  Bytes leaf;
};

Doc open_doc(const Bytes& bytes) {
  Doc d;
  d.sign1 = cose::decode_sign1(bytes);
  d.payload = cbor::decode(d.sign1.payload, cbor::Limits::strict());
  for (const auto& c : d.payload.find("cabundle")->as_array()) d.bundle.push_back(c.as_bytes());
  d.leaf = d.payload.find("certificate")->as_bytes();
  return d;
}

bool has_ext_critical(X509* c, int nid) { return X509_get_ext_by_NID(c, nid, -1) >= 0 &&
                                                 X509_EXTENSION_get_critical(X509_get_ext(c, X509_get_ext_by_NID(c, nid, -1))); }

}  // namespace

TEST(SimulatorPcrs, BootPcrsAreLockedAndReadOnly) {
  Sim s;
  auto p0 = s.client->describe_pcr(0);
  EXPECT_TRUE(p0.lock);
  EXPECT_EQ(p0.data, pcr_of(0xa0));
  EXPECT_EQ(s.client->describe_pcr(3).data, Bytes(48));  // not given: zeros
  EXPECT_EQ(code_of([&] { s.client->extend_pcr(0, Bytes{1}); }), ErrorCode::kReadOnlyIndex);
  EXPECT_EQ(code_of([&] { s.client->extend_pcr(15, Bytes{1}); }), ErrorCode::kReadOnlyIndex);
  EXPECT_EQ(code_of([&] { s.client->lock_pcr(15); }), ErrorCode::kReadOnlyIndex);
}

TEST(SimulatorPcrs, ExtendIsSha384OfOldAndData) {
  Sim s;
  auto p16 = s.client->describe_pcr(16);
  EXPECT_FALSE(p16.lock);
  EXPECT_EQ(p16.data, Bytes(48));
  Bytes data = {'h', 'e', 'l', 'l', 'o'};
  Bytes once = s.client->extend_pcr(16, data);
  EXPECT_EQ(once, sha384_concat(Bytes(48), data));
  Bytes twice = s.client->extend_pcr(16, Bytes{});
  EXPECT_EQ(twice, sha384_concat(once, Bytes{}));
  EXPECT_EQ(s.client->describe_pcr(16).data, twice);
  EXPECT_EQ(s.client->describe_pcr(17).data, Bytes(48));  // others untouched
}

TEST(SimulatorPcrs, LockThenExtendIsReadOnly) {
  Sim s;
  s.client->extend_pcr(20, Bytes{1});
  s.client->lock_pcr(20);
  EXPECT_TRUE(s.client->describe_pcr(20).lock);
  EXPECT_EQ(code_of([&] { s.client->extend_pcr(20, Bytes{1}); }), ErrorCode::kReadOnlyIndex);
  EXPECT_EQ(code_of([&] { s.client->lock_pcr(20); }), ErrorCode::kReadOnlyIndex);
  s.client->extend_pcr(21, Bytes{1});  // still open
}

TEST(SimulatorPcrs, IndexAndRangeLimits) {
  Sim s;
  EXPECT_EQ(code_of([&] { s.client->describe_pcr(32); }), ErrorCode::kInvalidIndex);
  EXPECT_EQ(code_of([&] { s.client->extend_pcr(32, Bytes{1}); }), ErrorCode::kInvalidIndex);
  EXPECT_EQ(code_of([&] { s.client->lock_pcr(65535); }), ErrorCode::kInvalidIndex);
  EXPECT_EQ(code_of([&] { s.client->lock_pcrs(33); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { s.client->describe_pcr(31); }), ErrorCode::kSuccess);
}

TEST(SimulatorPcrs, LockPcrsLocksThePrefix) {
  Sim s;
  s.client->lock_pcrs(18);
  EXPECT_TRUE(s.client->describe_pcr(17).lock);
  EXPECT_FALSE(s.client->describe_pcr(18).lock);
  s.client->lock_pcrs(18);  // locking locked registers again through a range is fine
  auto d = s.client->describe_nsm();
  EXPECT_EQ(d.locked_pcrs.size(), 18u);
  s.client->lock_pcrs(32);
  EXPECT_EQ(s.client->describe_nsm().locked_pcrs.size(), 32u);
  EXPECT_EQ(code_of([&] { s.client->extend_pcr(31, Bytes{1}); }), ErrorCode::kReadOnlyIndex);
}

TEST(SimulatorDescribe, LooksLikeTheRealNsm) {
  Sim s;
  auto d = s.client->describe_nsm();
  EXPECT_EQ(d.max_pcrs, 32);
  EXPECT_EQ(d.digest, "SHA384");
  EXPECT_EQ(d.module_id, s.nsm->module_id());
  // i-<17 hex>-enc<16 hex>, like i-078824548edcf6519-enc01784234ec227b58
  ASSERT_EQ(d.module_id.size(), 39u);
  EXPECT_EQ(d.module_id.substr(0, 2), "i-");
  EXPECT_EQ(d.module_id.substr(19, 4), "-enc");
  std::vector<uint16_t> boot(16);
  for (uint16_t i = 0; i < 16; ++i) boot[i] = i;
  EXPECT_EQ(d.locked_pcrs, boot);
  EXPECT_EQ(s.client->get_random().size(), 256u);
  EXPECT_NE(s.client->get_random(), s.client->get_random());
}

TEST(SimulatorBoot, PcrRules) {
  BootPcrs none;
  EXPECT_THROW(none.validate(), Error);  // neither PCR0 nor debug
  BootPcrs zero0;
  zero0.values[0] = Bytes(48);
  EXPECT_THROW(zero0.validate(), Error);
  BootPcrs debug;
  debug.debug = true;
  debug.values[3] = pcr_of(3);
  EXPECT_NO_THROW(debug.validate());
  debug.values[8] = pcr_of(8);
  EXPECT_THROW(debug.validate(), Error);  // PCR8 reads as zeros in debug mode
  BootPcrs high = prod_pcrs();
  high.values[16] = pcr_of(1);
  EXPECT_THROW(high.validate(), Error);
  BootPcrs short_value = prod_pcrs();
  short_value.values[1] = Bytes(32);
  EXPECT_THROW(short_value.validate(), Error);
}

TEST(SimulatorDocument, HasTheRealShape) {
  Sim s;
  s.client->extend_pcr(16, Bytes{7});
  s.client->lock_pcr(16);
  s.client->extend_pcr(17, Bytes{7});  // unlocked: not in the document
  Bytes bytes = s.client->attestation({std::nullopt, Bytes{1, 2, 3}, std::nullopt});
  ASSERT_EQ(bytes[0], 0x84);  // untagged
  EXPECT_EQ(hex_encode(ByteView(bytes).subspan(1, 6)), "44a1013822a0");
  Doc d = open_doc(bytes);
  EXPECT_FALSE(d.payload.indefinite());
  const char* keys[] = {"module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"};
  ASSERT_EQ(d.payload.as_map().size(), 9u);
  for (size_t i = 0; i < 9; ++i) EXPECT_EQ(d.payload.as_map()[i].first.as_text(), keys[i]);
  EXPECT_EQ(d.sign1.payload[0], 0xa9);
  EXPECT_EQ(d.payload.find("module_id")->as_text(), s.nsm->module_id());
  EXPECT_EQ(d.payload.find("digest")->as_text(), "SHA384");
  EXPECT_EQ(d.payload.find("timestamp")->as_uint(), static_cast<uint64_t>(kT0));  // milliseconds
  EXPECT_TRUE(d.payload.find("public_key")->is_null());
  EXPECT_TRUE(d.payload.find("user_data")->is_null());
  EXPECT_EQ(d.payload.find("nonce")->as_bytes(), (Bytes{1, 2, 3}));
  const auto& pcrs = d.payload.find("pcrs")->as_map();
  ASSERT_EQ(pcrs.size(), 17u);  // 0–15 and the locked 16
  for (size_t i = 0; i < 17; ++i) {
    EXPECT_EQ(pcrs[i].first.as_uint(), i);
    EXPECT_EQ(pcrs[i].second.as_bytes().size(), 48u);
  }
  EXPECT_EQ(pcrs[0].second.as_bytes(), pcr_of(0xa0));
  EXPECT_EQ(pcrs[16].second.as_bytes(), sha384_concat(Bytes(48), Bytes{7}));
  EXPECT_EQ(d.bundle.size(), 4u);
  EXPECT_EQ(d.bundle[0], s.nsm->root_der());
  for (const auto& c : d.bundle) EXPECT_LE(c.size(), 1024u);
  EXPECT_LE(d.leaf.size(), 1024u);
  // Signed ES384 by the leaf.
  auto leaf = nsm_test::parse_der(d.leaf);
  EVP_PKEY* key = X509_get0_pubkey(leaf.get());
  EXPECT_TRUE(cose::is_p384(key));
  EXPECT_NO_THROW(cose::verify_es384(d.sign1, key));
  d.sign1.payload.back() ^= 1;
  EXPECT_THROW(cose::verify_es384(d.sign1, key), Error);
}

TEST(SimulatorDocument, EmptyFieldsStayEmptyAndMaximaFit) {
  Sim s;
  Doc d = open_doc(s.client->attestation({Bytes{}, Bytes{}, Bytes{}}));
  EXPECT_EQ(d.payload.find("user_data")->as_bytes().size(), 0u);
  EXPECT_EQ(d.payload.find("public_key")->as_bytes().size(), 0u);
  Bytes k(1024, 0x11);
  Doc big = open_doc(s.client->attestation({k, k, k}));
  EXPECT_EQ(big.payload.find("nonce")->as_bytes(), k);
  EXPECT_EQ(code_of([&] { s.client->attestation({Bytes(1025, 0), std::nullopt, std::nullopt}); }),
            ErrorCode::kInputTooLarge);
  EXPECT_EQ(code_of([&] { s.client->attestation({std::nullopt, std::nullopt, Bytes(1025, 0)}); }),
            ErrorCode::kInputTooLarge);
}

TEST(SimulatorDocument, IndefinitePayloadOnRequest) {
  SimulatorOptions o;
  o.indefinite_payload = true;
  Sim s(prod_pcrs(), o);
  Doc d = open_doc(s.client->attestation({}));
  EXPECT_EQ(d.sign1.payload.front(), 0xbf);
  EXPECT_EQ(d.sign1.payload.back(), 0xff);
  EXPECT_TRUE(d.payload.indefinite());
  EXPECT_EQ(d.payload.as_map().size(), 9u);
  EXPECT_FALSE(d.payload.find("pcrs")->indefinite());
  EXPECT_FALSE(d.payload.find("cabundle")->indefinite());
}

TEST(SimulatorDocument, DebugModeZeroesTheImagePcrs) {
  BootPcrs p;
  p.debug = true;
  p.values[3] = pcr_of(3);
  p.values[4] = pcr_of(4);
  Sim s(p);
  Doc d = open_doc(s.client->attestation({}));
  const auto& pcrs = d.payload.find("pcrs")->as_map();
  for (int i : {0, 1, 2, 8}) EXPECT_EQ(pcrs[static_cast<size_t>(i)].second.as_bytes(), Bytes(48));
  EXPECT_EQ(pcrs[3].second.as_bytes(), pcr_of(3));
  EXPECT_EQ(pcrs[4].second.as_bytes(), pcr_of(4));
}

TEST(SimulatorChain, ProfileLikeAws) {
  Sim s;
  Doc d = open_doc(s.client->attestation({}));
  auto leaf = nsm_test::parse_der(d.leaf);
  ASSERT_TRUE(leaf);
  // Leaf: exactly 3 hours from the document's second; CA:FALSE critical; digitalSignature.
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf.get()), X509_get0_notAfter(leaf.get())), 1);
  EXPECT_EQ(days * 86400 + secs, 3 * 3600);
  time_t ts = kT0 / 1000;
  time_t before = ts - 1;  // notBefore is exactly the timestamp's second
  EXPECT_EQ(X509_cmp_time(X509_get0_notBefore(leaf.get()), &ts), -1);
  EXPECT_EQ(X509_cmp_time(X509_get0_notBefore(leaf.get()), &before), 1);
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  EXPECT_TRUE(has_ext_critical(leaf.get(), NID_basic_constraints));
  EXPECT_TRUE(X509_get_key_usage(leaf.get()) & KU_DIGITAL_SIGNATURE);
  EXPECT_EQ(X509_get_ext_by_NID(leaf.get(), NID_authority_key_identifier, -1), -1);
  EXPECT_EQ(X509_get_ext_by_NID(leaf.get(), NID_ext_key_usage, -1), -1);
  // CAs: root unconstrained, then pathLen 2, 1, 0; keyCertSign everywhere; all P-384/SHA-384.
  long expected_pathlen[] = {-1, 2, 1, 0};
  for (size_t i = 0; i < 4; ++i) {
    auto c = nsm_test::parse_der(d.bundle[i]);
    ASSERT_TRUE(c);
    EXPECT_GE(X509_check_ca(c.get()), 1) << i;
    EXPECT_TRUE(has_ext_critical(c.get(), NID_basic_constraints)) << i;
    EXPECT_TRUE(has_ext_critical(c.get(), NID_key_usage)) << i;
    EXPECT_TRUE(X509_get_key_usage(c.get()) & KU_KEY_CERT_SIGN) << i;
    EXPECT_EQ(X509_get_pathlen(c.get()), expected_pathlen[i]) << i;
    EXPECT_TRUE(cose::is_p384(X509_get0_pubkey(c.get()))) << i;
    EXPECT_EQ(X509_get_signature_nid(c.get()), NID_ecdsa_with_SHA384) << i;
  }
  EXPECT_EQ(X509_get_signature_nid(leaf.get()), NID_ecdsa_with_SHA384);
  EXPECT_EQ(nsm_test::verify_chain(d.leaf, d.bundle, s.nsm->root_der(), ts), 0);
  EXPECT_EQ(nsm_test::verify_chain(d.leaf, d.bundle, s.nsm->root_der(), ts + 3 * 3600 + 1), X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST(SimulatorChain, RootIsNeverAwsAndNeverChainsToIt) {
  Sim s;
  Doc d = open_doc(s.client->attestation({}));
  Bytes aws = read_file(std::string(SN_FIXTURES_DIR) + "/nsm/root/aws_nitro_enclaves_root_g1.der");
  EXPECT_NE(s.nsm->root_der(), aws);
  auto root = nsm_test::parse_der(s.nsm->root_der());
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(root.get()), NID_commonName, cn, sizeof cn);
  EXPECT_NE(std::string(cn).find("NOT AWS"), std::string::npos) << cn;
  EXPECT_EQ(std::string(cn).find("aws.nitro-enclaves"), std::string::npos);
  EXPECT_NE(nsm_test::verify_chain(d.leaf, d.bundle, aws, kT0 / 1000), 0);
  // Even with AWS's root swapped into the bundle, the path fails.
  auto forged = d.bundle;
  forged[0] = aws;
  EXPECT_NE(nsm_test::verify_chain(d.leaf, forged, aws, kT0 / 1000), 0);
}

TEST(SimulatorChain, LeafReuseWindow) {
  Sim s;
  Bytes leaf1 = open_doc(s.client->attestation({})).leaf;
  s.clock.advance_ms(5 * 60 * 1000);
  EXPECT_EQ(open_doc(s.client->attestation({})).leaf, leaf1);  // within 20 min: reused
  s.clock.advance_ms(20 * 60 * 1000);
  EXPECT_NE(open_doc(s.client->attestation({})).leaf, leaf1);

  SimulatorOptions fresh;
  fresh.leaf_reuse_ms = 0;
  Sim f(prod_pcrs(), fresh);
  EXPECT_NE(open_doc(f.client->attestation({})).leaf, open_doc(f.client->attestation({})).leaf);
}

TEST(SimulatorChain, IntermediatesAreRenewedBeforeTheyExpire) {
  Sim s;
  s.clock.advance_ms(30LL * 24 * 3600 * 1000);  // a month later: regional, zonal, instance all lapsed
  Doc d = open_doc(s.client->attestation({}));
  EXPECT_EQ(nsm_test::verify_chain(d.leaf, d.bundle, s.nsm->root_der(), s.clock.now_s()), 0);
  EXPECT_EQ(nsm_test::verify_chain(d.leaf, d.bundle, s.nsm->root_der(), s.clock.now_s() + 3 * 3600 - 1), 0);
  // The renewed certificates were written back to the folder.
  EXPECT_EQ(nsm_test::pem_file_to_der(s.dir / "instance.pem"), d.bundle[3]);
}

TEST(SimulatorState, FolderLayoutModesAndReinit) {
  TempDir dir;
  SimulatedNsm::init(dir.path(), prod_pcrs());
  for (const char* k : {"root.key", "regional.key", "zonal.key", "instance.key"}) {
    struct stat st{};
    ASSERT_EQ(::stat((dir / k).c_str(), &st), 0) << k;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << k;
  }
  Bytes root = nsm_test::pem_file_to_der(dir / "root.pem");
  ASSERT_FALSE(root.empty());
  auto sim = SimulatedNsm::open(dir.path());
  EXPECT_EQ(sim->root_der(), root);
  std::string module = sim->module_id();
  // Re-init with other PCRs keeps the root and the module id; open() reads the new PCRs.
  BootPcrs other = prod_pcrs();
  other.values[0] = pcr_of(0xee);
  SimulatedNsm::init(dir.path(), other);
  auto again = SimulatedNsm::open(dir.path());
  EXPECT_EQ(again->root_der(), root);
  EXPECT_EQ(again->module_id(), module);
  NsmClient c(std::make_unique<SimulatorTransport>(again));
  EXPECT_EQ(c.describe_pcr(0).data, pcr_of(0xee));
}

TEST(SimulatorState, OpenWithoutInitOrWithCorruptState) {
  TempDir dir;
  try {
    SimulatedNsm::open(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kEnvironment);
    EXPECT_NE(std::string(e.what()).find("nsm-sim init"), std::string::npos);
  }
  SimulatedNsm::init(dir.path(), prod_pcrs());
  write_file_atomic(dir / "state.json", as_bytes("{\"format\": 1}"));
  EXPECT_THROW(SimulatedNsm::open(dir.path()), Error);
  EXPECT_THROW(SimulatedNsm::init(dir.path(), prod_pcrs()), Error);  // never clobbered silently
  std::filesystem::remove(dir / "state.json");
  SimulatedNsm::init(dir.path(), prod_pcrs());
  write_file_atomic(dir / "zonal.key", as_bytes("garbage"), 0600);
  EXPECT_THROW(SimulatedNsm::open(dir.path()), Error);
}

TEST(SimulatorHandle, MalformedRequestsGetErrorReplies) {
  Sim s;
  auto reply_code = [&](const Bytes& req) {
    try {
      parse_lock_pcr(s.nsm->handle(req));
    } catch (const NsmError& e) {
      return e.nsm_code();
    }
    return ErrorCode::kSuccess;
  };
  EXPECT_EQ(reply_code({}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(reply_code({0xff}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(reply_code(hex_decode("a1656572726f72a0")), ErrorCode::kInvalidArgument);
  EXPECT_EQ(reply_code(Bytes(5000, 0x60)), ErrorCode::kInputTooLarge);
  EXPECT_EQ(reply_code(encode_request(LockPcrRequest{16})), ErrorCode::kSuccess);
}

// ---- the unix-socket server ------------------------------------------------------------

TEST(SimulatorServer, ServesConcurrentClientsAndCleansUp) {
  Sim s;
  std::string sock = simulator_socket_path(s.dir.path());
  auto server = s.nsm->serve(sock);
  ASSERT_TRUE(std::filesystem::exists(sock));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      NsmClient c(open_nsm("sim:" + s.dir.path()));
      for (int i = 0; i < 5; ++i) c.extend_pcr(static_cast<uint16_t>(16 + t), Bytes{static_cast<uint8_t>(i)});
      if (!open_doc(c.attestation({})).leaf.empty()) ++ok;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, 4);
  // Every extend landed exactly once per register.
  NsmClient c(std::make_unique<UnixSocketNsmTransport>(sock));
  Bytes expected(48);
  for (int i = 0; i < 5; ++i) expected = sha384_concat(expected, Bytes{static_cast<uint8_t>(i)});
  for (uint16_t r = 16; r < 20; ++r) EXPECT_EQ(c.describe_pcr(r).data, expected);
  // A second server on the same socket is refused while the first lives.
  EXPECT_THROW(s.nsm->serve(sock), Error);
  server->stop();
  EXPECT_FALSE(std::filesystem::exists(sock));
  EXPECT_THROW(c.describe_nsm(), Error);  // the connection was closed
}

TEST(SimulatorServer, OversizeAndGarbageFrames) {
  Sim s;
  std::string sock = simulator_socket_path(s.dir.path());
  auto server = s.nsm->serve(sock);
  auto raw_connect = [&] {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  };
  auto read_reply = [](int fd) {
    uint8_t h[4];
    if (::recv(fd, h, 4, MSG_WAITALL) != 4) return Bytes{};
    Bytes b(get_u32be(h));
    if (::recv(fd, b.data(), b.size(), MSG_WAITALL) != static_cast<ssize_t>(b.size())) return Bytes{};
    return b;
  };
  // Announced length over 0x1000: an InputTooLarge reply, then the server hangs up.
  int fd = raw_connect();
  uint8_t huge[4] = {0, 0, 0x20, 0};
  ASSERT_EQ(::send(fd, huge, 4, MSG_NOSIGNAL), 4);
  EXPECT_EQ(hex_encode(read_reply(fd)), hex_encode(encode_response(ErrorResponse{ErrorCode::kInputTooLarge})));
  uint8_t x;
  EXPECT_EQ(::recv(fd, &x, 1, 0), 0);
  ::close(fd);
  // Garbage in a well-formed frame: an InvalidArgument reply, and the connection stays usable.
  fd = raw_connect();
  uint8_t garbage[] = {0, 0, 0, 3, 0xff, 0x00, 0x13};
  ASSERT_EQ(::send(fd, garbage, sizeof garbage, MSG_NOSIGNAL), static_cast<ssize_t>(sizeof garbage));
  EXPECT_EQ(hex_encode(read_reply(fd)), hex_encode(encode_response(ErrorResponse{ErrorCode::kInvalidArgument})));
  Bytes req = encode_request(DescribeNsmRequest{});
  Bytes frame;
  put_u32be(frame, static_cast<uint32_t>(req.size()));
  frame.insert(frame.end(), req.begin(), req.end());
  ASSERT_EQ(::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL), static_cast<ssize_t>(frame.size()));
  EXPECT_EQ(parse_describe_nsm(read_reply(fd)).max_pcrs, 32);
  // A client that dies mid-frame does not disturb the server.
  uint8_t partial[] = {0, 0, 0, 9, 0x6b};
  ::send(fd, partial, sizeof partial, MSG_NOSIGNAL);
  ::close(fd);
  NsmClient c(open_nsm("sim:" + s.dir.path()));
  EXPECT_EQ(c.describe_nsm().max_pcrs, 32);
}

TEST(SimulatorServer, StaleSocketFileIsReplaced) {
  Sim s;
  std::string sock = simulator_socket_path(s.dir.path());
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);  // bound, never listening: a dead simulator's leftover
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::close(fd);
  auto server = s.nsm->serve(sock);
  NsmClient c(open_nsm("sim:" + s.dir.path()));
  EXPECT_EQ(c.describe_nsm().module_id, s.nsm->module_id());
  write_file_atomic(s.dir / "not-a-socket", as_bytes("x"));
  EXPECT_THROW(s.nsm->serve(s.dir / "not-a-socket"), Error);
}
