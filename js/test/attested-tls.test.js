// attestTls against a small Node TLS server that plays the enclave's ingress: it answers the
// attestation request with a real document from the NSM simulator (`nsm-sim serve` +
// `attest request --nonce --user-data`), binding "sn-tls/1" || SHA-256(SPKI) of a certificate,
// and "hello" to anything else. A man in the middle, a replayed nonce, a stale document and a
// wrong PCR are refused; the returned Agent reaches only the attested key.
import test from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import https from "node:https";
import tls from "node:tls";
import { spawn, execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { attestTls, spkiSha256, spkiOfCertificate, parseTarget, pinnedTlsOptions } from "../src/attested-tls.js";
import { cli, haveCli, tempDir } from "./helpers.js";

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

// The enclave ingress stand-in. bind: the certificate whose SPKI the document names;
// nonce(clientNonce): the nonce put in the document.
function ingress(sim, { identity, bind = identity, nonce = (n) => n }) {
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
        const userData = Buffer.concat([Buffer.from("sn-tls/1"), Buffer.from(spkiSha256(bind.der)), Buffer.from("app")]);
        const body = await document(sim, nonce(m[1]), userData);
        sock.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/cbor\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`), body]));
      } else {
        sock.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
      }
    });
    sock.on("error", () => {});
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function get(url, agent) {
  return new Promise((resolve, reject) => {
    https.get(url, { agent }, (res) => {
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

test("attested TLS against a simulated enclave ingress", { skip }, async (t) => {
  const dir = tempDir("sn-js-tls-");
  const sim = path.join(dir, "nsm");
  execFileSync(cli, ["nsm-sim", "init", sim, "--pcr", `0=${PCR0}`], { stdio: "pipe" });
  const serve = spawn(cli, ["nsm-sim", "serve", sim], { stdio: "ignore" });
  t.after(() => serve.kill("SIGTERM"));
  for (let i = 0; !fs.existsSync(path.join(sim, "nsm.sock")); i++) {
    assert.ok(i < 200, "nsm-sim serve did not create its socket");
    await new Promise((r) => setTimeout(r, 50));
  }
  const root = fs.readFileSync(path.join(sim, "root.pem"), "utf8");
  const enclave = makeCert(dir, "enclave");
  const mitm = makeCert(dir, "mitm");
  const servers = [];
  const sockets = new Set();
  t.after(() => {
    servers.forEach((s) => s.close());
    sockets.forEach((s) => s.destroy());
  });
  const start = async (opts) => {
    const s = await ingress(sim, opts);
    s.on("connection", (c) => sockets.add(c));
    servers.push(s);
    return `https://127.0.0.1:${s.address().port}`;
  };
  const honest = await start({ identity: enclave });
  const policy = { pcrs: { 0: PCR0 }, maxAgeMs: 60_000 };

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
  // The pinned Agent and curl refuse the relay's key.
  await assert.rejects(get(`${relay}/`, r.agent));
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
  await assert.rejects(attestTls(`https://127.0.0.1:${plain.address().port}`, policy, { root }), /answered 'HTTP\/1.1 404 Not Found'/);
});
