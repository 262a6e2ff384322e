#include "shield_nitro/nsm_sim/simulator.h"

#include <openssl/evp.h>

#include <array>
#include <nlohmann/json.hpp>

#include "shield_nitro/cbor/codec.h"
#include "shield_nitro/cbor/cose.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/pcr.h"
#include "shield_nitro/core/random.h"
#include "shield_nitro/nsm/error.h"
#include "sim_ca.h"

namespace shield_nitro::nsm {

namespace {

constexpr const char* kStateFile = "state.json";
constexpr const char* kStateFormat = "shield-nitro nsm-sim 1";
constexpr uint16_t kBootPcrs = 16;
// Intermediates are renewed when they would expire within a leaf's life plus this slack.
constexpr int64_t kRenewSlackSeconds = 3600;
constexpr int64_t kLeafLifetimeSeconds = 3 * 3600;

bool all_zero(ByteView b) {
  for (uint8_t x : b)
    if (x) return false;
  return true;
}

Bytes sha384(ByteView a, ByteView b) {
  Bytes out(kPcrSize);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha384(), nullptr) == 1 && EVP_DigestUpdate(ctx, a.data(), a.size()) == 1 &&
            EVP_DigestUpdate(ctx, b.data(), b.size()) == 1 && EVP_DigestFinal_ex(ctx, out.data(), nullptr) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) throw_openssl("SHA-384");
  return out;
}

// "i-<17 hex>-enc<16 hex>", the shape of AWS module ids.
std::string new_module_id() {
  std::string instance = hex_encode(os_random().bytes(9)).substr(0, 17);
  return "i-" + instance + "-enc" + hex_encode(os_random().bytes(8));
}

std::string instance_of(const std::string& module_id) { return module_id.substr(0, module_id.find("-enc")); }

[[noreturn]] void refuse(ErrorCode code, const std::string& why) {
  throw NsmError(code, std::string("simulated NSM: ") + error_code_name(code) + ": " + why);
}

void check_pcr_index(uint16_t index) {
  if (index >= kPcrCount) refuse(ErrorCode::kInvalidIndex, "PCR " + std::to_string(index) + " does not exist");
}

void write_optional(cbor::Writer& w, const std::optional<Bytes>& b) {
  if (b) w.bytes(*b);
  else w.null();
}

struct BootState {
  std::string module_id;
  BootPcrs pcrs;
};

nlohmann::json state_json(const BootState& s) {
  nlohmann::json pcrs = nlohmann::json::object();
  for (uint16_t i = 0; i < kBootPcrs; ++i) {
    auto it = s.pcrs.values.find(i);
    pcrs[std::to_string(i)] = hex_encode(it == s.pcrs.values.end() ? Bytes(kPcrSize) : it->second);
  }
  return {{"format", kStateFormat}, {"module_id", s.module_id}, {"debug", s.pcrs.debug}, {"pcrs", pcrs}};
}

BootState load_state(const std::string& dir) {
  std::string path = dir + "/" + kStateFile;
  if (!file_exists(path))
    throw Error(Errc::kEnvironment, "no simulated NSM state in " + dir + ": run `shield-nitro nsm-sim init " + dir + "`");
  try {
    auto j = nlohmann::json::parse(read_text_file(path));
    if (j.at("format") != kStateFormat) throw Error(Errc::kUnsupported, "unknown format");
    BootState s;
    s.module_id = j.at("module_id").get<std::string>();
    s.pcrs.debug = j.at("debug").get<bool>();
    for (const auto& [k, v] : j.at("pcrs").items()) s.pcrs.values[static_cast<uint16_t>(std::stoul(k))] = hex_decode(v.get<std::string>());
    if (s.pcrs.values.size() != kBootPcrs) throw Error(Errc::kFormat, "expected 16 PCRs");
    for (const auto& [i, v] : s.pcrs.values)
      if (i >= kBootPcrs || v.size() != kPcrSize) throw Error(Errc::kFormat, "bad PCR entry");
    return s;
  } catch (const Error& e) {
    throw Error(Errc::kFormat, "simulated NSM state " + path + " is invalid: " + e.what());
  } catch (const std::exception& e) {
    throw Error(Errc::kFormat, "simulated NSM state " + path + " is invalid: " + e.what());
  }
}

}  // namespace

