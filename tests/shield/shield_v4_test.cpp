// Shield v4: the upstream vectors byte for byte, the rejection rules of spec §7, freshness,
// the salt cache seen from outside, and round trips in both modes and suites.
#include <openssl/evp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "shield_nitro/core/clock.h"
#include "shield_nitro/shield/format.h"
#include "shield_nitro/shield/kdf.h"
#include "shield_nitro/shield/shield.h"
#include "test_support.h"

namespace shield_nitro::shield {
namespace {

using testing::code_of;
using testing::flip_bit;

constexpr int64_t kVectorTime = 1700000000000;

nlohmann::json load_vectors() {
  std::ifstream f(std::string(SN_FIXTURES_DIR) + "/shield/v4_test_vectors.json");
  EXPECT_TRUE(f.good()) << "missing fixtures at " << SN_FIXTURES_DIR;
  nlohmann::json j = nlohmann::json::parse(f);
  nlohmann::json all = nlohmann::json::array();
  for (const char* group : {"deterministic_vectors", "deterministic_vectors_chacha"})
    for (auto& v : j[group]) all.push_back(v);
  return all;
}

Suite suite_of(const nlohmann::json& v) { return v["suite"] == "0x02" ? Suite::kChaCha20Poly1305 : Suite::kAes256Gcm; }

// The random bytes encrypt() draws, in order: [salt at construction], nonce, one byte that
// rejection sampling maps to pad_len, then the padding.
Bytes script_for(const nlohmann::json& v) {
  Bytes s;
  if (v["mode"] == "password") s = hex_decode(v["salt_hex"].get<std::string>());
  Bytes nonce = hex_decode(v["nonce_hex"].get<std::string>());
  s.insert(s.end(), nonce.begin(), nonce.end());
  s.push_back(static_cast<uint8_t>(v["pad_len"].get<int>() - 32));
  Bytes pad = hex_decode(v["padding_hex"].get<std::string>());
  s.insert(s.end(), pad.begin(), pad.end());
  return s;
}

Shield shield_for(const nlohmann::json& v, ShieldOptions o) {
  if (v["mode"] == "password")
    return Shield::with_password(as_bytes(v["password"].get<std::string>()), v["service"].get<std::string>(), o);
  return Shield::with_key(ShieldKey::from_bytes(hex_decode(v["key_hex"].get<std::string>())), o);
}

TEST(ShieldVectors, AllEightArePresent) { EXPECT_EQ(load_vectors().size(), 8u); }

TEST(ShieldVectors, KeyDerivationsMatch) {
  for (auto& v : load_vectors()) {
    SCOPED_TRACE(v["name"].get<std::string>());
    Bytes master = hex_decode(v["master_key_hex"].get<std::string>());
    if (v["mode"] == "password") {
      SecureBytes derived = derive_password_master(as_bytes(v["password"].get<std::string>()),
                                                   hex_decode(v["salt_hex"].get<std::string>()),
                                                   v["service"].get<std::string>(), v["iterations"].get<int>());
      EXPECT_EQ(hex_encode(derived.view()), v["master_key_hex"]);
    } else {
      EXPECT_EQ(v["key_hex"], v["master_key_hex"]);
    }
    EXPECT_EQ(hex_encode(derive_aead_key(master).view()), v["aead_key_hex"]);
  }
}

// Spec §11 steps 3-5 plus the negative cases of step 6, per vector.
class ShieldVectorTest : public ::testing::TestWithParam<size_t> {
 protected:
  nlohmann::json v = load_vectors()[GetParam()];
};

TEST_P(ShieldVectorTest, EncryptReproducesExpectedOutput) {
  FixedClock clock(kVectorTime);
  ScriptedRandom rng(script_for(v));
  Shield s = shield_for(v, {.suite = suite_of(v), .clock = &clock, .random = &rng});
  Bytes out = s.encrypt(hex_decode(v["plaintext_hex"].get<std::string>()));
  EXPECT_EQ(hex_encode(out), v["expected_output_hex"]);
  EXPECT_EQ(rng.remaining(), 0u);
}

TEST_P(ShieldVectorTest, DecryptsAndRejectsAsTheSpecSays) {
  const Bytes expected = hex_decode(v["expected_output_hex"].get<std::string>());
  const Bytes plaintext = hex_decode(v["plaintext_hex"].get<std::string>());
  const bool pw = v["mode"] == "password";
  // A fresh instance: in password mode its own salt differs, so the header salt is used.
  Shield at_rest = shield_for(v, {.max_age_ms = std::nullopt});
  EXPECT_EQ(to_bytes(at_rest.decrypt(expected).view()), plaintext);
  EXPECT_EQ(at_rest.cached_salts(), pw ? 1u : 0u);

  // The default window and the real clock: stale. Same keys, so build on the same state.
  Shield fresh_only = shield_for(v, {});
  if (!pw) {
    EXPECT_EQ(code_of([&] { fresh_only.decrypt(expected); }), Errc::kExpired);
  }

  // Every bit of every region except the salt (each salt flip costs a PBKDF2: two of them).
  const size_t header = pw ? 18 : 2;
  for (size_t bit = 0; bit < expected.size() * 8; ++bit) {
    if (pw && bit >= 16 && bit < 8 * header && bit != 16 && bit != 8 * header - 1) continue;
    Errc e = code_of([&] { at_rest.decrypt(flip_bit(expected, bit)); });
    if (bit < 16) {
      EXPECT_TRUE(e == Errc::kUnsupported || e == Errc::kAuth || e == Errc::kFormat) << bit;
    } else {
      EXPECT_EQ(e, Errc::kAuth) << "bit " << bit;
    }
  }
  EXPECT_EQ(at_rest.cached_salts(), pw ? 1u : 0u) << "forged salts must not enter the cache";

  // Every truncation, including each header boundary.
  for (size_t n = 0; n < expected.size(); ++n)
    EXPECT_NE(code_of([&] { at_rest.decrypt(ByteView(expected).first(n)); }), Errc::kInternal) << n;

  Bytes v2 = expected;
  v2[0] = 0x02;
  EXPECT_EQ(code_of([&] { at_rest.decrypt(v2); }), Errc::kUnsupported);
  Bytes suite3 = expected;
  suite3[1] = 0x03;
  EXPECT_EQ(code_of([&] { at_rest.decrypt(suite3); }), Errc::kUnsupported);
}

INSTANTIATE_TEST_SUITE_P(Upstream, ShieldVectorTest, ::testing::Range<size_t>(0, 8),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return load_vectors()[info.param]["name"].get<std::string>();
                         });

TEST(ShieldVectors, PasswordVectorIsStaleUnderTheRealClock) {
  auto v = load_vectors()[0];
  Shield s = shield_for(v, {});
  EXPECT_EQ(code_of([&] { s.decrypt(hex_decode(v["expected_output_hex"].get<std::string>())); }), Errc::kExpired);
}

TEST(ShieldVectors, WrongPasswordAndWrongServiceFail) {
  auto v = load_vectors()[0];
  Bytes msg = hex_decode(v["expected_output_hex"].get<std::string>());
  ShieldOptions o{.max_age_ms = std::nullopt};
  Shield wrong_pw = Shield::with_password(as_bytes("test-password-124"), v["service"].get<std::string>(), o);
  EXPECT_EQ(code_of([&] { wrong_pw.decrypt(msg); }), Errc::kAuth);
  Shield wrong_service = Shield::with_password(as_bytes(v["password"].get<std::string>()), "test.example.org", o);
  EXPECT_EQ(code_of([&] { wrong_service.decrypt(msg); }), Errc::kAuth);
  EXPECT_EQ(wrong_pw.cached_salts() + wrong_service.cached_salts(), 0u);
}

// ---- rejection rules with key mode (no PBKDF2) ----

Shield key_shield(ShieldOptions o = {}) { return Shield::with_key(ShieldKey::from_bytes(Bytes(32, 7)), o); }

TEST(ShieldDecrypt, RejectsEmptyAndUnknownVersions) {
  Shield s = key_shield();
  EXPECT_EQ(code_of([&] { s.decrypt({}); }), Errc::kFormat);
  for (uint8_t version : {0x00, 0x01, 0x02, 0x04, 0x12, 0x14, 0xff}) {
    Bytes m(200, 0);
    m[0] = version;
    m[1] = 0x01;
    EXPECT_EQ(code_of([&] { s.decrypt(m); }), Errc::kUnsupported) << int(version);
  }
}

TEST(ShieldDecrypt, ChecksLengthBeforeSuite) {
  Shield s = key_shield();
  Bytes m = {0x13, 0x09};  // unknown suite, but too short is what must be reported
  EXPECT_EQ(code_of([&] { s.decrypt(m); }), Errc::kFormat);
  Bytes p(45, 0);
  p[0] = 0x03;
  p[1] = 0x09;
  EXPECT_EQ(code_of([&] { s.decrypt(p); }), Errc::kFormat);
}

TEST(ShieldDecrypt, PasswordMessageToKeyShieldIsAFormatError) {
  Bytes m(120, 0);
  m[0] = 0x03;
  m[1] = 0x01;
  Shield s = key_shield();
  try {
    s.decrypt(m);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kFormat);
    EXPECT_NE(std::string(e.what()).find("password-mode"), std::string::npos);
  }
}

