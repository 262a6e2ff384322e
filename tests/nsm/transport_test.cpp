// The /dev/nsm ioctl seam, the client on top of it, and open_nsm's selection rules.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <gtest/gtest.h>

#include "shield_nitro/nsm/client.h"
#include "shield_nitro/nsm/transport.h"

using namespace shield_nitro;
using namespace shield_nitro::nsm;

namespace {

// A fake kernel: checks what the driver would be handed, then answers like it does.
struct FakeKernel {
  Bytes expected_request;
  Bytes device_reply;  // what the NSM sends; truncated to the caller's buffer like the driver
  int fail_errno = 0;
  uint64_t reported_len_override = 0;
  int calls = 0;

  IoctlSyscall syscall() {
    return [this](int fd, unsigned long request, NsmIoctlArg& arg) {
      ++calls;
      EXPECT_GE(fd, 0);
      EXPECT_EQ(request, 0xC0200A00ul);
      EXPECT_EQ(arg.response_len, 0x3000u) << "the full response buffer must always be passed";
      Bytes sent(reinterpret_cast<const uint8_t*>(arg.request_addr),
                 reinterpret_cast<const uint8_t*>(arg.request_addr) + arg.request_len);
      if (!expected_request.empty()) {
        EXPECT_EQ(hex_encode(sent), hex_encode(expected_request));
      }
      if (fail_errno) return fail_errno;
      size_t n = std::min<size_t>(arg.response_len, device_reply.size());
      std::memcpy(reinterpret_cast<uint8_t*>(arg.response_addr), device_reply.data(), n);
      arg.response_len = reported_len_override ? reported_len_override : n;
      return 0;
    };
  }

  NsmClient client() {
    UniqueFd fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    return NsmClient(std::make_unique<DevNsmTransport>(std::move(fd), "/dev/nsm", syscall()));
  }
};

Bytes hx(std::string hex) {
  std::erase(hex, ' ');
  return hex_decode(hex);
}

struct EnvGuard {
  explicit EnvGuard(const char* value) {
    if (const char* old = std::getenv(kNsmEnvVar)) saved = old;
    if (value) ::setenv(kNsmEnvVar, value, 1);
    else ::unsetenv(kNsmEnvVar);
  }
  ~EnvGuard() {
    if (saved) ::setenv(kNsmEnvVar, saved->c_str(), 1);
    else ::unsetenv(kNsmEnvVar);
  }
  std::optional<std::string> saved;
};

}  // namespace

TEST(DevNsm, IoctlArgumentLayoutIsTheKernelAbi) {
  EXPECT_EQ(sizeof(NsmIoctlArg), 32u);
  EXPECT_EQ(offsetof(NsmIoctlArg, request_len), 8u);
  EXPECT_EQ(offsetof(NsmIoctlArg, response_addr), 16u);
  EXPECT_EQ(offsetof(NsmIoctlArg, response_len), 24u);
  // _IOWR(0x0A, 0, 32): dir 3 << 30 | size 32 << 16 | type 0x0A << 8 | nr 0.
  EXPECT_EQ(kNsmIoctlRaw, (3ul << 30) | (32ul << 16) | (0x0Aul << 8));
}

TEST(DevNsm, ClientSendsSpecBytesAndReadsTheRewrittenLength) {
  FakeKernel k;
  k.expected_request = hx("a1 69 457874656e64504352 a2 65 696e646578 10 64 64617461 43 010203");
  k.device_reply = hx("a1 69 457874656e64504352 a1 64 64617461 41 aa");
  auto c = k.client();
  EXPECT_EQ(c.extend_pcr(16, Bytes{1, 2, 3}), Bytes{0xaa});

  k.expected_request = hx("a1 6b 4465736372696265504352 a1 65 696e646578 00");
  k.device_reply = hx("a1 6b 4465736372696265504352 a2 64 6c6f636b f5 64 64617461 42 0000");
  EXPECT_TRUE(c.describe_pcr(0).lock);

  k.expected_request = hx("a1 67 4c6f636b504352 a1 65 696e646578 10");
  k.device_reply = hx("67 4c6f636b504352");
  c.lock_pcr(16);
  k.expected_request = hx("a1 68 4c6f636b50435273 a1 65 72616e6765 18 20");
  k.device_reply = hx("68 4c6f636b50435273");
  c.lock_pcrs(32);
  EXPECT_EQ(k.calls, 4);
}

TEST(DevNsm, AttestationDocumentComesBackExactly) {
  FakeKernel k;
  k.expected_request = hx("a1 6b 4174746573746174696f6e a3 69 757365725f64617461 42 7564 65 6e6f6e6365 41 6e 6a "
                          "7075626c69635f6b6579 f6");
  Bytes doc(7600);
  for (size_t i = 0; i < doc.size(); ++i) doc[i] = static_cast<uint8_t>(i * 31);
  k.device_reply = encode_response(AttestationResponse{doc});
  auto c = k.client();
  EXPECT_EQ(c.attestation({Bytes{0x75, 0x64}, Bytes{0x6e}, std::nullopt}), doc);
}

