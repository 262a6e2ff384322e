// Attested TLS, client side, for Node (the contract: docs/attested-tls.md, issue 15). Connects
// WITHOUT CA verification, reads the enclave's certificate, asks for an attestation document
// over that very connection with a fresh nonce, verifies it (verifyAttestation + the nonce),
// checks that user_data = "sn-tls/1" || SHA-256(SPKI of that certificate) || app data, and
// returns a pin of that SPKI: for curl, for Node's https (an Agent), for undici's fetch (a
// connector) and for tls.connect. The Agent, the connector and connect() re-attest when the
// server's key changes (the enclave rotates it on a schedule) and accept the new key only if a
// fresh document binds it.
import tls from "node:tls";
import https from "node:https";
import net from "node:net";
import { createHash, randomBytes } from "node:crypto";
import { verifyAttestation, AttestationError, toHex, MAX_DOCUMENT_SIZE } from "./index.js";
import { tlv } from "./x509.js";

export const ATTESTATION_PATH = "/.well-known/shield-nitro/attestation";
export const TAG = "sn-tls/1";
const BINDING_SIZE = 8 + 32;
const MAX_RESPONSE = 32 * 1024;

// "https://HOST:PORT[/...]" or "HOST:PORT"; the port is required (an ingress has no default).
export function parseTarget(url) {
  const text = String(url);
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`;
  let u;
  try {
    u = new URL(withScheme);
  } catch {
    throw new TypeError(`attested TLS: '${text}' is not https://HOST:PORT`);
  }
  if (u.protocol !== "https:") throw new TypeError(`attested TLS: '${text}' is not an https URL`);
  if (!u.port) throw new TypeError(`attested TLS: '${text}' has no port`);
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port) };
}

// The SubjectPublicKeyInfo DER of a certificate, as its bytes (what curl and OpenSSL hash).
export function spkiOfCertificate(der) {
  const outer = tlv(der, 0, "peer certificate");
  const tbs = tlv(der, outer.start, "peer certificate");
  let p = tbs.start;
  let t = tlv(der, p, "peer certificate", tbs.end);
  if (t.tag === 0xa0) { p = t.end; t = tlv(der, p, "peer certificate", tbs.end); } // version
  for (let i = 0; i < 5; i++) { p = t.end; t = tlv(der, p, "peer certificate", tbs.end); } // serial..subject
  if (t.tag !== 0x30) throw new AttestationError("format", "peer certificate: no SubjectPublicKeyInfo");
  return der.subarray(p, t.end);
}

export function spkiSha256(certDer) {
  return new Uint8Array(createHash("sha256").update(spkiOfCertificate(certDer)).digest());
}

// Splits an HTTP/1.x answer; returns the body of a 200 or throws.
function parseAnswer(buf) {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) throw new AttestationError("format", "attestation answer: no complete HTTP header");
  const head = buf.subarray(0, end).toString("latin1");
  const [status, ...lines] = head.split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(status);
  if (!m) throw new AttestationError("format", "attestation answer: not an HTTP/1.x status line");
  if (m[1] !== "200") throw new AttestationError("verification", `the attestation endpoint answered '${status.slice(0, 80)}'`);
  let length;
  for (const line of lines) {
    const h = /^content-length:\s*(\d{1,7})\s*$/i.exec(line);
    if (/^content-length:/i.test(line) && !h) throw new AttestationError("format", "attestation answer: bad Content-Length");
    if (h) {
      if (length !== undefined && length !== Number(h[1])) throw new AttestationError("format", "attestation answer: conflicting Content-Length headers");
      length = Number(h[1]);
    }
    if (/^transfer-encoding:/i.test(line)) throw new AttestationError("format", "attestation answer: chunked bodies are not expected");
  }
  const body = buf.subarray(end + 4);
  if (length !== undefined) {
    if (body.length < length) throw new AttestationError("format", "attestation answer: body shorter than its Content-Length");
    return new Uint8Array(body.subarray(0, length));
  }
  return new Uint8Array(body);
}

// TLS-connects without CA verification, reads the certificate, fetches the document over the
// same connection. Resolves {certificate (DER), document}.
function fetchOverOneConnection(target, nonce, timeoutMs) {
  return new Promise((resolve, reject) => {
    const servername = net.isIP(target.host) ? undefined : target.host;
    const socket = tls.connect({ host: target.host, port: target.port, servername, rejectUnauthorized: false, minVersion: "TLSv1.2" });
    const chunks = [];
    let size = 0;
    let certificate;
    const fail = (e) => { socket.destroy(); reject(e); };
    socket.setTimeout(timeoutMs, () => fail(new AttestationError("verification", `attested TLS: ${target.host}:${target.port} did not answer within ${timeoutMs} ms`)));
    socket.on("error", (e) => fail(new AttestationError("verification", `attested TLS: ${target.host}:${target.port}: ${e.message}`)));
    socket.on("secureConnect", () => {
      const peer = socket.getPeerCertificate(false);
      if (!peer?.raw) return fail(new AttestationError("verification", "attested TLS: the server sent no certificate"));
      certificate = new Uint8Array(peer.raw);
      const hostHeader = net.isIPv6(target.host) ? `[${target.host}]` : target.host;
      socket.write(`GET ${ATTESTATION_PATH}?nonce=${toHex(nonce)} HTTP/1.1\r\nHost: ${hostHeader}:${target.port}\r\n` +
        "Accept: application/cbor\r\nConnection: close\r\n\r\n");
    });
    socket.on("data", (d) => {
      size += d.length;
      if (size > MAX_RESPONSE) return fail(new AttestationError("format", `attestation answer: more than ${MAX_RESPONSE} bytes`));
      chunks.push(d);
    });
    socket.on("end", () => {
      socket.destroy();
      if (!certificate) return reject(new AttestationError("verification", "attested TLS: connection closed before the handshake"));
      try {
        resolve({ certificate, document: parseAnswer(Buffer.concat(chunks)) });
      } catch (e) {
        reject(e);
      }
    });
  });
}