TEST(ShieldDecrypt, WrongKeyIsAuthenticationFailed) {
  Bytes m = key_shield().encrypt(as_bytes("hi"));
  Shield other = Shield::with_key(ShieldKey::from_bytes(Bytes(32, 8)));
  try {
    other.decrypt(m);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kAuth);
    EXPECT_STREQ(e.what(), "authentication failed");
  }
}

TEST(ShieldDecrypt, SuiteByteIsAuthenticated) {
  Shield s = key_shield({.suite = Suite::kChaCha20Poly1305});
  Bytes m = s.encrypt(as_bytes("suite"));
  m[1] = 0x01;
  EXPECT_EQ(code_of([&] { s.decrypt(m); }), Errc::kAuth);
}

// Seals an arbitrary inner plaintext with the real key (an independent EVP path), to reach
// the checks that run after the tag: pad_len range and inner length.
Bytes seal_inner(ByteView inner) {
  SecureBytes aead = derive_aead_key(Bytes(32, 7));
  Bytes out = {0x13, 0x01};
  Bytes nonce(12, 0x42);
  out.insert(out.end(), nonce.begin(), nonce.end());
  out.resize(14 + inner.size() + 16);
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  int len = 0;
  EXPECT_EQ(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), nullptr, aead.data(), nonce.data()), 1);
  EXPECT_EQ(EVP_EncryptUpdate(c, nullptr, &len, out.data(), 2), 1);
  EXPECT_EQ(EVP_EncryptUpdate(c, out.data() + 14, &len, inner.data(), static_cast<int>(inner.size())), 1);
  EXPECT_EQ(EVP_EncryptFinal_ex(c, out.data() + 14 + inner.size(), &len), 1);
  EXPECT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, out.data() + 14 + inner.size()), 1);
  EVP_CIPHER_CTX_free(c);
  return out;
}

