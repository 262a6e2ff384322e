// attestTls against a small Node TLS server that plays the enclave's ingress: it answers the
// attestation request with a real document from the NSM simulator (`nsm-sim serve` +
// `attest request --nonce --user-data`), binding "sn-tls/1" || SHA-256(SPKI) of a certificate,
// and "hello" to anything else. A man in the middle, a replayed nonce, a stale document and a
// wrong PCR are refused; the returned Agent reaches only the attested key. The server rotates
// its certificate: the Agent, connect(), the undici dispatcher re-attest once (also for many
// connections at once) and accept only a key the fresh document binds.
import test from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import https from "node:https";
import tls from "node:tls";
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { attestTls, spkiSha256, spkiOfCertificate, parseTarget, pinnedTlsOptions, pinnedDispatcher } from "../src/attested-tls.js";
import { cli, haveCli, startSimulator } from "./helpers.js";

const PCR0 = "5a".repeat(48);
const haveOpenssl = (() => { try { execFileSync("openssl", ["version"]); return true; } catch { return false; } })();
const skip = (!haveCli || !haveOpenssl) && "needs the built CLI and openssl";

function makeCert(dir, name) {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
    "-subj", "/CN=enclave", "-keyout", key, "-out", cert], { stdio: "pipe" });
  const pem = fs.readFileSync(cert, "utf8");
  const der = new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64"));
  return { key: fs.readFileSync(key), cert: pem, der };
}

function document(sim, nonceHex, userData) {
  return new Promise((resolve, reject) => {
    execFile(cli, ["attest", "request", "--nsm", `sim:${sim}`, "--nonce", nonceHex, "--user-data", Buffer.from(userData).toString("hex"), "-o", "-"],
      { encoding: "buffer", maxBuffer: 1 << 20 }, (err, out, errOut) => (err ? reject(new Error(String(errOut))) : resolve(out)));
  });
}