const b64 = (b) => Buffer.from(b).toString("base64");
const sameBytes = (a, b) => a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

function pinMismatch(message) {
  const e = new Error(message);
  e.code = "ERR_SN_PIN_MISMATCH";
  return e;
}

// TLS options that accept only a server whose certificate's SPKI hashes to `pin` (32 bytes).
// The certificate is trusted as its own CA (so Node runs checkServerIdentity before any byte
// of a request is sent), and checkServerIdentity compares the SPKI, not the host name.
export function pinnedTlsOptions(certificateDer, pin) {
  // 64-column lines and no empty line before END (OpenSSL refuses such a PEM, and Node then
  // silently trusts nothing).
  const pem = `-----BEGIN CERTIFICATE-----\n${b64(certificateDer).match(/.{1,64}/g).join("\n")}\n-----END CERTIFICATE-----\n`;
  return {
    ca: [pem],
    rejectUnauthorized: true,
    checkServerIdentity(_host, cert) {
      const got = cert?.raw ? spkiSha256(new Uint8Array(cert.raw)) : undefined;
      if (!got || !sameBytes(got, pin)) {
        return pinMismatch("attested TLS: the server's key is not the attested one (tlsOptions pin one key: " +
          "after a rotation use the result's agent, connector or connect(), which re-attest)");
      }
      return undefined;
    },
  };
}

// One run of the client procedure: a fresh nonce, a fresh connection, the document verified and
// binding that connection's key. Resolves {certificate, document, claims, pin, appUserData}.
async function attestOnce(target, policy, options) {
  const nonceSize = options.nonceSize ?? 32;
  if (!Number.isInteger(nonceSize) || nonceSize < 1 || nonceSize > 512) throw new TypeError("nonceSize must be 1..512");
  const nonce = new Uint8Array(randomBytes(nonceSize));
  const { certificate, document } = await fetchOverOneConnection(target, nonce, options.timeoutMs ?? 10_000);
  if (document.length === 0 || document.length > MAX_DOCUMENT_SIZE)
    throw new AttestationError("format", `attestation answer: body of ${document.length} bytes is not a document`);
  const claims = await verifyAttestation(document, { ...policy, nonce, root: options.root ?? policy.root, now: options.now ?? policy.now });
  const pin = spkiSha256(certificate);
  const u = claims.userData;
  if (!u || u.length < BINDING_SIZE)
    throw new AttestationError("verification", `attested TLS: user_data of ${u ? u.length : 0} bytes is not an sn-tls/1 key binding`);
  if (Buffer.from(u.subarray(0, 8)).toString("latin1") !== TAG)
    throw new AttestationError("verification", 'attested TLS: user_data does not start with "sn-tls/1"');
  if (!sameBytes(u.subarray(8, BINDING_SIZE), pin))
    throw new AttestationError("verification", "attested TLS: the document binds another key than this connection's certificate (man in the middle?)");
  return { certificate, document, claims, pin, appUserData: u.subarray(BINDING_SIZE) };
}

const hostOf = (h) => String(h ?? "").replace(/^\[|\]$/g, "").toLowerCase();

// An https.Agent whose connections are opened by `open` (options, callback): the socket reaches
// http only after its key was accepted, so no request byte goes to another key.
class PinnedAgent extends https.Agent {
  #open;
  constructor(open, options) {
    super(options);
    this.#open = open;
  }
  createConnection(options, callback) {
    this.#open(options, callback);
    return undefined; // http waits for the callback
  }
}

// A verified endpoint (what attestTls resolves to): the pinned key and the means to reach it.
// Connections that meet another key re-attest the endpoint once (concurrent ones share that
// attestation) and go on only if the fresh document binds the key they met.
class AttestedEndpoint {
  #target;
  #policy;
  #options;
  #current;
  #inflight = null;
  #verifications = 1;