Bytes inner_with(uint64_t ts, uint8_t pad_len, size_t pad_bytes, ByteView msg) {
  Bytes in(8);
  for (int i = 0; i < 8; ++i) in[i] = static_cast<uint8_t>(ts >> (8 * i));
  in.push_back(pad_len);
  in.resize(in.size() + pad_bytes, 0xAA);
  in.insert(in.end(), msg.begin(), msg.end());
  return in;
}

TEST(ShieldDecrypt, AcceptsAHandSealedMessage) {
  Shield s = key_shield({.max_age_ms = std::nullopt});
  Bytes m = seal_inner(inner_with(kVectorTime, 40, 40, as_bytes("ok")));
  EXPECT_EQ(to_string(s.decrypt(m).view()), "ok");
}

TEST(ShieldDecrypt, RejectsPadLenOutOfRange) {
  Shield s = key_shield({.max_age_ms = std::nullopt});
  for (int pad : {0, 31, 129, 255})
    EXPECT_EQ(code_of([&] { s.decrypt(seal_inner(inner_with(kVectorTime, uint8_t(pad), 0, Bytes(300, 1)))); }),
              Errc::kFormat)
        << pad;
  // In range, but longer than what follows.
  EXPECT_EQ(code_of([&] { s.decrypt(seal_inner(inner_with(kVectorTime, 64, 63, {}))); }), Errc::kFormat);
  // Inner plaintext shorter than the 9-byte inner header.
  EXPECT_EQ(code_of([&] { s.decrypt(seal_inner(Bytes(8, 0))); }), Errc::kFormat);
  EXPECT_EQ(code_of([&] { s.decrypt(seal_inner({})); }), Errc::kFormat);
}

