// Enclave operation bodies: arbitrary bytes as the decoded CBOR body of every operation, run
// through EnclaveService::handle() (the dispatch the server's handlers use), with no socket and
// no KMS.
//
// Input: records [selector u8][length u16 LE][length bytes], applied in order to one service.
//   selector % 15 = 0..11  that op (kOps) sent plain; body = the record's bytes as one CBOR item
//                          (records that are not CBOR are skipped: fuzz_net_frame covers those).
//                          For load-artifact, further CBOR items after the first are stream parts.
//                  12      the bytes as the "data" of a sealed request on the open session
//                  13      the bytes sealed by the open channel's client, so the service decodes
//                          them as {"op", "body"} inside the channel (every op, decrypt/invoke too)
//                  14      an unknown op with the bytes as body
// Oracle: no crash, hang or leak (ASan/UBSan); every refusal is a shield_nitro::Error whose code
// is not "internal" and whose message is not empty; a success is a map that encodes as a
// response; a sealed reply opens with the channel key and is {"ok": true, "body": map} or
// {"ok": false, "error": {"code": known name, "message": text}}; no reply carries the data key.
//
// State: one simulated NSM; a service holding key-1 (released once at set-up; afterwards the
// releaser refuses everything, like KMS with a policy that matches nothing) and one open channel.
// An input that leaves other keys or artifacts behind, or closes the channel, gets a fresh
// service, so handles (art-1, ...) mean the same from one input to the next.
//
// The seed corpus is written by this program:
//   SN_ENCLAVE_OPS_SEEDS=fuzz/corpus/enclave_ops build/fuzz/fuzz_enclave_ops
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/channel/handshake.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/enclave/service.h"
#include "shield_nitro/net/message.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/shield/stream.h"

using namespace shield_nitro;
using cbor::entry;
using cbor::Value;

namespace {

const char* const kOps[] = {"describe", "attest",  "set-credentials", "load-key", "load-artifact", "encrypt",
                            "decrypt",  "invoke",  "unload",          "stats",    "channel-open",  "sealed"};
constexpr uint8_t kGarbageSealed = 12, kSealedInner = 13, kUnknownOp = 14, kModes = 15;

// A fixed data key, so seeds can carry ciphertext that opens (encrypt/decrypt/load-artifact).
Bytes data_key_bytes() { return Bytes(32, 0x42); }

bool g_verbose = false;  // SN_ENCLAVE_OPS_VERBOSE=1: print each op's outcome (to check seeds)

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "enclave_ops: %s\n", what.c_str());
  __builtin_trap();
}

// Releases the data key while armed (set-up only), then refuses like KMS would.
class SetupOnlyReleaser : public enclave::KeyReleaser {
 public:
  bool armed = true;
  enclave::ReleasedKey release(const enclave::ReleaseRequest&, const enclave::PushedCredentials&) override {
    if (!armed) throw Error(Errc::kPolicy, "AccessDeniedException: the key policy does not allow this request");
    return {SecureBytes(data_key_bytes()), "arn:aws:kms:us-east-1:111122223333:key/fuzz"};
  }
};

// What the server gives a handler: here the stream parts come from the input.
class Context final : public net::RequestContext {
 public:
  explicit Context(std::vector<Value> parts = {}, bool streaming = false) : parts_(std::move(parts)), streaming_(streaming) {}
  uint64_t connection_id() const override { return 1; }
  bool streaming() const override { return streaming_; }
  std::optional<Value> next_part() override {
    if (next_ >= parts_.size()) return std::nullopt;
    return std::move(parts_[next_++]);
  }
  std::shared_ptr<void> connection_state() const override { return state_; }
  void set_connection_state(std::shared_ptr<void> s) override { state_ = std::move(s); }

 private:
  std::vector<Value> parts_;
  bool streaming_;
  size_t next_ = 0;
  std::shared_ptr<void> state_;
};