void BootPcrs::validate() const {
  for (const auto& [i, v] : values) {
    if (i >= kBootPcrs)
      throw Error(Errc::kUsage, "boot PCR " + std::to_string(i) + " is out of range: only PCRs 0-15 are set at boot");
    check_pcr(i, v.size());
    bool zeroed_in_debug = i == 0 || i == 1 || i == 2 || i == 8;
    if (debug && zeroed_in_debug && !all_zero(v))
      throw Error(Errc::kUsage, "PCR " + std::to_string(i) + " reads as zeros in a debug-mode enclave; do not set it with debug");
  }
  if (debug) return;
  auto pcr0 = values.find(0);
  if (pcr0 == values.end() || all_zero(pcr0->second))
    throw Error(Errc::kUsage,
                "PCR0 missing or zero: give PCR0 (the EIF measurement, e.g. --pcr 0=HEX) or choose debug mode (--debug)");
}

struct SimulatedNsm::Impl {
  struct Pcr {
    Bytes value = Bytes(kPcrSize);
    bool locked = false;
  };

  Impl(SimulatorOptions opts, detail::SimulatorCa chain)
      : options(opts), clock(opts.clock ? *opts.clock : system_clock()), ca(std::move(chain)) {}

  SimulatorOptions options;
  const Clock& clock;
  detail::SimulatorCa ca;
  std::array<Pcr, kPcrCount> pcrs;
  std::optional<detail::CaCert> leaf;
  Bytes leaf_der;
  int64_t leaf_issued_ms = 0;

  const detail::CaCert& current_leaf(const std::string& module_id, int64_t now_ms) {
    bool fresh_enough = leaf && now_ms >= leaf_issued_ms && now_ms - leaf_issued_ms < options.leaf_reuse_ms;
    if (fresh_enough) return *leaf;
    ca.renew(now_ms / 1000, kLeafLifetimeSeconds + kRenewSlackSeconds);
    leaf = ca.issue_leaf(module_id, now_ms / 1000);
    leaf_der = detail::cert_der(leaf->cert.get());
    leaf_issued_ms = now_ms;
    return *leaf;
  }

  // The payload map of attestation.md §2: nine keys in the real order, nulls for absent
  // optional fields, PCRs 0–15 plus every locked PCR above them.
  Bytes payload(const std::string& module_id, int64_t now_ms, const AttestationRequest& r) const {
    Bytes out;
    cbor::Writer w(out);
    if (options.indefinite_payload) w.begin_indefinite_map();
    else w.begin_map(9);
    w.text("module_id");
    w.text(module_id);
    w.text("digest");
    w.text("SHA384");
    w.text("timestamp");
    w.uint(static_cast<uint64_t>(now_ms));
    w.text("pcrs");
    size_t n = 0;
    for (uint16_t i = 0; i < kPcrCount; ++i) n += (i < kBootPcrs || pcrs[i].locked) ? 1 : 0;
    w.begin_map(n);
    for (uint16_t i = 0; i < kPcrCount; ++i) {
      if (i >= kBootPcrs && !pcrs[i].locked) continue;
      w.uint(i);
      w.bytes(pcrs[i].value);
    }
    w.text("certificate");
    w.bytes(leaf_der);
    w.text("cabundle");
    auto bundle = ca.bundle();
    w.begin_array(bundle.size());
    for (const Bytes& c : bundle) w.bytes(c);
    w.text("public_key");
    write_optional(w, r.public_key);
    w.text("user_data");
    write_optional(w, r.user_data);
    w.text("nonce");
    write_optional(w, r.nonce);
    if (options.indefinite_payload) w.end_indefinite();
    return out;
  }
};

SimulatedNsm::SimulatedNsm(std::string dir, SimulatorOptions options) : dir_(std::move(dir)) {
  BootState state = load_state(dir_);
  module_id_ = state.module_id;
  const Clock& clock = options.clock ? *options.clock : system_clock();
  auto ca = detail::SimulatorCa::load_or_create(dir_, instance_of(module_id_), clock.now_s());
  ca.renew(clock.now_s(), kLeafLifetimeSeconds + kRenewSlackSeconds);  // a folder left for days
  impl_ = std::make_unique<Impl>(options, std::move(ca));
  for (uint16_t i = 0; i < kBootPcrs; ++i) {
    impl_->pcrs[i].value = state.pcrs.values.at(i);
    impl_->pcrs[i].locked = true;  // 0–15 are locked at boot
  }
}

SimulatedNsm::~SimulatedNsm() = default;