// ---- freshness ----

TEST(ShieldFreshness, WindowEdges) {
  const int64_t t = kVectorTime;
  FixedClock sender_clock(t), receiver_clock(t);
  Shield sender = key_shield({.clock = &sender_clock});
  Shield receiver = key_shield({.clock = &receiver_clock});
  Bytes m = sender.encrypt(as_bytes("x"));
  receiver_clock.set_ms(t + 60000);
  EXPECT_EQ(to_string(receiver.decrypt(m).view()), "x");
  receiver_clock.set_ms(t + 60001);
  EXPECT_EQ(code_of([&] { receiver.decrypt(m); }), Errc::kExpired);
  receiver_clock.set_ms(t - 5000);
  EXPECT_EQ(to_string(receiver.decrypt(m).view()), "x");
  receiver_clock.set_ms(t - 5001);
  EXPECT_EQ(code_of([&] { receiver.decrypt(m); }), Errc::kExpired);
}

TEST(ShieldFreshness, ConfigurableAndDisabled) {
  FixedClock clock(kVectorTime);
  Bytes m = key_shield({.clock = &clock}).encrypt(as_bytes("x"));
  FixedClock later(kVectorTime + 3600 * 1000);
  EXPECT_EQ(code_of([&] { key_shield({.clock = &later}).decrypt(m); }), Errc::kExpired);
  EXPECT_EQ(to_string(key_shield({.max_age_ms = 3600 * 1000, .clock = &later}).decrypt(m).view()), "x");
  EXPECT_EQ(to_string(key_shield({.max_age_ms = std::nullopt, .clock = &later}).decrypt(m).view()), "x");
  FixedClock earlier(kVectorTime - 10000);
  EXPECT_EQ(code_of([&] { key_shield({.clock = &earlier}).decrypt(m); }), Errc::kExpired);
  EXPECT_EQ(to_string(key_shield({.future_skew_ms = 20000, .clock = &earlier}).decrypt(m).view()), "x");
}

TEST(ShieldFreshness, ExtremeTimestampsDoNotOverflow) {
  Shield s = key_shield();
  EXPECT_EQ(code_of([&] { s.decrypt(seal_inner(inner_with(~uint64_t{0}, 32, 32, {}))); }), Errc::kExpired);
  EXPECT_EQ(code_of([&] { s.decrypt(seal_inner(inner_with(uint64_t{1} << 63, 32, 32, {}))); }), Errc::kExpired);
  EXPECT_EQ(code_of([&] { s.decrypt(seal_inner(inner_with(0, 32, 32, {}))); }), Errc::kExpired);
}

// ---- round trips ----

struct RoundTripCase {
  bool password;
  Suite suite;
};

class ShieldRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(ShieldRoundTrip, SizesAndOverhead) {
  auto [pw, suite] = GetParam();
  Shield s = pw ? Shield::with_password(as_bytes("pw"), "svc", {.suite = suite}) : key_shield({.suite = suite});
  const size_t fixed = pw ? 46 : 30;
  for (size_t n : {0, 1, 15, 16, 17, 1000, 65536, 1 << 20}) {
    Bytes pt = testing::random_bytes(n);
    Bytes m = s.encrypt(pt);
    EXPECT_EQ(m[0], pw ? 0x03 : 0x13);
    EXPECT_EQ(m[1], static_cast<uint8_t>(suite));
    size_t pad = m.size() - n - fixed - 9;
    EXPECT_GE(pad, 32u);
    EXPECT_LE(pad, 128u);
    EXPECT_EQ(to_bytes(s.decrypt(m).view()), pt);
  }
}

