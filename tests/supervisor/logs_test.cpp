// The supervisor's log lines and their two destinations (console, host link).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/supervisor/logs.h"

namespace {

using namespace shield_nitro;
using namespace shield_nitro::supervisor;
using Json = nlohmann::json;

std::string drain(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

TEST(SupervisorLogs, LinesAreTheHostLinkShape) {
  Json app = Json::parse(app_log_line(1796544000123, "stderr", "hello \"x\""));
  EXPECT_EQ(app, Json({{"time", "2026-12-06T08:00:00.123Z"}, {"source", "app"}, {"stream", "stderr"}, {"line", "hello \"x\""}}));
  std::string ev = event_log_line(0, "app_exited", "app exited with code 3", {{"status", int64_t{3}}, {"event", "ignored"}});
  EXPECT_EQ(ev.back(), '\n');
  EXPECT_EQ(std::count(ev.begin(), ev.end(), '\n'), 1);
  // What the host agent reads back.
  auto r = host_link::parse_log_record(std::string_view(ev).substr(0, ev.size() - 1));
  EXPECT_EQ(r.source, "supervisor");
  EXPECT_EQ(r.stream, "event");
  EXPECT_EQ(r.event, "app_exited");  // a field cannot overwrite the record's own members
  EXPECT_EQ(std::get<int64_t>(r.fields.at("status")), 3);
  // A long line still fits one host-link line.
  EXPECT_LE(app_log_line(0, "stdout", std::string(10000, '"')).size(), host_link::kMaxLineBytes);
}

TEST(SupervisorLogs, BytesThatAreNotUtf8AreReplacedNotFatal) {
  std::string line = app_log_line(0, "stdout", std::string("a\xff\xfe" "b\n", 5));
  Json j = Json::parse(line);
  EXPECT_EQ(j["line"].get<std::string>().front(), 'a');
  EXPECT_NE(j["line"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos);  // U+FFFD
}

TEST(SupervisorLogs, ConsoleAndHostGetTheSameRecordsInOrder) {
  int pipefd[2], sv[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  {
    LogRouter logs({.console_fd = pipefd[1]});
    logs.add_host([&] { return UniqueFd(::dup(sv[1])); });
    logs.event("step", "one");
    logs.app_line("stdout", "two");
    logs.close(std::chrono::seconds(10));
    EXPECT_EQ(logs.host_stats().written, 2u);
    EXPECT_EQ(logs.console_stats().written, 2u);
  }
  ::close(pipefd[1]);
  ::close(sv[1]);
  std::string console = drain(pipefd[0]), host = drain(sv[0]);
  EXPECT_EQ(console, host);
  EXPECT_LT(console.find("\"one\""), console.find("\"two\""));
  ::close(pipefd[0]);
  ::close(sv[0]);
}

// The host is not there at first: records wait and go out once it is; the console says so.
TEST(SupervisorLogs, TheHostIsRetriedAndGetsWhatWaited) {
  int pipefd[2], sv[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  std::atomic<int> attempts{0};
  {
    LogRouter logs({.console_fd = pipefd[1], .reconnect_every = std::chrono::milliseconds(1)});
    logs.add_host([&] {
      if (++attempts < 3) throw Error(Errc::kIo, "host agent not listening");
      return UniqueFd(::dup(sv[1]));
    });
    logs.event("step", "early");
    for (int i = 0; i < 10000 && attempts < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    logs.close(std::chrono::seconds(10));
  }
  ::close(pipefd[1]);
  ::close(sv[1]);
  EXPECT_GE(attempts.load(), 3);
  std::string host = drain(sv[0]), console = drain(pipefd[0]);
  EXPECT_NE(host.find("\"early\""), std::string::npos) << host;
  EXPECT_NE(console.find("host agent not listening"), std::string::npos) << console;
  EXPECT_EQ(console.find("host agent not listening"), console.rfind("host agent not listening")) << "said once";
  ::close(pipefd[0]);
  ::close(sv[0]);
}

// A host that is not there at the end costs one attempt, not the close deadline.
TEST(SupervisorLogs, CloseTriesAnAbsentHostOnceAndGoes) {
  std::atomic<int> attempts{0};
  LogRouter logs({.console_fd = -1, .flush_timeout = std::chrono::hours(1), .reconnect_every = std::chrono::hours(1)});
  logs.add_host([&]() -> UniqueFd {
    ++attempts;
    throw Error(Errc::kIo, "host agent not listening");
  });
  logs.event("step", "unsent");
  logs.close(std::chrono::hours(1));  // returns (else the test hangs)
  EXPECT_LE(attempts.load(), 2);
  EXPECT_EQ(logs.host_stats().written, 0u);
}

// A host that never reads cannot hold the supervisor: close() gives up at its deadline.
TEST(SupervisorLogs, CloseGivesUpOnAStalledHost) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  LogRouter logs({.buffer_bytes = 1 << 20, .console_fd = -1});
  logs.add_host([&] { return UniqueFd(::dup(sv[1])); });
  std::string big(8000, 'x');
  for (int i = 0; i < 2000; ++i) logs.app_line("stdout", big);  // 16 MB: far more than the socket holds
  logs.close(std::chrono::milliseconds(200));  // returns (else the test hangs)
  auto st = logs.host_stats();
  EXPECT_GT(st.dropped, 0u);
  EXPECT_LT(st.written, 2000u);
  ::close(sv[0]);
  ::close(sv[1]);
}

}  // namespace