  constructor(target, policy, options, record) {
    this.#target = target;
    this.#policy = policy;
    this.#options = options;
    this.#current = record;
    this.agent = new PinnedAgent((o, cb) => this.#open(o, cb), { keepAlive: true });
    // undici's Agent/Client `connect` option: (opts, callback) with opts.hostname, port, servername.
    this.connector = (opts, callback) => {
      if (opts.httpSocket) return callback(new TypeError("attested TLS: connecting through a proxy socket is not supported"));
      this.#open({ host: hostOf(opts.hostname), port: Number(opts.port) || 443, servername: opts.servername }, callback);
    };
  }

  get spkiSha256Hex() { return toHex(this.#current.pin); }
  get spkiSha256Base64() { return b64(this.#current.pin); }
  get curlPin() { return `sha256//${b64(this.#current.pin)}`; }
  get certificate() { return this.#current.certificate; }
  get document() { return this.#current.document; }
  get claims() { return this.#current.claims; }
  get appUserData() { return this.#current.appUserData; }
  get verifications() { return this.#verifications; }
  get tlsOptions() {
    const servername = net.isIP(this.#target.host) ? undefined : this.#target.host;
    return { ...pinnedTlsOptions(this.#current.certificate, this.#current.pin), servername };
  }

  // A TLS socket to the attested endpoint, its key accepted (re-attesting after a rotation).
  connect() {
    const { host, port } = this.#target;
    return new Promise((resolve, reject) => this.#open({ host, port }, (e, s) => (e ? reject(e) : resolve(s))));
  }

  // Resolves when `pin` is the attested key of host:port; rejects with ERR_SN_PIN_MISMATCH or
  // the re-attestation's error.
  async #accept(pin, host, port) {
    const where = `${this.#target.host}:${this.#target.port}`;
    if (sameBytes(pin, this.#current.pin)) return;
    if (hostOf(host) !== hostOf(this.#target.host) || Number(port) !== this.#target.port)
      throw pinMismatch(`attested TLS: ${host}:${port} is not the attested endpoint ${where} and its key is not the pinned one`);
    let started = false;
    for (;;) {
      if (this.#inflight) {
        await this.#inflight; // another connection is re-attesting: its verdict is ours
      } else if (!started) {
        started = true;
        this.#inflight = attestOnce(this.#target, this.#policy, this.#options).then(
          (record) => { this.#current = record; this.#verifications++; },
          (e) => {
            if (!(e instanceof AttestationError)) throw e;
            throw new AttestationError(e.code, `attested TLS: ${where} presented a new key and its re-attestation failed: ${e.message}`);
          },
        ).finally(() => { this.#inflight = null; });
        await this.#inflight;
      } else {
        throw pinMismatch(`attested TLS: ${where} presented key ${toHex(pin)}, but a fresh attestation names ${toHex(this.#current.pin)} (rotated again, or intercepted)`);
      }
      if (sameBytes(pin, this.#current.pin)) return;
    }
  }

  // Opens a TLS connection without CA checks, then hands it over only once its key is accepted.
  #open(options, callback) {
    const servername = options.servername || (net.isIP(hostOf(options.host)) ? undefined : hostOf(options.host)) || undefined;
    const socket = tls.connect({
      host: options.host, port: options.port, servername, family: options.family, localAddress: options.localAddress,
      lookup: options.lookup, keepAlive: options.keepAlive, keepAliveInitialDelay: options.keepAliveInitialDelay,
      rejectUnauthorized: false, minVersion: "TLSv1.2",
    });
    const timeoutMs = this.#options.timeoutMs ?? 10_000;
    let settled = false;
    const finish = (err) => {
      if (settled) return;
      settled = true;
      socket.setTimeout(0);
      socket.removeListener("error", finish);
      if (err) {
        socket.destroy();
        callback(err);
      } else {
        callback(null, socket);
      }
    };
    socket.on("error", finish);
    socket.setTimeout(timeoutMs, () => finish(new AttestationError("verification", `attested TLS: ${options.host}:${options.port} did not complete the handshake within ${timeoutMs} ms`)));
    socket.once("secureConnect", () => {
      const raw = socket.getPeerCertificate(false)?.raw;
      if (!raw) return finish(pinMismatch("attested TLS: the server sent no certificate"));
      let pin;
      try {
        pin = spkiSha256(new Uint8Array(raw));
      } catch (e) {
        return finish(e);
      }
      // Until then nothing is written: the socket is idle while a re-attestation runs.
      this.#accept(pin, options.host, options.port).then(() => finish(null), finish);
    });
  }
}

/**
 * Verifies an attested-TLS endpoint and returns it pinned. See attested-tls.d.ts.
 */
export async function attestTls(url, policy = {}, options = {}) {
  const target = parseTarget(url);
  const record = await attestOnce(target, policy, options);
  return new AttestedEndpoint(target, policy, { ...options }, record);
}

// An undici Dispatcher for fetch (`fetch(url, {dispatcher})`), from the `undici` package the
// caller installs (Node's built-in fetch does not export its Agent class). It re-attests on a
// rotation like the Agent.
export async function pinnedDispatcher(result) {
  const undici = await import("undici");
  return new undici.Agent({ connect: result.connector });
}