// The enclave ingress stand-in. identity: the certificate served; bind: the certificate whose
// SPKI the document names (default: the one this connection was served); nonce(clientNonce):
// the nonce put in the document. server.rotate(identity, bind) serves another certificate to
// new connections (what the supervisor does on its schedule); server.attestations counts the
// documents served; server.rotateOnNextConnection(identity) rotates right after the next
// connection arrives (that one still gets the old key).
function ingress(sim, { identity, bind, nonce = (n) => n }) {
  const state = { bind, then: undefined };
  const server = tls.createServer({ key: identity.key, cert: identity.cert }, (sock) => {
    let buf = "";
    sock.on("data", async (d) => {
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const line = buf.slice(0, buf.indexOf("\r\n"));
      buf = buf.slice(end + 4);
      const m = /^GET \/\.well-known\/shield-nitro\/attestation\?nonce=([0-9a-fA-F]{2,1024}) HTTP\/1\.1$/.exec(line);
      if (m) {
        server.attestations++;
        const bound = state.bind ? state.bind.der : new Uint8Array(sock.getCertificate().raw);
        const userData = Buffer.concat([Buffer.from("sn-tls/1"), Buffer.from(spkiSha256(bound)), Buffer.from("app")]);
        const body = await document(sim, nonce(m[1]), userData);
        sock.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/cbor\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`), body]));
      } else {
        // One request per connection: every request after a rotation meets the new key.
        sock.end("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
      }
    });
    sock.on("error", () => {});
  });
  server.attestations = 0;
  server.rotate = (next, nextBind) => {
    server.setSecureContext({ key: next.key, cert: next.cert });
    state.bind = nextBind;
  };
  // tls.Server made this connection's TLS socket (with the current key) in its own listener,
  // which runs before this one.
  server.on("connection", () => {
    const next = state.then;
    state.then = undefined;
    if (next) server.rotate(next);
  });
  server.rotateOnNextConnection = (next) => { state.then = next; };
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function get(url, agent) {
  return new Promise((resolve, reject) => {
    https.get(url, { agent }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });
}

test("parseTarget and the SPKI of a certificate", () => {
  assert.deepEqual(parseTarget("https://10.0.0.5:8443/x"), { host: "10.0.0.5", port: 8443 });
  assert.deepEqual(parseTarget("[::1]:9"), { host: "::1", port: 9 });
  assert.throws(() => parseTarget("https://host"), /no port/);
  assert.throws(() => parseTarget("http://host:1"), /not an https URL/);
});

// A certificate whose base64 fills its last line exactly (DER length a multiple of 48) once got
// an empty line before END: OpenSSL refuses that PEM and Node then trusted nothing (a third of
// real certificates failed to connect).
test("pinnedTlsOptions writes a PEM OpenSSL reads, whatever the DER's length", () => {
  for (const size of [47, 48, 96, 431, 432, 433]) {
    const der = new Uint8Array(size).fill(7);
    const pem = pinnedTlsOptions(der, new Uint8Array(32)).ca[0];
    const lines = pem.trimEnd().split("\n");
    assert.equal(lines[0], "-----BEGIN CERTIFICATE-----");
    assert.equal(lines.at(-1), "-----END CERTIFICATE-----");
    const body = lines.slice(1, -1);
    assert.ok(body.every((l) => l.length > 0 && l.length <= 64), `DER of ${size} bytes: ${JSON.stringify(body)}`);
    assert.deepEqual(Buffer.from(body.join(""), "base64"), Buffer.from(der));
  }
});

// The NSM simulator serving documents, certificates, and start(ingress options) → URL of a
// stand-in ingress (its server in servers[url]); all closed after the test.
async function simulatedEnclave(t) {
  const { dir, sim, root } = await startSimulator(t, "sn-js-tls-", PCR0);
  const servers = {};
  const sockets = new Set();
  t.after(() => {
    Object.values(servers).forEach((s) => s.close());
    sockets.forEach((s) => s.destroy());
  });
  const start = async (opts) => {
    const s = await ingress(sim, opts);
    s.on("connection", (c) => sockets.add(c));
    const url = `https://127.0.0.1:${s.address().port}`;
    servers[url] = s;
    return url;
  };
  return { root, servers, start, cert: (name) => makeCert(dir, name) };
}

const policy = { pcrs: { 0: PCR0 }, maxAgeMs: 60_000 };

test("attested TLS against a simulated enclave ingress", { skip }, async (t) => {
  const { root, start, cert } = await simulatedEnclave(t);
  const servers = [];
  const enclave = cert("enclave");
  const mitm = cert("mitm");
  const honest = await start({ identity: enclave });
  // The SPKI is the certificate's own bytes: what OpenSSL and curl hash.
  const x = new (await import("node:crypto")).X509Certificate(enclave.cert);
  assert.deepEqual(Buffer.from(spkiOfCertificate(enclave.der)), x.publicKey.export({ type: "spki", format: "der" }));

  const r = await attestTls(honest, policy, { root });
  t.after(() => r.agent.destroy());
  const expected = createHash("sha256").update(spkiOfCertificate(enclave.der)).digest("base64");
  assert.equal(r.spkiSha256Base64, expected);
  assert.equal(r.curlPin, `sha256//${expected}`);
  assert.equal(Buffer.from(r.appUserData).toString(), "app");
  assert.equal(r.claims.pcrs[0], PCR0);
  assert.equal(r.claims.nonce.length, 32);
  assert.equal(await get(`${honest}/`, r.agent), "hello");
  // curl with the printed pin reaches the same server, and refuses another key.
  // (asynchronously: the servers run in this process)
  const curl = (url, pin) => new Promise((resolve, reject) =>
    execFile("curl", ["-sS", "-k", "--max-time", "20", "--pinnedpubkey", pin, url], { encoding: "utf8" }, (e, out) => (e ? reject(e) : resolve(out))));
  assert.equal(await curl(`${honest}/`, r.curlPin), "hello");

  // A man in the middle: its own certificate, the enclave's document (binding the enclave's key).
  const relay = await start({ identity: mitm, bind: enclave });
  await assert.rejects(attestTls(relay, policy, { root }), (e) => e.code === "verification" && /binds another key/.test(e.message));
  // The pinned Agent and curl refuse the relay's key (another endpoint: no re-attestation).
  await assert.rejects(get(`${relay}/`, r.agent), (e) => e.code === "ERR_SN_PIN_MISMATCH" && /is not the attested endpoint/.test(e.message));
  assert.equal(r.verifications, 1);
  await assert.rejects(curl(`${relay}/`, r.curlPin), /SSL: public key does not match pinned public key|exit code 90|Command failed/);
  // Replay: the document carries another nonce than the client's.
  const replay = await start({ identity: enclave, nonce: () => "ab".repeat(32) });
  await assert.rejects(attestTls(replay, policy, { root }), (e) => e.code === "policy" && /nonce does not match/.test(e.message));
  // Stale, wrong PCR, wrong root (the default: AWS).
  await assert.rejects(attestTls(honest, policy, { root, now: Date.now() + 120_000 }), (e) => e.code === "policy" && /old, max age 60 s/.test(e.message));
  await assert.rejects(attestTls(honest, { pcrs: { 0: "00".repeat(47) + "01" } }, { root }), (e) => e.code === "policy" && /PCR0/.test(e.message));
  await assert.rejects(attestTls(honest, policy), (e) => e.code === "verification" && /cabundle\[0\] is not the trusted root/.test(e.message));
  // A server that is not an attested-TLS ingress.
  const plain = tls.createServer({ key: enclave.key, cert: enclave.cert }, (s) => s.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
  await new Promise((res) => plain.listen(0, "127.0.0.1", res));
  servers.push(plain);
  t.after(() => servers.forEach((x) => x.close()));
  await assert.rejects(attestTls(`https://127.0.0.1:${plain.address().port}`, policy, { root }), /answered 'HTTP\/1.1 404 Not Found'/);
});

// What a client sees of the key: the SPKI hash of the certificate served.
const pinOf = (identity) => createHash("sha256").update(spkiOfCertificate(identity.der)).digest("base64");

// A TLS connection's answer to one request (connect() and tlsOptions users speak HTTP themselves).
function ask(socket) {
  return new Promise((resolve, reject) => {
    let out = "";
    socket.on("data", (d) => (out += d));
    socket.on("end", () => resolve(out.slice(out.indexOf("\r\n\r\n") + 4)));
    socket.on("error", reject);
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  });
}

// An ingress serving a certificate made for the first of `names` (the others made for the test
// to rotate to), attested; the Agent and an undici dispatcher from pinnedDispatcher are closed
// after the test.
async function pinnedClient(t, ...names) {
  const { root, servers, start, cert } = await simulatedEnclave(t);
  const keys = names.map((n) => cert(n));
  const url = await start({ identity: keys[0] });
  const r = await attestTls(url, policy, { root });
  t.after(() => r.agent.destroy());
  const dispatcher = await pinnedDispatcher(r);
  t.after(() => dispatcher.close());
  return { url, server: servers[url], r, keys, dispatcher, undici: await import("undici") };
}

test("after a key rotation the Agent, connect(), tlsOptions and the undici dispatcher re-attest once and go on", { skip }, async (t) => {
  const { url, server, r, keys: [, k2, k3], dispatcher, undici } = await pinnedClient(t, "k1", "k2", "k3");
  assert.equal(r.verifications, 1);
  assert.equal(await get(`${url}/`, r.agent), "hello");
  assert.equal(server.attestations, 1); // the same key: no attestation

  server.rotate(k2);
  assert.equal(await get(`${url}/`, r.agent), "hello");
  assert.equal(r.verifications, 2);
  assert.equal(server.attestations, 2);
  assert.equal(r.spkiSha256Base64, pinOf(k2));
  assert.equal(r.curlPin, `sha256//${pinOf(k2)}`);
  assert.equal(Buffer.from(spkiSha256(r.certificate)).toString("base64"), pinOf(k2));
  assert.equal(Buffer.from(r.appUserData).toString(), "app");
  assert.equal(await get(`${url}/`, r.agent), "hello");
  const socket = await r.connect();
  assert.equal(Buffer.from(spkiSha256(new Uint8Array(socket.getPeerCertificate().raw))).toString("base64"), pinOf(k2));
  assert.equal(await ask(socket), "hello");
  // tlsOptions pin the key attested now.
  const direct = tls.connect({ host: "127.0.0.1", port: server.address().port, ...r.tlsOptions });
  await new Promise((res, rej) => direct.once("secureConnect", res).once("error", rej));
  assert.equal(await ask(direct), "hello");
  assert.equal(r.verifications, 2);

  // fetch through undici: the dispatcher from pinnedDispatcher follows the next rotation too.
  assert.equal(await (await undici.fetch(`${url}/`, { dispatcher })).text(), "hello");
  server.rotate(k3);
  // tlsOptions users hold one key: they are refused until something re-attests.
  const stale = tls.connect({ host: "127.0.0.1", port: server.address().port, ...r.tlsOptions });
  await assert.rejects(new Promise((res, rej) => stale.once("secureConnect", res).once("error", rej)));
  stale.destroy();
  assert.equal(await (await undici.fetch(`${url}/`, { dispatcher })).text(), "hello");
  assert.equal(r.verifications, 3);
  assert.equal(server.attestations, 3);
  assert.equal(r.spkiSha256Base64, pinOf(k3));
});

test("a rotation to a key the fresh document does not bind is refused, and the pin stays", { skip }, async (t) => {
  const { url, server, r, keys: [enclave, mitm, later, again], dispatcher, undici } =
    await pinnedClient(t, "enclave", "mitm", "later", "again");

  // The parent swaps in its own certificate and relays the enclave's documents (which bind the
  // enclave's key): every client refuses, before sending a request byte.
  server.rotate(mitm, enclave);
  const refused = (e) => e.code === "verification" && /re-attestation failed: .*binds another key/.test(e.message);
  await assert.rejects(get(`${url}/`, r.agent), refused);
  await assert.rejects(r.connect(), refused);
  await assert.rejects(undici.fetch(`${url}/`, { dispatcher }), (e) => refused(e.cause ?? e));
  assert.equal(r.verifications, 1);
  assert.equal(r.spkiSha256Base64, pinOf(enclave));
  assert.equal(server.attestations, 1 + 3); // one attempt per refused connection, none accepted

  // Back to the attested key: no re-attestation needed.
  server.rotate(enclave);
  assert.equal(await get(`${url}/`, r.agent), "hello");
  assert.equal(server.attestations, 4);

  // The key met is not the one the fresh attestation names (rotated again in between):
  // ERR_SN_PIN_MISMATCH for that connection, the newly attested key for the next.
  server.rotate(later);
  server.rotateOnNextConnection(again);
  await assert.rejects(get(`${url}/`, r.agent), (e) => e.code === "ERR_SN_PIN_MISMATCH" && /a fresh attestation names/.test(e.message));
  assert.equal(r.verifications, 2);
  assert.equal(r.spkiSha256Base64, pinOf(again));
  assert.equal(await get(`${url}/`, r.agent), "hello");
  assert.equal(r.verifications, 2);
});

test("concurrent connections across a rotation attest once", { skip }, async (t) => {
  const { url, server, r, keys: [, k2], dispatcher, undici } = await pinnedClient(t, "k1", "k2");
  server.rotate(k2);
  const answers = await Promise.all([
    ...Array.from({ length: 12 }, () => get(`${url}/`, r.agent)),
    ...Array.from({ length: 6 }, async () => (await undici.fetch(`${url}/`, { dispatcher })).text()),
    ...Array.from({ length: 4 }, async () => ask(await r.connect())),
  ]);
  assert.deepEqual(answers, Array(22).fill("hello"));
  assert.equal(r.verifications, 2);
  assert.equal(server.attestations, 2);
  assert.equal(r.spkiSha256Base64, pinOf(k2));
});
