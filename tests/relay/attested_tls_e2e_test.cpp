// Attested TLS end to end (issue 15): the built `shield-nitro-enclave run` with an attested-tls
// ingress, on simulated vsock, with the NSM simulator and a trivial Python app. The parent side is
// this test: the host agent's passthrough forwarder (TCP → vsock), recording what it relays, and
// the C++ client (parent::verify_attested_tls: the project's verifier, then a pinned connection).
// A parent that terminates TLS itself, with a key of its own and genuine documents fetched from
// the enclave, is refused: the document names another key than the one the client saw.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <openssl/ssl.h>
#include <unistd.h>

#include "relay_test_support.h"
#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/nsm_sim/simulator.h"
#include "shield_nitro/parent/attested_tls.h"
#include "shield_nitro/relay/attested_tls.h"
#include "shield_nitro/relay/ingress.h"
#include "support/echo_server.h"
#include "support/expect_error.h"
#include "support/process.h"
#include "support/temp_dir.h"

using namespace shield_nitro;

namespace {

const Bytes kPcr0(48, 0x42);

using sn_test::free_port;
using sn_test::read_text;

class AttestedTlsRun : public ::testing::Test {
 protected:
  test_support::TempDir dir{"sn-atls-e2e"};
  std::shared_ptr<nsm::SimulatedNsm> sim;
  std::unique_ptr<nsm::SimulatorServer> nsm_server;
  attest::TrustAnchor root = attest::TrustAnchor::aws();
  std::unique_ptr<sn_test::Process> enclave;
  std::unique_ptr<relay::IngressForwarder> host;  // the parent: a blind TCP → vsock relay
  std::mutex mu;
  std::string parent_saw;  // every byte the parent relayed, both ways
  std::string log;
  std::string rotate_file;  // growing it makes the supervisor rotate its key (relay::kTestRotateFileEnv)

  void SetUp() override {
    nsm::BootPcrs pcrs;
    pcrs.values[0] = kPcr0;
    sim = nsm::SimulatedNsm::create(dir / "nsm", pcrs);
    nsm_server = sim->serve(nsm::simulator_socket_path(dir / "nsm"));
    root = attest::TrustAnchor::from_pem(sim->root_pem());
    std::filesystem::create_directories(dir / "vs");
    ::setenv("SHIELD_NITRO_VSOCK_DIR", (dir / "vs").c_str(), 1);
    net::install_vsock_network(nullptr);

    const uint16_t app_port = free_port();
    std::string app = dir / "app.py";
    std::ofstream(app) << R"PY(
import http.server, sys
class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("hello from the app: " + self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hello)
print("serving", flush=True)
server.serve_forever()
)PY";
    std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all | std::filesystem::perms::others_exec);
    std::filesystem::permissions(app, std::filesystem::perms::owner_all | std::filesystem::perms::others_read);
    std::string user = ::geteuid() == 0 ? "65534:65534" : std::to_string(::getuid()) + ":" + std::to_string(::getgid());
    std::string cfg = dir / "runtime.yaml";
    std::ofstream(cfg) << "version: 1\napp: {user: \"" + user + "\"}\nhost: {cid: 3, port: 7000}\n"
                          "ingress:\n  - {vsock_port: 5443, app_port: " + std::to_string(app_port) +
                              ", mode: attested-tls, key: p384, user_data: c0ffee}\n";
    log = dir / "run.log";
    rotate_file = dir / "rotate";
    enclave = std::make_unique<sn_test::Process>(
        std::vector<std::string>{"/usr/bin/env", "SHIELD_NITRO_VSOCK_DIR=" + dir / "vs",
                                 std::string(relay::kTestRotateFileEnv) + "=" + rotate_file, SN_ENCLAVE, "run", "--config", cfg,
                                 "--nsm", "sim:" + dir / "nsm", "--", "/usr/bin/python3", app, std::to_string(app_port)},
        log);
    enclave->wait_ready([&] { return read_text(log).find("\"serving\"") != std::string::npos; });

