#include "state.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cgroups.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/nsm/transport.h"

namespace shield_nitro::sim {

StatePaths::StatePaths(const std::string& d)
    : dir(d),
      record(d + "/sim.json"),
      enclave_json(d + "/enclave.json"),
      console(d + "/console.log"),
      supervisor_log(d + "/supervisor.log"),
      image(d + "/image"),
      nsm(d + "/nsm"),
      nsm_socket(nsm::simulator_socket_path(d + "/nsm")),
      vsock(d + "/vsock") {}

std::optional<uint64_t> process_start_time(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  // Fields after the name start at 3 (state); starttime is field 22.
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 22) return std::stoull(field);
  }
  return std::nullopt;
}

ProcessId ProcessId::self() { return {::getpid(), process_start_time(::getpid()).value_or(0)}; }

bool ProcessId::alive() const {
  if (pid <= 0) return false;
  auto start_now = process_start_time(pid);
  return start_now && *start_now == start;
}

std::optional<nlohmann::ordered_json> load_record(const StatePaths& p) {
  if (!file_exists(p.record)) return std::nullopt;
  try {
    return nlohmann::ordered_json::parse(read_text_file(p.record));
  } catch (const nlohmann::json::exception& e) {
    throw Error(Errc::kFormat, p.record + " is not a simulator record: " + e.what());
  }
}

void save_record(const StatePaths& p, const nlohmann::ordered_json& record) {
  write_file_atomic(p.record, as_bytes(record.dump(2) + "\n"), 0644);
}

bool supervisor_alive(const nlohmann::ordered_json& record) {
  try {
    ProcessId sup{record.at("supervisor").at("pid").get<pid_t>(), record.at("supervisor").at("start").get<uint64_t>()};
    return sup.alive();
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

void remove_leftovers(const StatePaths& p, const nlohmann::ordered_json& record) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string prefix = std::to_string(record.value("/run/EnclaveCID"_json_pointer, 0u)) + "_";
  for (const auto& e : fs::directory_iterator(p.vsock, ec)) {
    std::string name = e.path().filename().string();
    if (name.starts_with(prefix) && name.ends_with(".sock")) fs::remove(e.path(), ec);
  }
  fs::remove(p.nsm_socket, ec);
  for (const auto& dir : record.value("/limits/cgroups"_json_pointer, nlohmann::ordered_json::array()))
    remove_cgroup(dir.get<std::string>());
}

}  // namespace shield_nitro::sim