INSTANTIATE_TEST_SUITE_P(ModesAndSuites, ShieldRoundTrip,
                         ::testing::Values(RoundTripCase{false, Suite::kAes256Gcm},
                                           RoundTripCase{false, Suite::kChaCha20Poly1305},
                                           RoundTripCase{true, Suite::kAes256Gcm},
                                           RoundTripCase{true, Suite::kChaCha20Poly1305}));

TEST(ShieldEncrypt, PaddingCoversTheWholeRangeAndNoncesDiffer) {
  Shield s = key_shield();
  std::set<size_t> pads;
  std::set<Bytes> nonces;
  for (int i = 0; i < 3000; ++i) {
    Bytes m = s.encrypt({});
    pads.insert(m.size() - 30 - 9);
    nonces.insert(Bytes(m.begin() + 2, m.begin() + 14));
  }
  EXPECT_EQ(pads.size(), 97u);
  EXPECT_EQ(*pads.begin(), 32u);
  EXPECT_EQ(*pads.rbegin(), 128u);
  EXPECT_EQ(nonces.size(), 3000u);
}

// Nonces come from a per-thread buffer of CSPRNG output; a forked child must not replay the
// parent's buffer.
TEST(ShieldEncrypt, ForkedChildDoesNotRepeatTheParentsNonces) {
  Shield s = key_shield();
  s.encrypt({});  // fill this thread's buffer before forking
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    Bytes m = s.encrypt({});
    ssize_t w = ::write(fds[1], m.data() + 2, 12);
    ::_exit(w == 12 ? 0 : 1);
  }
  Bytes mine = s.encrypt({});
  uint8_t theirs[12] = {};
  EXPECT_EQ(::read(fds[0], theirs, 12), 12);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_NE(Bytes(mine.begin() + 2, mine.begin() + 14), Bytes(theirs, theirs + 12));
}

TEST(ShieldEncrypt, SuiteDecidesEncryptionButDecryptReadsBoth) {
  Shield gcm = key_shield();
  Shield chacha = key_shield({.suite = Suite::kChaCha20Poly1305});
  EXPECT_EQ(to_string(gcm.decrypt(chacha.encrypt(as_bytes("c"))).view()), "c");
  EXPECT_EQ(to_string(chacha.decrypt(gcm.encrypt(as_bytes("g"))).view()), "g");
}

TEST(ShieldEncrypt, ConcurrentUseOfOneShield) {
  Shield s = key_shield();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        Bytes pt(static_cast<size_t>(i + t), static_cast<uint8_t>(t));
        if (to_bytes(s.decrypt(s.encrypt(pt)).view()) == pt) ++ok;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 800);
}

TEST(ShieldPasswordMode, CachesASendersSaltOnlyAfterItVerifies) {
  Shield sender = Shield::with_password(as_bytes("pw"), "svc");
  Shield receiver = Shield::with_password(as_bytes("pw"), "svc");
  Bytes m1 = sender.encrypt(as_bytes("one"));
  Bytes m2 = sender.encrypt(as_bytes("two"));
  EXPECT_EQ(m1.size() > 18 && std::equal(m1.begin() + 2, m1.begin() + 18, m2.begin() + 2), true);
  EXPECT_EQ(receiver.cached_salts(), 0u);
  EXPECT_EQ(to_string(receiver.decrypt(m1).view()), "one");
  EXPECT_EQ(receiver.cached_salts(), 1u);
  EXPECT_EQ(to_string(receiver.decrypt(m2).view()), "two");
  EXPECT_EQ(receiver.cached_salts(), 1u);
  // A forged message under a new salt costs one PBKDF2 but leaves the cache alone.
  Bytes forged = m1;
  forged[5] ^= 1;
  EXPECT_EQ(code_of([&] { receiver.decrypt(forged); }), Errc::kAuth);
  EXPECT_EQ(receiver.cached_salts(), 1u);
  // Its own messages use the key derived for its own salt, not the cache.
  EXPECT_EQ(to_string(receiver.decrypt(receiver.encrypt(as_bytes("self"))).view()), "self");
  EXPECT_EQ(receiver.cached_salts(), 1u);
}