TEST(DevNsm, TruncatedReplyIsInvalidResponse) {
  // A reply longer than the buffer arrives cut to 0x3000 bytes with ioctl() == 0.
  FakeKernel k;
  k.device_reply = encode_response(AttestationResponse{Bytes(0x3100, 1)});
  auto c = k.client();
  try {
    c.attestation({});
    FAIL();
  } catch (const NsmError& e) {
    EXPECT_EQ(e.nsm_code(), ErrorCode::kInvalidResponse);
  }
}

TEST(DevNsm, ShortReportedLengthIsRespected) {
  // The kernel says 5 bytes although more were copied: only those 5 are parsed.
  FakeKernel k;
  k.device_reply = hx("67 4c6f636b504352 ff ff");
  k.reported_len_override = 8;
  auto c = k.client();
  c.lock_pcr(16);
  k.reported_len_override = 5;
  EXPECT_THROW(c.lock_pcr(16), NsmError);
}

TEST(DevNsm, ReportedLengthBeyondBufferIsRefused) {
  FakeKernel k;
  k.device_reply = hx("67 4c6f636b504352");
  k.reported_len_override = 0x3001;
  auto c = k.client();
  try {
    c.lock_pcr(16);
    FAIL();
  } catch (const NsmError& e) {
    EXPECT_EQ(e.nsm_code(), ErrorCode::kInvalidResponse);
  }
}

TEST(DevNsm, ErrnoBecomesNsmIoError) {
  struct Case {
    int err;
    Errc errc;
    const char* words;
  } cases[] = {{EMSGSIZE, Errc::kIo, "4096"}, {ETIMEDOUT, Errc::kTimeout, "120 s"}, {EIO, Errc::kIo, "virtqueue"},
               {EFAULT, Errc::kIo, "copy"},   {ENXIO, Errc::kIo, "no NSM device"}};
  for (const auto& c : cases) {
    FakeKernel k;
    k.fail_errno = c.err;
    auto client = k.client();
    try {
      client.describe_nsm();
      ADD_FAILURE() << c.err;
    } catch (const NsmIoError& e) {
      EXPECT_EQ(e.sys_errno(), c.err);
      EXPECT_EQ(e.code(), c.errc);
      EXPECT_NE(std::string(e.what()).find(c.words), std::string::npos) << e.what();
    }
  }
}

TEST(DevNsm, OversizeRequestNeverReachesTheKernel) {
  FakeKernel k;
  auto c = k.client();
  EXPECT_THROW(c.extend_pcr(16, Bytes(5000, 0)), NsmError);
  EXPECT_EQ(k.calls, 0);
}

TEST(DevNsm, NsmErrorReplyIsTyped) {
  FakeKernel k;
  k.device_reply = encode_response(ErrorResponse{ErrorCode::kReadOnlyIndex});
  auto c = k.client();
  try {
    c.extend_pcr(3, Bytes{1});
    FAIL();
  } catch (const NsmError& e) {
    EXPECT_EQ(e.nsm_code(), ErrorCode::kReadOnlyIndex);
  }
}

TEST(DevNsm, GetRandomLoopsInChunks) {
  FakeKernel k;
  k.expected_request = hx("69 47657452616e646f6d");
  k.device_reply = encode_response(GetRandomResponse{Bytes(256, 7)});
  auto c = k.client();
  Bytes r = c.get_random(600);
  EXPECT_EQ(r.size(), 600u);
  EXPECT_EQ(k.calls, 3);
  k.device_reply = encode_response(GetRandomResponse{Bytes{}});
  EXPECT_THROW(c.get_random(1), NsmError);  // an empty answer would loop forever
}

TEST(OpenNsm, MissingDeviceFailsWithEnvironmentAndHint) {
  EnvGuard env(nullptr);
  try {
    open_nsm("/nonexistent/nsm");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kEnvironment);
    EXPECT_NE(std::string(e.what()).find("not in an enclave"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sim:DIR"), std::string::npos) << e.what();
  }
}

TEST(OpenNsm, DefaultNeverFallsBackToASimulator) {
  if (std::filesystem::exists("/dev/nsm")) GTEST_SKIP() << "running inside an enclave";
  EnvGuard env(nullptr);
  try {
    open_nsm();
    FAIL() << "opened something without /dev/nsm";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kEnvironment);
  }
}

TEST(OpenNsm, SimulatorThatIsNotRunningIsAClearError) {
  EnvGuard env(nullptr);
  auto dir = std::filesystem::temp_directory_path() / ("nsm-none-" + std::to_string(::getpid()));
  try {
    open_nsm("sim:" + dir.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kEnvironment);
    EXPECT_NE(std::string(e.what()).find("nsm-sim serve"), std::string::npos) << e.what();
  }
  EXPECT_THROW(open_nsm("sim:"), Error);
}

TEST(OpenNsm, EnvironmentVariableSelectsOnlyForTheDefault) {
  auto dir = std::filesystem::temp_directory_path() / ("nsm-env-" + std::to_string(::getpid()));
  EnvGuard env(("sim:" + dir.string()).c_str());
  try {
    open_nsm();  // default → the variable → the (absent) simulator, not /dev/nsm
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos) << e.what();
  }
  try {
    open_nsm("/nonexistent/nsm");  // an explicit device ignores the variable
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/nsm"), std::string::npos) << e.what();
  }
}
