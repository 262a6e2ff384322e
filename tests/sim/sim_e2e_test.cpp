// `shield-nitro sim` end to end through the CLI, on EIFs built by `shield-nitro eif build` from
// root filesystems made by `eif rootfs` (a stand-in kernel, init and nsm.ko: the simulator
// does not boot the kernel, but measures it like Nitro).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sim_test_util.h"
#include "support/root.h"

namespace fs = std::filesystem;
using nlohmann::json;
using sim_test::TempDir;

namespace {

const std::string kCli = SN_CLI;
const std::string kRole = "arn:aws:iam::123456789012:role/Webserver";
const std::string kInstance = "i-1234567890abcdef0";

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

int cli(const std::string& args, std::string* out = nullptr) {
  return sim_test::run(quote(kCli) + " " + args + (out ? " 2>&1" : " >/dev/null 2>&1"), out);
}

json cli_json(const std::string& args) {
  std::string out;
  EXPECT_EQ(cli(args + " 2>/dev/null", &out), 0) << args << "\n" << out;
  return json::parse(out);
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// The images every test runs, built once.
class SimE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::string d = dir_->path();
    fs::permissions(d, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                           fs::perms::others_exec);  // readable by the unprivileged run below
    write_text(d + "/kernel", std::string(4096, 'K'));
    write_text(d + "/init", "stand-in init");
    write_text(d + "/nsm.ko", "stand-in nsm.ko");
    build("probe.eif", "--binary " + quote(SIM_PROBE) + " --dest /bin/probe",
          R"(["/bin/probe","env:APPVAR","env:SHIELD_NITRO_NSM","env:SHIELD_NITRO_VSOCK_DIR","env:SHIELD_NITRO_VSOCK_CID",)"
          R"("tcp:127.0.0.1:)" + std::to_string(listener().port()) + R"(","tcp:8.8.8.8:53","spawn","serve:/run/shield-nitro/vsock/16_5000.sock"])");
    build("once.eif", "--binary " + quote(SIM_PROBE) + " --dest /bin/probe", R"(["/bin/probe","env:APPVAR"])");
    // Commands that end with a status, by a signal, and by the memory limit.
    build("exit3.eif", "--binary " + quote(SIM_PROBE) + " --dest /bin/probe", R"(["/bin/probe","exit:3"])");
    build("sigterm.eif", "--binary " + quote(SIM_PROBE) + " --dest /bin/probe", R"(["/bin/probe","raise:15"])");
    build("hog.eif", "--binary " + quote(SIM_PROBE) + " --dest /bin/probe", R"(["/bin/probe","alloc:512"])");
    build("missing-cmd.eif", "--binary " + quote(SIM_PROBE) + " --dest /bin/probe", R"(["/bin/not-in-the-image"])");
    // The CLI itself as the enclave app: it asks the NSM named by $SHIELD_NITRO_NSM for a document.
    build("attest.eif", "--binary " + quote(kCli) + " --dest /bin/shield-nitro",
          R"(["/bin/shield-nitro","attest","request","-o","/run/shield-nitro/vsock/doc.cbor"])");
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete listener_;
  }
  static void build(const std::string& eif, const std::string& rootfs_args, const std::string& cmd) {
    std::string d = dir_->path(), root = d + "/root-" + eif;
    ASSERT_EQ(cli("eif rootfs " + rootfs_args + " -o " + quote(root)), 0);
    ASSERT_EQ(cli("eif build --kernel " + d + "/kernel --cmdline-text 'console=ttyS0' --init " + d + "/init --nsm-ko " +
                  d + "/nsm.ko --rootfs " + quote(root) + " --cmd " + quote(cmd) + " --env APPVAR=hello -o " + d + "/" + eif),
              0);
  }
  static std::string eif(const std::string& name) { return dir_->path() + "/" + name; }
  static sim_test::TcpListener& listener() {
    if (!listener_) listener_ = new sim_test::TcpListener();
    return *listener_;
  }

  void TearDown() override {
    for (const auto& s : states_) cli("sim terminate --state " + s);
  }
  std::string state(const TempDir& t) {
    states_.push_back(t / "state");
    return t / "state";
  }

  static TempDir* dir_;
  static sim_test::TcpListener* listener_;
  TempDir t_;  // a member, so it outlives TearDown's terminate
  std::vector<std::string> states_;
};