TEST(ShieldEncrypt, IntoAReusedBufferGivesWholeMessages) {
  FixedClock clock(kVectorTime);
  Shield s = key_shield({.clock = &clock});
  Bytes out(5000, 0xEE);  // stale bytes from an earlier, larger message must not survive
  for (size_t n : {1000, 10, 100}) {
    Bytes pt = testing::random_bytes(n);
    s.encrypt_into(pt, out);
    EXPECT_GE(out.size(), 2 + 12 + 9 + 32 + n + 16);
    EXPECT_LE(out.size(), 2 + 12 + 9 + 128 + n + 16);
    EXPECT_EQ(to_bytes(s.decrypt(out).view()), pt);
  }
}

TEST(ShieldDecrypt, IntoAReusedBufferAndEmptiedOnFailure) {
  FixedClock clock(kVectorTime);
  Shield s = key_shield({.clock = &clock});
  SecureBytes out;
  for (size_t n : {100, 10, 1000}) {
    Bytes pt = testing::random_bytes(n);
    s.decrypt_into(s.encrypt(pt), out);
    EXPECT_EQ(to_bytes(out.view()), pt);
  }
  Bytes m = s.encrypt(as_bytes("secret"));
  Bytes bad = m;
  bad.back() ^= 1;
  EXPECT_EQ(code_of([&] { s.decrypt_into(bad, out); }), Errc::kAuth);
  EXPECT_TRUE(out.empty());
  s.decrypt_into(m, out);
  clock.advance_ms(60001);
  EXPECT_EQ(code_of([&] { s.decrypt_into(m, out); }), Errc::kExpired);
  EXPECT_TRUE(out.empty());
}

// Two-part messages (head || body, e.g. the channel's seq || payload): byte for byte the
// message of the concatenation, for heads that share the inner header's AEAD update (<= 16
// bytes) and longer ones, in both modes and suites.
TEST(ShieldTwoPart, EncryptIsTheMessageOfTheConcatenation) {
  FixedClock clock(kVectorTime);
  Bytes script = testing::random_bytes(400);
  for (RoundTripCase c : {RoundTripCase{false, Suite::kAes256Gcm}, RoundTripCase{false, Suite::kChaCha20Poly1305},
                          RoundTripCase{true, Suite::kAes256Gcm}}) {
    const bool pw = c.password;  // named copies: lambdas may not capture structured bindings (clang 14)
    const Suite suite = c.suite;
    for (size_t h : {0, 1, 8, 16, 17, 40}) {
      for (size_t n : {0, 1, 1000}) {
        if (pw && (n != 1000 || (h != 8 && h != 40))) continue;  // PBKDF2 per Shield: a few cases only
        ScriptedRandom r1(script), r2(script);
        auto make = [&](Random& r) {
          ShieldOptions o{.suite = suite, .clock = &clock, .random = &r};
          return pw ? Shield::with_password(as_bytes("pw"), "svc", o) : key_shield(o);
        };
        Shield a = make(r1), b = make(r2);
        Bytes head = testing::random_bytes(h), body = testing::random_bytes(n);
        Bytes two(3, 0xEE);  // stale content must not survive
        a.encrypt_into(head, body, two);
        EXPECT_EQ(two, b.encrypt(testing::concat(head, body))) << pw << " head " << h << " body " << n;
        EXPECT_EQ(to_bytes(b.decrypt(two).view()), testing::concat(head, body));
      }
    }
  }
}