    relay::IngressOptions h;
    h.name = "ingress parent";
    h.listen = net::Endpoint::parse("tcp://127.0.0.1:0");
    h.target = net::Endpoint::vsock(16, 5443);
    h.session = [this](int c, int t, int stop) {
      net::RelayOptions o;
      o.stop_fd = stop;
      o.tap = [this](net::RelayDirection, ByteView b) {
        std::lock_guard lock(mu);
        parent_saw.append(to_string(b));
      };
      return net::relay(c, t, o);
    };
    host = std::make_unique<relay::IngressForwarder>(h);
    host->start();
  }
  void TearDown() override {
    host.reset();
    enclave.reset();
    ::unsetenv("SHIELD_NITRO_VSOCK_DIR");
    net::install_vsock_network(nullptr);
  }

  std::string url() const { return "https://127.0.0.1:" + std::to_string(host->endpoint().port); }
  // The supervisor makes a new key for the next connection (what rotate_hours does).
  void rotate() const { std::ofstream(rotate_file, std::ios::app) << "r"; }
  // Writes `script` to DIR/name and runs it with the Python SDK (python/) importable.
  sn_test::RunResult python(const std::string& name, const std::string& script, const std::vector<std::string>& args) const {
    std::string py = dir / name;
    std::ofstream(py) << script;
    std::vector<std::string> argv{"/usr/bin/env", "PYTHONPATH=" + std::string(SN_SOURCE_DIR) + "/python", "/usr/bin/python3", py};
    argv.insert(argv.end(), args.begin(), args.end());
    return sn_test::run(argv, dir.path());
  }
  attest::Policy policy() const {
    attest::Policy p;
    p.expect_pcr(0, kPcr0);
    p.max_age_s = 300;
    return p;
  }
};