TempDir* SimE2E::dir_ = nullptr;
sim_test::TcpListener* SimE2E::listener_ = nullptr;

json image_measurements(const std::string& eif) { return cli_json("eif describe " + quote(eif))["Measurements"]; }

bool wait_terminated(const std::string& st) {
  for (int i = 0; i < 500; ++i) {
    json d = cli_json("sim describe --json --state " + st);
    if (!d.empty() && d[0]["State"] == "TERMINATED") return true;
    ::usleep(20000);
  }
  return false;
}

}  // namespace

TEST_F(SimE2E, PcrsInsideTheEnclaveAreTheImagesAndTheParents) {
  SN_SKIP_UNLESS_ROOT("sim run creates namespaces");
  TempDir& t = t_;
  std::string st = state(t);
  json run = cli_json("sim run " + eif("attest.eif") + " --state " + st + " --role-arn " + quote(kRole) +
                      " --instance-id " + kInstance);
  EXPECT_EQ(run["EnclaveCID"], 16);
  EXPECT_EQ(run["EnclaveID"].get<std::string>().rfind(kInstance + "-enc", 0), 0u);
  ASSERT_TRUE(sim_test::wait_for(st + "/vsock/doc.cbor"));
  ASSERT_TRUE(wait_terminated(st));  // the app exited, so the enclave did

  json m = image_measurements(eif("attest.eif"));
  json d = cli_json("sim describe --json --state " + st);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0]["Measurements"], m);
  EXPECT_EQ(d[0]["Flags"], "NONE");
  std::string pcr3 = "78fce75d";  // the AWS user guide's value for kRole, checked in full below
  std::string pins = " --pcr 0=" + m["PCR0"].get<std::string>() + " --pcr 1=" + m["PCR1"].get<std::string>() +
                     " --pcr 2=" + m["PCR2"].get<std::string>();
  std::string out;
  ASSERT_EQ(cli("attest verify " + st + "/vsock/doc.cbor --root " + st + "/nsm/root.pem --json" + pins, &out), 0) << out;
  json claims = json::parse(out.substr(out.find('{')));
  std::string dumped = claims.dump();
  EXPECT_NE(dumped.find(pcr3), std::string::npos) << dumped;
  EXPECT_NE(dumped.find("08f996b5"), std::string::npos) << dumped;  // PCR4 of kInstance
  // Never valid against the AWS root.
  EXPECT_NE(cli("attest verify " + st + "/vsock/doc.cbor" + pins), 0);
}

TEST_F(SimE2E, DebugModeZeroesThePcrsInsideButDescribeShowsTheImage) {
  SN_SKIP_UNLESS_ROOT("sim run creates namespaces");
  TempDir& t = t_;
  std::string st = state(t);
  cli_json("sim run " + eif("attest.eif") + " --debug-mode --state " + st);
  ASSERT_TRUE(sim_test::wait_for(st + "/vsock/doc.cbor"));
  json m = image_measurements(eif("attest.eif"));
  json d = cli_json("sim describe --json --state " + st);
  EXPECT_EQ(d[0]["Flags"], "DEBUG_MODE");
  EXPECT_EQ(d[0]["Measurements"], m);
  std::string doc = st + "/vsock/doc.cbor --root " + st + "/nsm/root.pem";
  EXPECT_EQ(cli("attest verify " + doc + " --allow-debug --pcr 0=" + m["PCR0"].get<std::string>()), 1);
  EXPECT_EQ(cli("attest verify " + doc), 1);  // debug documents are refused by default
  EXPECT_EQ(cli("attest verify " + doc + " --allow-debug --pcr 0=" + std::string(96, '0')), 0);
}