bool contains(ByteView hay, ByteView needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

struct Harness {
  std::string dir;
  std::shared_ptr<nsm::SimulatedNsm> sim;
  SetupOnlyReleaser* releaser = nullptr;  // owned by service
  std::unique_ptr<enclave::EnclaveService> service;
  std::unique_ptr<channel::SealedBox> box;
  Bytes session;
  bool dirty = false;  // the channel may be gone: boot again after this input

  Harness() {
    dir = (std::filesystem::temp_directory_path() / ("sn-fuzz-enclave-" + std::to_string(::getpid()))).string();
    nsm::BootPcrs pcrs;
    pcrs.values[0] = Bytes(48, 0xa0);
    sim = nsm::SimulatedNsm::create(dir, pcrs);
    boot();
  }

  Value call(const std::string& op, const Value& body) {
    Context ctx;
    return service->handle(op, body, ctx);
  }

  void push_credentials() {
    call("set-credentials", Value::map({entry("access_key_id", Value::text("AKIDFUZZ")), entry("secret_access_key", Value::text("s"))}));
  }

  // A fresh service with key-1 and an open channel (attest -> channel-open, as an SDK does).
  void boot() {
    service.reset();
    auto r = std::make_unique<SetupOnlyReleaser>();
    releaser = r.get();
    enclave::ServiceOptions opts;
    opts.listen = net::Endpoint::unix_path(dir + "/never-listened.sock");
    opts.policy = enclave::ReleasePolicy::parse(R"({"max_artifact_bytes": 1048576})");
    service = std::make_unique<enclave::EnclaveService>(
        std::make_unique<nsm::NsmClient>(std::make_unique<nsm::SimulatorTransport>(sim)), std::move(r), std::move(opts));
    push_credentials();
    if (call("load-key", Value::map({entry("ciphertext_blob", Value::bytes(Bytes{1}))})).find("handle")->as_text() != "key-1")
      finding("set-up: the first key is not key-1");
    releaser->armed = false;
    channel::ClientHandshake hs;
    Bytes doc = call("attest", Value::map({entry("nonce", Value::bytes(hs.nonce()))})).find("document")->as_bytes();
    Value payload = cbor::decode(cose::decode_sign1(doc).payload);
    auto opened = hs.finish(doc, payload.find("public_key")->as_bytes());
    session = call("channel-open", Value::map({entry("nonce", Value::bytes(hs.nonce())),
                                               entry("client_public", Value::bytes(opened.client_public)),
                                               entry("versions", Value::array({Value::uint(channel::kChannelVersion)}))}))
                  .find("session")->as_bytes();
    box = std::make_unique<channel::SealedBox>(opened.keys, channel::Role::kClient);
    dirty = false;
  }

  // Back to the baseline for the next input: same credentials; a fresh service when handles moved.
  void settle() {
    Value d = call("describe", Value::map());
    const auto& keys = d.find("keys")->as_array();
    bool moved = keys.size() != 1 || keys[0].find("handle")->as_text() != "key-1" || !d.find("artifacts")->as_array().empty();
    if (moved || dirty) boot();
    else push_credentials();
  }

  // The oracle for one plain answer.
  void check_success(const Value& out) {
    if (!out.is(cbor::Type::kMap)) finding("a success body is not a map");
    net::Response r = net::Response::success(out);
    if (contains(net::encode_response(r), data_key_bytes())) finding("a response carries the data key");
  }
  static void check_error(const Error& e) {
    if (e.code() == Errc::kInternal) finding(std::string("internal error: ") + e.what());
    if (std::strlen(e.what()) == 0) finding("an error without a message");
  }

  void plain(const std::string& op, const Value& body, std::vector<Value> parts = {}, bool streaming = false) {
    Context ctx(std::move(parts), streaming);
    try {
      check_success(service->handle(op, body, ctx));
      if (g_verbose) std::fprintf(stderr, "%s: ok\n", op.c_str());
    } catch (const Error& e) {
      if (g_verbose) std::fprintf(stderr, "%s: %s: %s\n", op.c_str(), errc_name(e.code()), e.what());
      check_error(e);
    } catch (const std::exception& e) {
      finding(std::string("non-Error exception from '") + op + "': " + e.what());
    }
  }

  void sealed_inner(ByteView inner) {
    Value req = Value::map({entry("session", Value::bytes(session)), entry("data", Value::bytes(box->seal(inner)))});
    Value out;
    try {
      out = call("sealed", req);
    } catch (const Error& e) {
      check_error(e);
      dirty = true;  // our session was pushed out (e.g. by 4096 channel-opens): open another
      return;
    } catch (const std::exception& e) {
      finding(std::string("non-Error exception from a sealed request: ") + e.what());
    }
    SecureBytes plain = box->open(out.find("data")->as_bytes());
    if (contains(plain.view(), data_key_bytes())) finding("a sealed reply carries the data key");
    Value reply = cbor::decode(plain.view());
    if (g_verbose) std::fprintf(stderr, "sealed inner: %zu-byte reply, ok=%d\n", plain.size(), reply.find("ok") && reply.find("ok")->is(cbor::Type::kBool) && reply.find("ok")->as_bool());
    if (g_verbose && reply.find("error")) std::fprintf(stderr, "  %s\n", reply.find("error")->find("message")->as_text().c_str());
    const Value* ok = reply.find("ok");
    if (!ok || !ok->is(cbor::Type::kBool)) finding("a sealed reply without \"ok\"");
    if (ok->as_bool()) {
      const Value* body = reply.find("body");
      if (!body || !body->is(cbor::Type::kMap)) finding("a sealed success without a body map");
      return;
    }
    const Value* err = reply.find("error");
    const Value* code = err ? err->find("code") : nullptr;
    const Value* msg = err ? err->find("message") : nullptr;
    if (!code || !code->is(cbor::Type::kText) || !msg || !msg->is(cbor::Type::kText) || msg->as_text().empty())
      finding("a sealed error is not {code, message}");
    if (errc_name(errc_from_name(code->as_text())) != code->as_text() || code->as_text() == "internal")
      finding("a sealed error with code '" + code->as_text() + "'");
  }

  void record(uint8_t selector, ByteView bytes) {
    uint8_t mode = selector % kModes;
    if (mode == kGarbageSealed) {
      plain("sealed", Value::map({entry("session", Value::bytes(session)), entry("data", Value::bytes(bytes))}));
      return;
    }
    if (mode == kSealedInner) {
      sealed_inner(bytes);
      return;
    }
    // One or more CBOR items: the body, then (load-artifact) the stream parts.
    std::vector<Value> items;
    try {
      while (!bytes.empty() && items.size() < 64) {
        size_t used = 0;
        items.push_back(cbor::decode_prefix(bytes, used));
        bytes = bytes.subspan(used);
      }
    } catch (const Error&) {
      if (items.empty()) return;
    }
    if (items.empty()) return;
    Value body = std::move(items.front());
    if (mode == kUnknownOp) {
      plain("no-such-op", body);
      return;
    }
    std::string op = kOps[mode];
    std::vector<Value> parts;
    for (size_t i = 1; i < items.size(); ++i)
      if (items[i].is(cbor::Type::kMap)) parts.push_back(std::move(items[i]));  // the net layer passes maps only
    bool streaming = op == "load-artifact" && items.size() > 1;
    plain(op, body, std::move(parts), streaming);
  }
};

Harness* g_harness = nullptr;

// ---- seed corpus ------------------------------------------------------------------------------

void put_record(Bytes& out, uint8_t selector, ByteView payload) {
  out.push_back(selector);
  out.push_back(static_cast<uint8_t>(payload.size()));
  out.push_back(static_cast<uint8_t>(payload.size() >> 8));
  out.insert(out.end(), payload.begin(), payload.end());
}
uint8_t op_index(const std::string& op) {
  for (uint8_t i = 0; i < 12; ++i)
    if (op == kOps[i]) return i;
  return kUnknownOp;
}
Bytes one(const std::string& op, const Value& body) {
  Bytes out;
  put_record(out, op_index(op), cbor::encode(body));
  return out;
}
Bytes inner(const std::string& op, const Value& body) {
  Bytes out;
  put_record(out, kSealedInner, cbor::encode(Value::map({entry("op", Value::text(op)), entry("body", body)})));
  return out;
}

void write_seeds(const std::string& dir) {
  std::filesystem::create_directories(dir);
  shield::Shield s = shield::Shield::with_key(shield::ShieldKey::from_bytes(data_key_bytes()), {.max_age_ms = std::nullopt});
  Bytes v4 = s.encrypt(as_bytes("model bytes"));
  shield::StreamEncryptOptions so;
  so.chunk_size = 64;
  Bytes stream = shield::encrypt_stream(s, Bytes(200, 0x33), so);
  Bytes nonce(32, 0x11);
  Value key = Value::text("key-1");
  Value art_header = Value::map({entry("key", key), entry("kind", Value::text("model")), entry("name", Value::text("m"))});
  std::map<std::string, Bytes> seeds;
  seeds["describe"] = one("describe", Value::map());
  seeds["attest"] = one("attest", Value::map({entry("nonce", Value::bytes(nonce)), entry("user_data", Value::bytes(as_bytes("ud")))}));
  {
    Bytes b = one("attest", Value::map({entry("nonce", Value::bytes(nonce))}));
    Bytes c = one("channel-open", Value::map({entry("nonce", Value::bytes(nonce)), entry("client_public", Value::bytes(Bytes(32, 9)))}));
    b.insert(b.end(), c.begin(), c.end());
    seeds["attest-then-channel-open"] = b;
  }
  seeds["channel-open"] = one("channel-open", Value::map({entry("nonce", Value::bytes(Bytes(32, 2))), entry("client_public", Value::bytes(Bytes(32, 3)))}));
  seeds["set-credentials"] = one("set-credentials", Value::map({entry("access_key_id", Value::text("AKID")), entry("secret_access_key", Value::text("x")),
                                                                entry("session_token", Value::text("t")), entry("expiration", Value::uint(4102444800))}));
  seeds["load-key"] = one("load-key", Value::map({entry("ciphertext_blob", Value::bytes(Bytes(40, 7))), entry("key_id", Value::text("alias/x")),
                                                  entry("encryption_context", Value::map({entry("app", Value::text("fuzz"))}))}));
  {
    Value h = art_header;
    h.as_map().push_back(entry("data", Value::bytes(v4)));
    seeds["load-artifact-v4"] = one("load-artifact", h);
  }
  {
    Bytes body = cbor::encode(art_header);
    for (size_t off = 0; off < stream.size(); off += 100) {
      size_t n = std::min<size_t>(100, stream.size() - off);
      cbor::encode_append(Value::map({entry("data", Value::bytes(ByteView(stream).subspan(off, n)))}), body);
    }
    Bytes b;
    put_record(b, op_index("load-artifact"), body);
    Bytes code = one("load-artifact", Value::map({entry("key", key), entry("kind", Value::text("code")), entry("name", Value::text("c")),
                                                  entry("models", Value::array({Value::text("art-1")})), entry("data", Value::bytes(v4))}));
    seeds["load-artifact-stream"] = b;
    b.insert(b.end(), code.begin(), code.end());
    seeds["load-artifact-stream-then-code"] = b;
  }
  seeds["encrypt"] = one("encrypt", Value::map({entry("key", key), entry("plaintext", Value::bytes(as_bytes("hello")))}));
  seeds["decrypt-plain"] = one("decrypt", Value::map({entry("key", key), entry("ciphertext", Value::bytes(v4))}));
  seeds["invoke-plain"] = one("invoke", Value::map({entry("artifact", Value::text("art-1")), entry("input", Value::bytes(as_bytes("x")))}));
  seeds["unload"] = one("unload", Value::map({entry("handle", Value::text("art-1"))}));
  seeds["stats"] = one("stats", Value::map());
  seeds["sealed-outer"] = one("sealed", Value::map({entry("session", Value::bytes(Bytes(16, 0))), entry("data", Value::bytes(v4))}));
  {
    Bytes b;
    put_record(b, kGarbageSealed, v4);
    seeds["sealed-garbage"] = b;
  }
  seeds["unknown-op"] = one("frobnicate", Value::map());
  seeds["inner-describe"] = inner("describe", Value::map());
  seeds["inner-decrypt"] = inner("decrypt", Value::map({entry("key", key), entry("ciphertext", Value::bytes(v4))}));
  seeds["inner-encrypt"] = inner("encrypt", Value::map({entry("key", key), entry("plaintext", Value::bytes(as_bytes("p")))}));
  seeds["inner-invoke"] = inner("invoke", Value::map({entry("artifact", Value::text("art-1")), entry("input", Value::bytes(as_bytes("x")))}));
  seeds["inner-load-artifact"] = inner("load-artifact", Value::map({entry("key", key), entry("kind", Value::text("model")),
                                                                    entry("name", Value::text("m")), entry("data", Value::bytes(v4))}));
  seeds["inner-sealed"] = inner("sealed", Value::map({entry("session", Value::bytes(Bytes(16, 0))), entry("data", Value::bytes(v4))}));
  seeds["inner-unknown"] = inner("frobnicate", Value::map());
  seeds["inner-stats"] = inner("stats", Value::map());
  {
    Bytes b = one("load-artifact", [&] { Value h = art_header; h.as_map().push_back(entry("data", Value::bytes(v4))); return h; }());
    Bytes i = inner("invoke", Value::map({entry("artifact", Value::text("art-1")), entry("input", Value::bytes(as_bytes("x")))}));
    b.insert(b.end(), i.begin(), i.end());
    seeds["load-model-then-invoke-it"] = b;
  }
  for (const auto& [name, bytes] : seeds) {
    std::ofstream f(dir + "/" + name, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  std::fprintf(stderr, "enclave_ops: wrote %zu seeds to %s\n", seeds.size(), dir.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  set_log_level(LogLevel::kOff);
  if (const char* dir = std::getenv("SN_ENCLAVE_OPS_SEEDS")) {
    write_seeds(dir);
    std::exit(0);
  }
  g_verbose = std::getenv("SN_ENCLAVE_OPS_VERBOSE") != nullptr;
  g_harness = new Harness();  // lives for the whole run; never started, so it runs no threads
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness& h = *g_harness;
  ByteView in(data, size);
  while (in.size() >= 3) {
    uint8_t selector = in[0];
    size_t len = std::min<size_t>(in[1] | (static_cast<size_t>(in[2]) << 8), in.size() - 3);
    h.record(selector, in.subspan(3, len));
    in = in.subspan(3 + len);
  }
  h.settle();
  return 0;
}