TEST(ShieldTwoPart, SplitDecryptGivesHeadAndBody) {
  FixedClock clock(kVectorTime);
  Shield s = key_shield({.clock = &clock});
  SecureBytes body;  // reused across messages of different sizes
  for (size_t h : {0, 8, 16, 17, 40})
    for (size_t n : {1000, 0, 1, 100}) {
      Bytes pt = testing::random_bytes(h + n);
      Bytes head(h, 0xEE);
      s.decrypt_split_into(s.encrypt(pt), head, body);
      EXPECT_EQ(head, Bytes(pt.begin(), pt.begin() + static_cast<ptrdiff_t>(h))) << h << "/" << n;
      EXPECT_EQ(to_bytes(body.view()), Bytes(pt.begin() + static_cast<ptrdiff_t>(h), pt.end())) << h << "/" << n;
    }
}

// Failures leave nothing behind: the head is zeroed, the body emptied, whatever the reason.
TEST(ShieldTwoPart, SplitDecryptFailuresWipeHeadAndBody) {
  FixedClock clock(kVectorTime);
  Shield s = key_shield({.clock = &clock});
  auto expect_wiped = [](const Bytes& head, const SecureBytes& body) {
    EXPECT_EQ(head, Bytes(head.size(), 0));
    EXPECT_TRUE(body.empty());
  };
  // Shorter than the head (merged and separate paths): a format error after authentication.
  for (std::pair<size_t, size_t> hn : {std::pair<size_t, size_t>{8, 5}, {16, 12}, {40, 20}, {8, 0}}) {
    const size_t h = hn.first, n = hn.second;
    Bytes head(h, 0xAA);
    SecureBytes body(as_bytes("stale"));
    EXPECT_EQ(code_of([&] { s.decrypt_split_into(s.encrypt(testing::random_bytes(n)), head, body); }), Errc::kFormat)
        << h << "/" << n;
    expect_wiped(head, body);
  }
  Bytes m = s.encrypt(testing::random_bytes(100));
  Bytes head(8, 0xAA);
  SecureBytes body;
  EXPECT_EQ(code_of([&] { s.decrypt_split_into(flip_bit(m, 8 * (m.size() - 1)), head, body); }), Errc::kAuth);
  expect_wiped(head, body);
  EXPECT_EQ(code_of([&] { key_shield({.suite = Suite::kAes256Gcm, .clock = &clock})
                               .decrypt_split_into(flip_bit(m, 8 * 20), head, body); }),
            Errc::kAuth);
  expect_wiped(head, body);
  s.decrypt_split_into(m, head, body);
  EXPECT_NE(head, Bytes(8, 0));
  clock.advance_ms(60001);
  EXPECT_EQ(code_of([&] { s.decrypt_split_into(m, head, body); }), Errc::kExpired);
  expect_wiped(head, body);
}

TEST(ShieldKeyTest, SizeIsChecked) {
  EXPECT_EQ(code_of([] { ShieldKey::from_bytes(Bytes(31)); }), Errc::kUsage);
  EXPECT_EQ(code_of([] { ShieldKey::from_bytes(Bytes(33)); }), Errc::kUsage);
  EXPECT_NE(hex_encode(ShieldKey::generate().expose_secret()), hex_encode(ShieldKey::generate().expose_secret()));
}

TEST(Format, DetectsByFirstBytes) {
  EXPECT_EQ(detect_format({}), Format::kUnknown);
  EXPECT_EQ(detect_format(Bytes{0x03}), Format::kV4Password);
  EXPECT_EQ(detect_format(Bytes{0x13, 0x01}), Format::kV4Key);
  EXPECT_EQ(detect_format(as_bytes("SNST\x01")), Format::kStream);
  EXPECT_EQ(detect_format(as_bytes("SNS")), Format::kUnknown);
  EXPECT_EQ(detect_format(as_bytes("SNSX")), Format::kUnknown);
  EXPECT_EQ(detect_format(Bytes{0x02, 0x01}), Format::kUnknown);
}

TEST(Suites, NamesRoundTrip) {
  for (Suite s : {Suite::kAes256Gcm, Suite::kChaCha20Poly1305}) EXPECT_EQ(parse_suite(suite_name(s)), s);
  EXPECT_EQ(code_of([] { parse_suite("aes-128-gcm"); }), Errc::kUsage);
}

}  // namespace
}  // namespace shield_nitro::shield