TEST_F(SimE2E, EnclaveIsIsolatedReachableOverVsockAndFullyCleanedUp) {
  SN_SKIP_UNLESS_ROOT("sim run creates namespaces");
  TempDir& t = t_;
  std::string st = state(t);
  json run = cli_json("sim run " + eif("probe.eif") + " --state " + st + " --cpus 1 --memory 256");
  EXPECT_EQ(run["NumberOfCPUs"], 1);
  EXPECT_EQ(run["MemoryMiB"], 256);
  std::string sock = st + "/vsock/16_5000.sock";
  ASSERT_TRUE(sim_test::wait_for(st + "/console.log", "serving"));
  EXPECT_EQ(sim_test::unix_roundtrip(sock, "hello"), "echo:hello");
  // A parent-side socket (CID 3) in the same folder is the parent's: terminate keeps it.
  write_text(st + "/vsock/3_8000.sock", "");

  std::string console;
  EXPECT_EQ(cli("sim console --state " + st + " --disconnect-timeout 1", &console), 0);
  std::string port = std::to_string(listener().port());
  EXPECT_NE(console.find("env APPVAR=hello"), std::string::npos) << console;
  EXPECT_NE(console.find("env SHIELD_NITRO_NSM=sim:/run/shield-nitro/nsm"), std::string::npos) << console;
  EXPECT_NE(console.find("env SHIELD_NITRO_VSOCK_DIR=/run/shield-nitro/vsock"), std::string::npos) << console;
  EXPECT_NE(console.find("env SHIELD_NITRO_VSOCK_CID=16"), std::string::npos) << console;
  EXPECT_NE(console.find("tcp 127.0.0.1:" + port + " refused"), std::string::npos) << console;
  EXPECT_NE(console.find("tcp 8.8.8.8:53 unreachable"), std::string::npos) << console;
  EXPECT_FALSE(listener().accepted());

  json rec = json::parse(sim_test::slurp(st + "/sim.json"));
  std::string ns = sim_test::pid_namespace(rec["enclave_pid"].get<pid_t>());
  ASSERT_FALSE(ns.empty());
  EXPECT_EQ(sim_test::processes_in_namespace(ns).size(), 3u);  // init, probe, its spawned child
  pid_t supervisor = run["ProcessID"].get<pid_t>();

  json term = cli_json("sim terminate --state " + st);
  EXPECT_EQ(term["Terminated"], true);
  EXPECT_EQ(term["EnclaveID"], run["EnclaveID"]);
  EXPECT_TRUE(sim_test::processes_in_namespace(ns).empty());
  EXPECT_TRUE(sim_test::pid_namespace(supervisor).empty());
  EXPECT_FALSE(fs::exists(sock));
  EXPECT_FALSE(fs::exists(st + "/nsm/nsm.sock"));
  EXPECT_TRUE(fs::exists(st + "/vsock/3_8000.sock"));
  for (const auto& cg : rec["limits"]["cgroups"]) EXPECT_FALSE(fs::exists(cg.get<std::string>())) << cg;
  json ended = cli_json("sim describe --json --state " + st)[0];
  EXPECT_EQ(ended["State"], "TERMINATED");
  EXPECT_EQ(ended["Ended"]["By"], "terminate") << ended.dump();
  EXPECT_EQ(cli("sim terminate --state " + st), 0);  // idempotent
}

TEST_F(SimE2E, AttachConsoleStreamsUntilTheEnclaveExits) {
  SN_SKIP_UNLESS_ROOT("sim run creates namespaces");
  TempDir& t = t_;
  std::string st = state(t), out;
  ASSERT_EQ(cli("sim run " + eif("once.eif") + " --attach-console --state " + st, &out), 0) << out;
  EXPECT_NE(out.find("\"EnclaveCID\": 16"), std::string::npos) << out;
  EXPECT_NE(out.find("env APPVAR=hello"), std::string::npos) << out;
  // The enclave ended by itself and the state says so; a new run in the same folder works.
  EXPECT_EQ(cli_json("sim describe --json --state " + st)[0]["State"], "TERMINATED");
  EXPECT_EQ(cli("sim run " + eif("once.eif") + " --cid 20 --state " + st, &out), 0) << out;
  EXPECT_TRUE(wait_terminated(st));
}