TEST_F(AttestedTlsRun, ClientVerifiesTheDocumentPinsTheKeyAndReachesTheApp) {
  parent::AttestedTlsResult r = parent::verify_attested_tls(url(), policy(), root);
  EXPECT_EQ(r.app_user_data, (Bytes{0xc0, 0xff, 0xee}));
  EXPECT_EQ(r.claims.pcrs.at(0), kPcr0);
  EXPECT_EQ(parent::spki_sha256_of_certificate(r.certificate_der), r.spki_sha256);  // the binding the client checked

  parent::PinnedConnection c = parent::connect_pinned(parent::parse_tls_target(url()), r.spki_sha256);
  EXPECT_EQ(SSL_version(c.ssl()), TLS1_3_VERSION);
  c.write_all("GET /secret-input HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string answer = c.read_to_end();
  EXPECT_NE(answer.find("hello from the app: /secret-input"), std::string::npos) << answer;

  // The CLI's `attest tls` against the same enclave prints the same pin.
  sn_test::RunResult cli = sn_test::run({SN_CLI, "attest", "tls", url(), "--pcr", "0=" + hex_encode(kPcr0), "--root",
                                         dir / "nsm/root.pem"}, dir.path());
  EXPECT_EQ(cli.status, 0) << cli.err;
  EXPECT_NE(cli.out.find("--pinnedpubkey '" + r.curl_pin + "'"), std::string::npos) << cli.out;

  // The Python SDK's client: the same key, then the app through its pinned context.
  sn_test::RunResult pyr = python("client.py", R"PY(
import http.client, sys
from shield_nitro import Policy, TrustRoot, attested_tls
policy, root = Policy(pcrs={0: bytes.fromhex(sys.argv[2])}, max_age_s=300), TrustRoot.from_file(sys.argv[3])
print(attested_tls.attest(sys.argv[1], policy, root).spki_sha256.hex())
host, port = attested_tls.parse_target(sys.argv[1])
conn = http.client.HTTPSConnection(host, port, context=attested_tls.connect(sys.argv[1], policy, root))
conn.request("GET", "/by-python")
print(conn.getresponse().read().decode())
)PY", {url(), hex_encode(kPcr0), dir / "nsm/root.pem"});
  EXPECT_EQ(pyr.status, 0) << pyr.err;
  EXPECT_EQ(pyr.out, r.spki_sha256_hex + "\nhello from the app: /by-python\n");

  // curl with the pin the client printed: the app; with another pin: curl's exit 90.
  if (std::filesystem::exists("/usr/bin/curl")) {
    sn_test::RunResult ok = sn_test::run({"/usr/bin/curl", "-sS", "--insecure", "--pinnedpubkey", r.curl_pin, url() + "/by-curl"}, dir.path());
    EXPECT_EQ(ok.status, 0) << ok.err;
    EXPECT_EQ(ok.out, "hello from the app: /by-curl");
    std::string other = "sha256//" + base64_encode(Bytes(32, 7));
    EXPECT_EQ(sn_test::run({"/usr/bin/curl", "-sS", "--insecure", "--pinnedpubkey", other, url() + "/"}, dir.path()).status, 90);
  }

  // The parent relayed TLS records only: neither the request nor the answer in the clear.
  std::lock_guard lock(mu);
  EXPECT_GT(parent_saw.size(), 1000u);
  EXPECT_EQ(parent_saw.find("secret-input"), std::string::npos);
  EXPECT_EQ(parent_saw.find("by-curl"), std::string::npos);
  EXPECT_EQ(parent_saw.find("by-python"), std::string::npos);
  EXPECT_EQ(parent_saw.find("hello from the app"), std::string::npos);
  EXPECT_EQ(parent_saw.find("nitro/attestation"), std::string::npos);
  std::string out = read_text(log);
  EXPECT_NE(out.find("attested-tls"), std::string::npos) << out;
}

TEST_F(AttestedTlsRun, AParentPresentingItsOwnCertificateIsRefused) {
  parent::AttestedTlsResult honest = parent::verify_attested_tls(url(), policy(), root);
  // The man in the middle: its own key (made the same way), genuine documents for the client's
  // nonces fetched from the enclave over its own connection; the app's side is an echo.
  sn_test::EchoServer echo;
  relay::AttestedTlsOptions o;
  o.attest = [this](ByteView nonce, ByteView) {
    parent::PinnedConnection up = [&] {
      // Through the blind relay to the enclave, as a client (any key accepted here).
      return parent::connect_pinned(parent::parse_tls_target(url()), parent::verify_attested_tls(url(), policy(), root).spki_sha256);
    }();
    up.write_all("GET " + std::string(relay::kAttestationPath) + "?nonce=" + hex_encode(nonce) + " HTTP/1.1\r\n\r\n");
    std::string raw = up.read_to_end();
    return parent::parse_attestation_response(as_bytes(raw));
  };
  auto mitm_tls = std::make_shared<relay::AttestedTls>(o);
  relay::IngressOptions m;
  m.name = "mitm";
  m.listen = net::Endpoint::parse("tcp://127.0.0.1:0");
  m.target = net::Endpoint::tcp("127.0.0.1", echo.port());
  m.session = [mitm_tls](int c, int t, int s) { return mitm_tls->serve(c, t, s); };
  relay::IngressForwarder mitm(m);
  mitm.start();
  std::string mitm_url = "https://127.0.0.1:" + std::to_string(mitm.endpoint().port);

  std::string why = test_support::message_of([&] { parent::verify_attested_tls(mitm_url, policy(), root); });
  EXPECT_NE(why.find("not the key of this TLS connection"), std::string::npos) << why;
  EXPECT_EQ(test_support::code_of([&] { parent::verify_attested_tls(mitm_url, policy(), root); }), Errc::kVerify);
  EXPECT_GE(mitm_tls->stats().attestations, 1u);  // the documents it served were genuine
  EXPECT_NE(mitm_tls->spki_sha256(), honest.spki_sha256);
  // The Python SDK's client refuses it too.
  sn_test::RunResult pyr = python("mitm.py", R"PY(
import sys
from shield_nitro import Policy, TrustRoot, VerificationError, attested_tls
try:
    attested_tls.attest(sys.argv[1], Policy(pcrs={0: bytes.fromhex(sys.argv[2])}, max_age_s=300), TrustRoot.from_file(sys.argv[3]))
    print("accepted")
except VerificationError as e:
    print("refused", e)
)PY", {mitm_url, hex_encode(kPcr0), dir / "nsm/root.pem"});
  EXPECT_EQ(pyr.out.rfind("refused", 0), 0u) << pyr.out << pyr.err;

  // A client holding the enclave's pin does not even finish the handshake with it.
  EXPECT_EQ(test_support::code_of([&] {
              parent::connect_pinned(parent::parse_tls_target(mitm_url), honest.spki_sha256);
            }),
            Errc::kVerify);
}

// The supervisor rotates its key (here when the test says so): each client attests again once,
// on its next connection, and reaches the app with the new key; the old pin no longer connects.
TEST_F(AttestedTlsRun, ClientsReattestOnceWhenTheSupervisorRotatesItsKey) {
  auto ask = [](parent::PinnedConnection c, const std::string& path) {
    c.write_all("GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    return c.read_to_end();
  };
  parent::AttestedTlsClient client(url(), policy(), root);
  EXPECT_NE(ask(client.connect(), "/one").find("hello from the app: /one"), std::string::npos);
  EXPECT_NE(ask(client.connect(), "/two").find("hello from the app: /two"), std::string::npos);
  EXPECT_EQ(client.verifications(), 1u);
  const Bytes first = client.current().spki_sha256;

  rotate();
  EXPECT_NE(ask(client.connect(), "/three").find("hello from the app: /three"), std::string::npos);
  EXPECT_EQ(client.verifications(), 2u);
  const Bytes second = client.current().spki_sha256;
  EXPECT_NE(second, first);
  EXPECT_NE(ask(client.connect(), "/four").find("hello from the app: /four"), std::string::npos);
  EXPECT_EQ(client.verifications(), 2u);
  EXPECT_EQ(test_support::code_of([&] { parent::connect_pinned(parent::parse_tls_target(url()), first); }), Errc::kVerify);
  EXPECT_NE(read_text(log).find("rotated the TLS key (certificate SPKI sha256 " + hex_encode(second) + ")"), std::string::npos);

  // The Python SDK's pinned context, rotated under it between two requests.
  sn_test::RunResult pyr = python("rotation.py", R"PY(
import http.client, sys
from shield_nitro import Policy, TrustRoot, attested_tls
url, rotate_file = sys.argv[1], sys.argv[4]
ctx = attested_tls.connect(url, Policy(pcrs={0: bytes.fromhex(sys.argv[2])}, max_age_s=300), TrustRoot.from_file(sys.argv[3]))
host, port = attested_tls.parse_target(url)
def get(path):
    conn = http.client.HTTPSConnection(host, port, context=ctx)
    conn.request("GET", path)
    return conn.getresponse().read().decode()
before = ctx.attested.spki_sha256.hex()
print(get("/py-one"), ctx.verifications, before)
with open(rotate_file, "a") as f:
    f.write("r")
print(get("/py-two"), ctx.verifications, ctx.attested.spki_sha256.hex() != before)
print(get("/py-three"), ctx.verifications)
)PY", {url(), hex_encode(kPcr0), dir / "nsm/root.pem", rotate_file});
  EXPECT_EQ(pyr.status, 0) << pyr.err;
  EXPECT_EQ(pyr.out, "hello from the app: /py-one 1 " + hex_encode(second) + "\nhello from the app: /py-two 2 True\n"
                     "hello from the app: /py-three 2\n");

  // Node's agent (js/), when node and the package's dependencies are installed.
  const std::string js = std::string(SN_SOURCE_DIR) + "/js";
  if (std::filesystem::exists("/usr/bin/node") && std::filesystem::exists(js + "/node_modules/@peculiar")) {
    std::string mjs = dir / "rotation.mjs";
    std::ofstream(mjs) << "import https from 'node:https';\nimport fs from 'node:fs';\n"
                          "const { attestTls } = await import(process.argv[6] + '/src/attested-tls.js');\n" << R"JS(
const [url, pcr0, root, rotateFile] = process.argv.slice(2);
const t = await attestTls(url, { pcrs: { 0: pcr0 }, maxAgeMs: 300_000 }, { root: fs.readFileSync(root, "utf8") });
const get = (path) => new Promise((resolve, reject) => https.get(url + path, { agent: t.agent }, (res) => {
  let body = "";
  res.on("data", (d) => (body += d));
  res.on("end", () => resolve(body));
}).on("error", reject));
const before = t.spkiSha256Hex;
const lines = [`${await get("/js-one")} ${t.verifications}`];
t.agent.destroy(); // the next request on a new connection
fs.appendFileSync(rotateFile, "r");
const answers = await Promise.all([1, 2, 3, 4].map((i) => get(`/js-${i}`)));
lines.push(`${answers.join(",")} ${t.verifications} ${t.spkiSha256Hex !== before}`);
t.agent.destroy();
console.log(lines.join("\n"));
)JS";
    sn_test::RunResult jsr = sn_test::run({"/usr/bin/node", mjs, url(), hex_encode(kPcr0), dir / "nsm/root.pem", rotate_file, js}, dir.path());
    EXPECT_EQ(jsr.status, 0) << jsr.err;
    EXPECT_EQ(jsr.out, "hello from the app: /js-one 1\nhello from the app: /js-1,hello from the app: /js-2,"
                       "hello from the app: /js-3,hello from the app: /js-4 2 true\n");
  }

  // And the C++ client follows the keys the other clients caused.
  EXPECT_NE(ask(client.connect(), "/five").find("hello from the app: /five"), std::string::npos);
  EXPECT_EQ(client.verifications(), 3u);
}

}  // namespace
