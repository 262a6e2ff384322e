// The enclave launcher through its C++ API: isolation (network, filesystem, PIDs), the vsock
// stand-in folder, limits, cleanup, and clear errors.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "shield_nitro/core/error.h"
#include "shield_nitro/sim/launcher.h"
#include "sim_test_util.h"
#include "support/root.h"

namespace fs = std::filesystem;
using shield_nitro::Errc;
using shield_nitro::Error;
using namespace shield_nitro::sim;
using sim_test::TempDir;

namespace {

// A root filesystem holding only the static probe, at /bin/probe.
std::string make_rootfs(const TempDir& t) {
  std::string root = t / "rootfs";
  fs::create_directories(root + "/bin");
  fs::copy_file(SIM_PROBE, root + "/bin/probe", fs::copy_options::overwrite_existing);
  return root;
}

EnclaveSpec probe_spec(const TempDir& t, std::vector<std::string> args) {
  fs::create_directories(t / "vsock");
  EnclaveSpec spec;
  spec.rootfs = make_rootfs(t);
  spec.argv = {"/bin/probe"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = {"PROBE_MARK=inside", "SHIELD_NITRO_VSOCK_DIR=/run/shield-nitro/vsock"};
  spec.console_path = t / "console.log";
  spec.binds = {{t / "vsock", "/run/shield-nitro/vsock", false}};
  spec.name = "test";
  return spec;
}

}  // namespace

TEST(Launcher, IsolatesNetworkFilesystemAndPids) {
  SN_SKIP_UNLESS_ROOT("the launcher creates namespaces");
  TempDir t;
  sim_test::TcpListener outside;
  std::string port = std::to_string(outside.port());
  std::vector<std::string> args = {"env:PROBE_MARK", "env:HOME", "tcp:127.0.0.1:" + port, "tcp:8.8.8.8:53",
                                   "absent:" + t.path(), "absent:/bin/probe", "fds", "spawn"};
  auto host_ips = sim_test::host_ipv4_addresses();
  for (const auto& ip : host_ips) args.push_back("tcp:" + ip + ":" + port);
  args.push_back("serve:/run/shield-nitro/vsock/16_5000.sock");
  EnclaveSpec spec = probe_spec(t, args);
  int leaked = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC: must still not reach the enclave
  EnclaveProcess p = launch_enclave(spec);
  ::close(leaked);
  ASSERT_TRUE(sim_test::wait_for(t / "console.log", "serving"));

  std::string console = sim_test::slurp(t / "console.log");
  EXPECT_NE(console.find("probe pid=2\n"), std::string::npos) << console;  // PID 1 is the init
  EXPECT_NE(console.find("env PROBE_MARK=inside"), std::string::npos) << console;
  EXPECT_NE(console.find("env HOME=(unset)"), std::string::npos) << console;  // only the given env
  EXPECT_NE(console.find("tcp 127.0.0.1:" + port + " refused"), std::string::npos) << console;
  EXPECT_NE(console.find("tcp 8.8.8.8:53 unreachable"), std::string::npos) << console;
  for (const auto& ip : host_ips)
    EXPECT_NE(console.find("tcp " + ip + ":" + port + " unreachable"), std::string::npos) << console;
  EXPECT_NE(console.find("path " + t.path() + " absent"), std::string::npos) << console;
  EXPECT_NE(console.find("path /bin/probe present"), std::string::npos) << console;
  EXPECT_NE(console.find("fds 3\n"), std::string::npos) << console;  // stdin, stdout, stderr only
  EXPECT_FALSE(outside.accepted());

  // The parent reaches the enclave through the vsock folder.
  EXPECT_EQ(sim_test::unix_roundtrip(t / "vsock/16_5000.sock", "ping"), "echo:ping");

  std::string ns = sim_test::pid_namespace(p.pid());
  ASSERT_FALSE(ns.empty());
  EXPECT_EQ(sim_test::processes_in_namespace(ns).size(), 3u);  // init, probe, spawned child
  p.kill();
  int status = p.wait();
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_TRUE(sim_test::processes_in_namespace(ns).empty());
}

TEST(Launcher, ExitStatusOfTheCommandIsTheEnclaves) {
  SN_SKIP_UNLESS_ROOT("the launcher creates namespaces");
  TempDir t;
  EnclaveProcess p = launch_enclave(probe_spec(t, {"env:PROBE_MARK"}));
  int status = p.wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(sim_test::slurp(t / "console.log").find("env PROBE_MARK=inside"), std::string::npos);
}

TEST(Launcher, TheCommandsOwnStatusSurvivesItsInit) {
  SN_SKIP_UNLESS_ROOT("the launcher creates namespaces");
  TempDir t;
  EnclaveProcess exited = launch_enclave(probe_spec(t, {"exit:3"}));
  exited.wait();
  ASSERT_TRUE(exited.command_reported());
  ASSERT_TRUE(WIFEXITED(exited.command_status()));
  EXPECT_EQ(WEXITSTATUS(exited.command_status()), 3);
  // PID 1 can only exit with 128+15 for a command killed by SIGTERM; the report keeps the signal.
  EnclaveProcess killed = launch_enclave(probe_spec(t, {"raise:15"}));
  int init_status = killed.wait();
  ASSERT_TRUE(WIFEXITED(init_status));
  EXPECT_EQ(WEXITSTATUS(init_status), 128 + 15);
  ASSERT_TRUE(killed.command_reported());
  ASSERT_TRUE(WIFSIGNALED(killed.command_status()));
  EXPECT_EQ(WTERMSIG(killed.command_status()), SIGTERM);
  EXPECT_EQ(killed.oom_kills(), 0u);
  // Killed from outside before the command ended: no report, PID 1's own status.
  EnclaveProcess stopped = launch_enclave(probe_spec(t, {"serve:/run/shield-nitro/vsock/s.sock"}));
  ASSERT_TRUE(sim_test::wait_for(t / "console.log", "serving"));
  stopped.kill();
  stopped.wait();
  EXPECT_FALSE(stopped.command_reported());
  EXPECT_TRUE(WIFSIGNALED(stopped.command_status()));
}

TEST(Launcher, MemoryLimitStopsALargerAllocation) {
  SN_SKIP_UNLESS_ROOT("the launcher creates namespaces");
  TempDir t;
  EnclaveSpec spec = probe_spec(t, {"cat:/proc/self/cgroup", "alloc:16", "alloc:256"});
  spec.memory_mib = 64;
  EnclaveProcess p = launch_enclave(spec);
  EXPECT_NE(p.limits().memory, "none");
  p.wait();
  std::string console = sim_test::slurp(t / "console.log");
  EXPECT_NE(console.find("alloc 16 ok"), std::string::npos) << console;
  EXPECT_EQ(console.find("alloc 256 ok"), std::string::npos) << console << p.limits().memory;
  if (p.limits().memory.starts_with("cgroup")) {
    EXPECT_NE(console.find("memory:/"), std::string::npos) << console;
    EXPECT_NE(console.find("/shield-nitro-test-"), std::string::npos) << console;  // inside its own cgroup
    // The cgroup's OOM killer ended it, and the launcher counted that before removing the cgroup.
    ASSERT_TRUE(WIFSIGNALED(p.command_status()));
    EXPECT_EQ(WTERMSIG(p.command_status()), SIGKILL);
    EXPECT_GE(p.oom_kills(), 1u);
  }
}

TEST(Launcher, CpuLimitNamesTheCpus) {
  SN_SKIP_UNLESS_ROOT("the launcher creates namespaces");
  TempDir t;
  EnclaveSpec spec = probe_spec(t, {});
  spec.cpus = 1;
  EnclaveProcess p = launch_enclave(spec);
  EXPECT_EQ(p.limits().cpu_ids.size(), 1u);
  EXPECT_NE(p.limits().cpu, "none");
  p.wait();
  spec.cpus = 4096;
  try {
    launch_enclave(spec);
    FAIL() << "more CPUs than the machine has were accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kUsage);
  }
}

TEST(Launcher, CommandMissingFromTheImageIsNotFound) {
  SN_SKIP_UNLESS_ROOT("the command is looked for inside the namespaces");
  TempDir t;
  EnclaveSpec spec = probe_spec(t, {});
  spec.argv = {"no-such-program"};
  try {
    launch_enclave(spec);
    FAIL() << "launch succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kNotFound) << e.what();
    EXPECT_NE(std::string(e.what()).find("no-such-program"), std::string::npos);
  }
}

TEST(Launcher, RefusesBadSpecs) {
  TempDir t;
  EnclaveSpec spec = probe_spec(t, {});
  spec.binds.push_back({t / "vsock", "/etc/escape", false});
  EXPECT_THROW(launch_enclave(spec), Error);
  spec = probe_spec(t, {});
  spec.binds.push_back({t / "vsock", "/run/../etc", false});
  EXPECT_THROW(launch_enclave(spec), Error);
  spec = probe_spec(t, {});
  spec.rootfs = t / "missing";
  EXPECT_THROW(launch_enclave(spec), Error);
  spec = probe_spec(t, {});
  spec.argv.clear();
  EXPECT_THROW(launch_enclave(spec), Error);
}

TEST(Launcher, WithoutPrivilegeTheErrorIsEnvironment) {
  SN_SKIP_UNLESS_ROOT("the test drops to another user");
  TempDir t;
  EnclaveSpec spec = probe_spec(t, {});
  spec.console_path = "/dev/null";
  fs::permissions(t.path(), fs::perms::all);
  pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    try {
      launch_enclave(spec);
      ::_exit(11);
    } catch (const Error& e) {
      ::_exit(e.code() == Errc::kEnvironment ? 0 : 12);
    }
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}