TEST_F(SimE2E, ClearErrors) {
  TempDir& t = t_;
  std::string st = state(t);
  // A missing folder: describe, terminate and console say the same, with the same exit code.
  std::string describe_out, terminate_out, console_out;
  EXPECT_EQ(cli("sim describe --json --state " + st, &describe_out), 1) << describe_out;
  EXPECT_EQ(cli("sim terminate --state " + st, &terminate_out), 1) << terminate_out;
  EXPECT_EQ(cli("sim console --state " + st, &console_out), 1) << console_out;
  EXPECT_EQ(describe_out, "shield-nitro: no simulated enclave in " + st + ": the state folder does not exist\n");
  EXPECT_EQ(terminate_out, describe_out);
  EXPECT_EQ(console_out, describe_out);
  EXPECT_EQ(cli("sim describe --state " + st), 1);
  // Refused before anything is unpacked: the folder is never created.
  write_text(t / "bad.eif", "not an eif");
  EXPECT_EQ(cli("sim run " + t / "bad.eif" + " --state " + st), 1);
  EXPECT_EQ(cli("sim run " + eif("probe.eif") + " --cid 3 --state " + st), 2);
  std::string out;
  EXPECT_EQ(cli("sim run " + eif("probe.eif") + " --cpus 4096 --state " + st, &out), 2) << out;
  EXPECT_NE(out.find("--cpus 4096: only"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(st));
  std::string deep = st + "/" + std::string(100, 'd');
  EXPECT_EQ(cli("sim run " + eif("probe.eif") + " --state " + deep, &out), 2) << out;
  EXPECT_NE(out.find("is too long: the NSM socket"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(st));
  // A folder without an enclave: describe lists none, terminate has nothing to stop.
  fs::create_directories(st);
  EXPECT_EQ(cli_json("sim describe --json --state " + st), json::array());
  EXPECT_EQ(cli("sim terminate --state " + st), 1);
  SN_SKIP_UNLESS_ROOT("the refusals are checked; a second run beside a running one creates namespaces");
  cli_json("sim run " + eif("probe.eif") + " --state " + st);
  EXPECT_EQ(cli("sim run " + eif("probe.eif") + " --state " + st, &out), 2) << out;
  EXPECT_NE(out.find("already running"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(st + "/image/rootfs/bin/probe"));  // the refusal left the running one alone
}

TEST_F(SimE2E, MemoryTooSmallForTheImageIsRefusedBeforeStart) {
  std::string st = state(t_), out;
  uint64_t need = (fs::file_size(eif("probe.eif")) * 4 + (1 << 20) - 1) >> 20;
  ASSERT_GT(need, 1u) << "the probe image is too small for this test";
  EXPECT_EQ(cli("sim run " + eif("probe.eif") + " --memory " + std::to_string(need - 1) + " --state " + st, &out), 2)
      << out;
  EXPECT_NE(out.find("--memory " + std::to_string(need - 1) + " MiB is too small for " + eif("probe.eif")),
            std::string::npos) << out;
  EXPECT_NE(out.find("at least 4 times its EIF's size, " + std::to_string(need) + " MiB"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(st));
  SN_SKIP_UNLESS_ROOT("the refusal is checked; starting with enough memory creates namespaces");
  json run = cli_json("sim run " + eif("probe.eif") + " --memory " + std::to_string(need) + " --state " + st);
  EXPECT_EQ(run["MemoryMiB"], need);
}

TEST_F(SimE2E, AFailedRunRemovesWhatItUnpackedAndKeepsWhatWasThere) {
  SN_SKIP_UNLESS_ROOT("the failure under test comes after the namespaces");
  std::string st = state(t_), out;
  fs::create_directories(st);
  write_text(st + "/notes.txt", "the operator's");
  EXPECT_EQ(cli("sim run " + eif("missing-cmd.eif") + " --state " + st, &out), 1) << out;
  EXPECT_NE(out.find("/bin/not-in-the-image"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(st + "/image")) << "the unpacked image stayed";
  EXPECT_FALSE(fs::exists(st + "/nsm")) << "the NSM folder this run created stayed";
  EXPECT_FALSE(fs::exists(st + "/vsock"));
  EXPECT_FALSE(fs::exists(st + "/sim.json"));
  EXPECT_TRUE(fs::exists(st + "/notes.txt"));
  // A folder that held an enclave before keeps its NSM chain (root.pem stays trusted).
  cli_json("sim run " + eif("once.eif") + " --state " + st);
  ASSERT_TRUE(wait_terminated(st));
  std::string root = sim_test::slurp(st + "/nsm/root.pem");
  EXPECT_EQ(cli("sim run " + eif("missing-cmd.eif") + " --state " + st), 1);
  EXPECT_FALSE(fs::exists(st + "/image"));
  EXPECT_EQ(sim_test::slurp(st + "/nsm/root.pem"), root);
}

TEST_F(SimE2E, DescribeShowsHowTheEnclaveEnded) {
  SN_SKIP_UNLESS_ROOT("sim run creates namespaces");
  TempDir a, b, c;
  std::string exited = state(a), killed = state(b), hog = state(c);
  cli_json("sim run " + eif("exit3.eif") + " --state " + exited);
  cli_json("sim run " + eif("sigterm.eif") + " --state " + killed);
  json run = cli_json("sim run " + eif("hog.eif") + " --memory 64 --state " + hog);
  ASSERT_TRUE(wait_terminated(exited));
  ASSERT_TRUE(wait_terminated(killed));
  ASSERT_TRUE(wait_terminated(hog));

  json e = cli_json("sim describe --json --state " + exited)[0]["Ended"];
  EXPECT_EQ(e["By"], "exit") << e.dump();
  EXPECT_EQ(e["ExitCode"], 3) << e.dump();
  std::string text;
  EXPECT_EQ(cli("sim describe --state " + exited, &text), 0);
  EXPECT_NE(text.find("ended: the command exited with status 3"), std::string::npos) << text;

  e = cli_json("sim describe --json --state " + killed)[0]["Ended"];
  EXPECT_EQ(e["By"], "signal") << e.dump();
  EXPECT_EQ(e["Signal"], "SIGTERM") << e.dump();
  EXPECT_EQ(e["SignalNumber"], 15) << e.dump();
  EXPECT_EQ(e["OomKilled"], false) << e.dump();
  EXPECT_EQ(cli("sim describe --state " + killed, &text), 0);
  EXPECT_NE(text.find("ended: the command was killed by SIGTERM"), std::string::npos) << text;

  json rec = json::parse(sim_test::slurp(hog + "/sim.json"));
  if (!rec["limits"]["memory"].get<std::string>().starts_with("cgroup"))
    GTEST_SKIP() << "no writable memory cgroup here (" << rec["limits"]["memory"] << "): nothing is OOM-killed";
  e = cli_json("sim describe --json --state " + hog)[0]["Ended"];
  EXPECT_EQ(e["By"], "signal") << e.dump();
  EXPECT_EQ(e["Signal"], "SIGKILL") << e.dump();
  EXPECT_EQ(e["OomKilled"], true) << e.dump();
  EXPECT_EQ(cli("sim describe --state " + hog, &text), 0);
  EXPECT_NE(text.find("ended: the command was killed by SIGKILL: out of memory (the enclave's limit is 64 MiB)"),
            std::string::npos) << text;
}

TEST_F(SimE2E, ASupervisorKilledBeforeRecordingTheEndIsSaidSo) {
  SN_SKIP_UNLESS_ROOT("sim run creates namespaces");
  std::string st = state(t_);
  json run = cli_json("sim run " + eif("probe.eif") + " --state " + st);
  ASSERT_TRUE(sim_test::wait_for(st + "/console.log", "serving"));
  pid_t supervisor = run["ProcessID"].get<pid_t>();
  ASSERT_EQ(::kill(supervisor, SIGKILL), 0);
  for (int i = 0; i < 500 && !sim_test::pid_namespace(supervisor).empty(); ++i) ::usleep(20000);
  json e = cli_json("sim describe --json --state " + st)[0];
  EXPECT_EQ(e["State"], "TERMINATED");
  EXPECT_EQ(e["Ended"]["By"], "unknown") << e.dump();
  EXPECT_NE(e["Ended"]["Text"].get<std::string>().find("supervisor (pid " + std::to_string(supervisor) + ")"),
            std::string::npos) << e.dump();
  EXPECT_EQ(cli("sim terminate --state " + st), 0);  // cleans up after it, and keeps saying so
  EXPECT_EQ(cli_json("sim describe --json --state " + st)[0]["Ended"]["By"], "unknown");
}

TEST_F(SimE2E, WithoutPrivilegeRunFailsWithAnEnvironmentError) {
  TempDir& t = t_;
  fs::permissions(t.path(), fs::perms::all);
  std::string st = state(t), out;
  int rc = sim_test::run("setpriv --reuid=65534 --regid=65534 --clear-groups " + quote(kCli) + " sim run " +
                             eif("probe.eif") + " --state " + st + " 2>&1",
                         &out);
  if (out.find("setpriv:") != std::string::npos) GTEST_SKIP() << "setpriv unavailable: " << out;
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("namespaces"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(st)) << "the failed run left its unpacked image";
}
