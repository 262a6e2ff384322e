// sim describe / terminate / console: read the state folder the supervisor keeps.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <ostream>

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/sim/simulator.h"
#include "state.h"

namespace shield_nitro::sim {

namespace {

using Json = nlohmann::ordered_json;

bool is_running(const Json& rec) { return rec.value("state", "") == "RUNNING" && supervisor_alive(rec); }

// describe, terminate and console answer a folder that is not there alike.
void require_state_folder(const StatePaths& p) {
  if (!std::filesystem::is_directory(p.dir))
    throw Error(Errc::kNotFound, "no simulated enclave in " + p.dir + ": the state folder does not exist");
}

Json require_record(const StatePaths& p) {
  require_state_folder(p);
  auto rec = load_record(p);
  if (!rec) throw Error(Errc::kNotFound, "no simulated enclave was started in " + p.dir);
  return *rec;
}

// The end of an enclave whose supervisor did not record it (it was killed or crashed).
Json supervisor_lost(const Json& rec) {
  std::string pid = std::to_string(rec.value("/supervisor/pid"_json_pointer, -1));
  return {{"By", "unknown"}, {"Text", "its supervisor (pid " + pid + ") ended without recording how the enclave ended"}};
}

// Polls until the supervisor is gone; false after timeout_ms.
bool wait_gone(const Json& rec, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    if (!supervisor_alive(rec)) return true;
    ::usleep(20000);
  }
  return !supervisor_alive(rec);
}

void kill_supervisor(const Json& rec) {
  pid_t sup = rec.at("supervisor").at("pid").get<pid_t>();
  ::kill(sup, SIGTERM);
  if (wait_gone(rec, 10000)) return;
  // It did not stop in time: SIGKILL. The enclave's init dies with it (PR_SET_PDEATHSIG).
  if (supervisor_alive(rec)) ::kill(sup, SIGKILL);
  wait_gone(rec, 5000);
}

}  // namespace

nlohmann::ordered_json describe_enclave(const std::string& state_dir) {
  StatePaths p(state_dir);
  require_state_folder(p);
  Json out = Json::array();
  auto rec = load_record(p);
  if (!rec) return out;
  Json e = (*rec)["run"];
  bool running = is_running(*rec);
  e["State"] = running ? "RUNNING" : "TERMINATED";
  e["Flags"] = (*rec)["flags"];
  e["Measurements"] = (*rec)["measurements"];
  if (!running) e["Ended"] = rec->contains("ended") ? (*rec)["ended"] : supervisor_lost(*rec);
  out.push_back(std::move(e));
  return out;
}

nlohmann::ordered_json terminate_enclave(const std::string& state_dir) {
  StatePaths p(state_dir);
  Json rec = require_record(p);
  bool was_alive = supervisor_alive(rec);
  if (was_alive) kill_supervisor(rec);
  if (auto now = load_record(p)) rec = *now;
  // A supervisor killed before it could record the end: we stopped the enclave.
  if (!rec.contains("ended") && rec.value("state", "") == "RUNNING")
    rec["ended"] = was_alive ? Json{{"By", "terminate"}, {"Text", "stopped by sim terminate"}} : supervisor_lost(rec);
  // Whatever the supervisor could not clean (it was killed, or died), clean here.
  pid_t enclave = rec.value("enclave_pid", -1);
  if (enclave > 0 && rec.value("state", "") == "RUNNING" && !supervisor_alive(rec)) ::kill(enclave, SIGKILL);
  remove_leftovers(p, rec);
  if (rec.value("state", "") != "TERMINATED") {
    rec["state"] = "TERMINATED";
    save_record(p, rec);
  }
  Json out;
  out["EnclaveName"] = rec["run"]["EnclaveName"];
  out["EnclaveID"] = rec["run"]["EnclaveID"];
  out["Terminated"] = true;
  return out;
}

void follow_console(const std::string& state_dir, std::ostream& out, int timeout_s) {
  StatePaths p(state_dir);
  require_record(p);
  std::ifstream in;
  std::streamoff offset = 0;
  char buf[8192];
  for (int waited_ms = 0; timeout_s <= 0 || waited_ms < timeout_s * 1000; waited_ms += 50) {
    auto rec = load_record(p);
    bool running = rec && is_running(*rec);
    if (!in.is_open()) in.open(p.console, std::ios::binary);
    size_t got = 0;
    if (in.is_open()) {
      in.clear();
      in.seekg(offset);
      while (in.read(buf, sizeof buf), in.gcount() > 0) {
        out.write(buf, in.gcount());
        got += static_cast<size_t>(in.gcount());
        offset += in.gcount();
      }
      out.flush();
    }
    if (!running && got == 0) return;
    if (got == 0) ::usleep(50000);
  }
}

}  // namespace shield_nitro::sim