void SimulatedNsm::init(const std::string& dir, const BootPcrs& pcrs, const Clock* clock) {
  pcrs.validate();
  make_dirs(dir, 0700);
  BootState state;
  state.module_id = file_exists(dir + "/" + kStateFile) ? load_state(dir).module_id : new_module_id();
  state.pcrs = pcrs;
  detail::SimulatorCa::load_or_create(dir, instance_of(state.module_id), (clock ? *clock : system_clock()).now_s());
  write_file_atomic(dir + "/" + kStateFile, as_bytes(state_json(state).dump(2) + "\n"), 0644);
}

std::shared_ptr<SimulatedNsm> SimulatedNsm::open(const std::string& dir, SimulatorOptions options) {
  return std::shared_ptr<SimulatedNsm>(new SimulatedNsm(dir, options));
}

std::shared_ptr<SimulatedNsm> SimulatedNsm::create(const std::string& dir, const BootPcrs& pcrs,
                                                   SimulatorOptions options) {
  init(dir, pcrs, options.clock);
  return open(dir, options);
}

std::string SimulatedNsm::root_pem() const { return detail::cert_pem(impl_->ca.cert(detail::CaLevel::kRoot)); }
Bytes SimulatedNsm::root_der() const { return detail::cert_der(impl_->ca.cert(detail::CaLevel::kRoot)); }

Response SimulatedNsm::execute(const Request& request) {
  std::lock_guard lock(mu_);
  auto& pcrs = impl_->pcrs;
  return std::visit(
      [&](const auto& r) -> Response {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, DescribeNsmRequest>) {
          DescribeNsmResponse d{1, 0, 0, module_id_, kPcrCount, {}, "SHA384"};
          for (uint16_t i = 0; i < kPcrCount; ++i)
            if (pcrs[i].locked) d.locked_pcrs.push_back(i);
          return d;
        } else if constexpr (std::is_same_v<T, DescribePcrRequest>) {
          check_pcr_index(r.index);
          return DescribePcrResponse{pcrs[r.index].locked, pcrs[r.index].value};
        } else if constexpr (std::is_same_v<T, ExtendPcrRequest>) {
          check_pcr_index(r.index);
          if (pcrs[r.index].locked) refuse(ErrorCode::kReadOnlyIndex, "PCR " + std::to_string(r.index) + " is locked");
          pcrs[r.index].value = sha384(pcrs[r.index].value, r.data);
          return ExtendPcrResponse{pcrs[r.index].value};
        } else if constexpr (std::is_same_v<T, LockPcrRequest>) {
          check_pcr_index(r.index);
          if (pcrs[r.index].locked) refuse(ErrorCode::kReadOnlyIndex, "PCR " + std::to_string(r.index) + " is already locked");
          pcrs[r.index].locked = true;
          return LockPcrResponse{};
        } else if constexpr (std::is_same_v<T, LockPcrsRequest>) {
          if (r.range > kPcrCount) refuse(ErrorCode::kInvalidArgument, "range " + std::to_string(r.range) + " exceeds 32");
          for (uint16_t i = 0; i < r.range; ++i) pcrs[i].locked = true;
          return LockPcrsResponse{};
        } else if constexpr (std::is_same_v<T, AttestationRequest>) {
          for (const auto* f : {&r.user_data, &r.nonce, &r.public_key})
            if (*f && (*f)->size() > kMaxAttestationField)
              refuse(ErrorCode::kInputTooLarge, "an attestation field exceeds 1024 bytes");
          int64_t now_ms = impl_->clock.now_ms();
          const detail::CaCert& leaf = impl_->current_leaf(module_id_, now_ms);
          return AttestationResponse{cose::sign1_es384(impl_->payload(module_id_, now_ms, r), leaf.key.get())};
        } else {
          return GetRandomResponse{os_random().bytes(kMaxRandomPerCall)};
        }
      },
      request);
}

Bytes SimulatedNsm::handle(ByteView request) {
  try {
    Bytes reply = encode_response(execute(decode_request(request)));
    if (reply.size() <= kMaxResponseSize) return reply;
    return encode_response(ErrorResponse{ErrorCode::kInternalError});
  } catch (const NsmError& e) {
    return encode_response(ErrorResponse{e.nsm_code()});
  } catch (const std::exception&) {
    return encode_response(ErrorResponse{ErrorCode::kInternalError});
  }
}

}  // namespace shield_nitro::nsm
