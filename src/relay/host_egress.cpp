#include "answer.h"
#include "shield_nitro/core/clock.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/log.h"
#include "shield_nitro/host_link/host_link.h"
#include "shield_nitro/net/relay.h"
#include "shield_nitro/relay/egress.h"
#include "shield_nitro/relay/proxy_request.h"

namespace shield_nitro::relay {
namespace {

constexpr std::chrono::seconds kAnswerTimeout{10};

// Answers one line; false when the enclave is gone or does not take it.
bool answer(int fd, const std::string& line) {
  try {
    host_link::write_line(fd, line, kAnswerTimeout);
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

HostEgress::HostEgress(HostEgressOptions options) : opt_(std::move(options)) {}

void HostEgress::serve(UniqueFd conn, std::string_view target, ByteView pending, int stop_fd) {
  std::pair<std::string, uint16_t> parsed;
  try {
    parsed = host_link::parse_target(target);
  } catch (const Error& e) {
    connections_++;
    refused_++;
    log_warn(opt_.name + ": refused: " + e.what());
    answer(conn.get(), host_link::answer_error(e.what()));
    return;
  }
  serve(std::move(conn), parsed.first, parsed.second, pending, stop_fd);
}

void HostEgress::serve(UniqueFd conn, const std::string& host, uint16_t port, ByteView pending, int stop_fd) {
  connections_++;
  std::string where = format_authority(host, port);
  if (!opt_.egress.allows(host, port)) {
    refused_++;
    std::string why = "egress to " + where + " is not allowed";
    log_warn(opt_.name + ": refused: " + why);
    answer(conn.get(), host_link::answer_error(why));
    return;
  }
  int64_t start = monotonic_ns();
  UniqueFd dest;
  try {
    dest = net::connect(net::Endpoint::tcp(host, port), opt_.connect_timeout);
  } catch (const Error& e) {
    failed_++;
    std::string why = "cannot reach " + where + ": " + e.what();
    log_warn(opt_.name + ": " + why);
    answer(conn.get(), host_link::answer_error(why));
    return;
  }
  if (!answer(conn.get(), host_link::answer_ok())) return;
  log_info(opt_.name + ": " + where + " open");
  active_++;
  net::RelayOptions ro;
  ro.stop_fd = stop_fd;
  ro.initial_up = pending;
  net::RelayResult r = net::relay(conn.get(), dest.get(), ro);
  active_--;
  up_ += r.up;
  down_ += r.down;
  log_info(opt_.name + ": " + where + " " + net::relay_end_name(r.end) + ": up " + std::to_string(r.up) +
           " bytes, down " + std::to_string(r.down) + " bytes, " +
           std::to_string((monotonic_ns() - start) / 1000000) + " ms");
}

HostEgressStats HostEgress::stats() const {
  return {connections_.load(), refused_.load(), failed_.load(), up_.load(), down_.load(), active_.load()};
}

}  // namespace shield_nitro::relay
