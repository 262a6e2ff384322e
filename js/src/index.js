// verifyAttestation: the strict Nitro attestation-document verifier of shield-nitro
// (docs/attestation.md), in JavaScript for Node >= 18 and browsers. It refuses what the C++
// verifier (src/attest) refuses, in the same order: size, COSE envelope, payload structure,
// certificate chain to the one trusted root at the check time, ES384 signature, timestamp in
// the leaf's validity, then the policy.
import { decode, find, typeName, head, CborError, STRICT } from "./cbor.js";
import {
  parseCertificate, pemToDer, subtle, X509Error, checkCaProfile, checkLeafProfile, checkValidity,
  checkKnownCriticalExtensions, issuedBy, signatureVerifies, importKey,
} from "./x509.js";
import { AWS_ROOT_G1_PEM, AWS_ROOT_G1_SHA256 } from "./aws-root.js";
import { toHex } from "./hex.js";

export { AWS_ROOT_G1_PEM, AWS_ROOT_G1_SHA256, toHex };

export const MAX_DOCUMENT_SIZE = 16384 + 1024;
export const MAX_PAYLOAD_SIZE = 16384;
const MAX_CERTIFICATE_SIZE = 1024;
const MAX_OPTIONAL_FIELD_SIZE = 1024;
const PCR_SIZE = 48;
const PCR_COUNT = 32;
const MIN_PLAUSIBLE_TIMESTAMP_MS = 1000000000000n; // below: seconds, not milliseconds
const MAX_TIMESTAMP_MS = 253402300799999n; // 9999-12-31T23:59:59.999Z
const PROTECTED_ES384 = Uint8Array.of(0xa1, 0x01, 0x38, 0x22);
const FUTURE_SKEW_MS = 5000;

// code: "format" (malformed), "verification" (chain, signature, validity), "policy" (refused
// by the caller's policy: PCRs, nonce, user data, public key, debug mode, max age).
export class AttestationError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "AttestationError";
    this.code = code;
  }
}

const formatError = (why) => new AttestationError("format", `attestation document: ${why}`);
const policyError = (why) => new AttestationError("policy", `policy: ${why}`);

export function fromHex(hex, what) {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex))
    throw new TypeError(`${what}: not an even-length hex string`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let d = 0; // no early exit: nonces and user data are compared in constant time
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

function asBytes(x, what) {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  throw new TypeError(`${what} must be a Uint8Array, got ${x === null ? "null" : typeof x}`);
}

// ---- envelope and payload (attestation.md §3-§4) ------------------------------------------

function decodeSign1(doc) {
  const cose = (why) => formatError(`cose: ${why}`);
  let top;
  try {
    top = decode(doc, STRICT);
  } catch (e) {
    if (e instanceof CborError) throw cose(e.message);
    throw e;
  }
  let tagged = false;
  if (top.major === 6) {
    if (top.tag !== 18n) throw cose(`tag ${top.tag} is not COSE_Sign1 (18)`);
    tagged = true;
    top = top.item;
  }
  if (top.major !== 4) throw cose("COSE_Sign1 is not an array");
  if (top.items.length !== 4) throw cose(`COSE_Sign1 array has ${top.items.length} items, not 4`);
  const [prot, unprot, payload, sig] = top.items;
  if (prot.major !== 2) throw cose("protected header is not a byte string");
  checkProtected(prot.bytes, cose);
  if (unprot.major !== 5) throw cose("unprotected header is not a map");
  if (unprot.entries.length !== 0) throw cose("unprotected header is not empty");
  if (payload.major !== 2) throw cose("payload is not a byte string");
  if (sig.major !== 2) throw cose("signature is not a byte string");
  if (sig.bytes.length !== 96) throw cose(`signature is ${sig.bytes.length} bytes, not a 96-byte r||s`);
  return { protectedHeader: prot.bytes, payload: payload.bytes, signature: sig.bytes, tagged, indefinite: top.indefinite };
}

function checkProtected(h, cose) {
  let m;
  try {
    m = decode(h, { ...STRICT, allowTags: false });
  } catch (e) {
    if (e instanceof CborError) throw cose(`protected header: ${e.message}`);
    throw e;
  }
  if (m.major !== 5) throw cose("protected header is not a map");
  const isInt = (v) => v.major === 0 || v.major === 1;
  const intValue = (v) => (v.major === 0 ? v.value : -1n - v.value);
  if (m.entries.length !== 1 || !isInt(m.entries[0][0]) || intValue(m.entries[0][0]) !== 1n)
    throw cose("protected header must hold exactly the alg parameter (1)");
  if (!isInt(m.entries[0][1]) || intValue(m.entries[0][1]) !== -35n) throw cose("alg is not ES384 (-35)");
  if (!bytesEqual(h, PROTECTED_ES384)) throw cose("protected header {1: -35} is not in canonical form");
}

function bstr(v, what, min, max) {
  if (v.major !== 2) throw formatError(`${what} is a ${typeName(v)}, not a byte string`);
  if (v.bytes.length < min || v.bytes.length > max)
    throw formatError(`${what} is ${v.bytes.length} bytes, allowed ${min}..${max}`);
  return v.bytes;
}

function required(map, key) {
  const v = find(map, key);
  if (!v) throw formatError(`missing '${key}'`);
  return v;
}

function optionalField(map, key) {
  const v = find(map, key);
  if (!v) return undefined;
  if (v.major === 7 && v.simple === "null") return null;
  return bstr(v, key, 0, MAX_OPTIONAL_FIELD_SIZE);
}

function decodePayload(payload) {
  if (payload.length === 0 || payload.length > MAX_PAYLOAD_SIZE)
    throw formatError(`payload is ${payload.length} bytes, allowed 1..16384`);
  let p;
  try {
    p = decode(payload, { ...STRICT, allowTags: false });
  } catch (e) {
    if (e instanceof CborError) throw formatError(`payload: ${e.message}`);
    throw e;
  }
  if (p.major !== 5) throw formatError("payload is not a map");
  for (const [k] of p.entries) if (k.major !== 3) throw formatError("payload map has a non-text key");
  const d = {};
  const moduleId = required(p, "module_id");
  if (moduleId.major !== 3) throw formatError(`module_id is a ${typeName(moduleId)}, not a text string`);
  if (moduleId.text === "") throw formatError("module_id is empty");
  d.moduleId = moduleId.text;
  const digest = required(p, "digest");
  if (digest.major !== 3) throw formatError(`digest is a ${typeName(digest)}, not a text string`);
  if (digest.text !== "SHA384") throw formatError(`digest '${digest.text}' is not SHA384`);
  d.digest = digest.text;
  const ts = required(p, "timestamp");
  if (ts.major !== 0) throw formatError("timestamp is not an unsigned integer");
  if (ts.value === 0n) throw formatError("timestamp is zero");
  if (ts.value < MIN_PLAUSIBLE_TIMESTAMP_MS) throw formatError(`timestamp ${ts.value} looks like seconds, not milliseconds`);
  if (ts.value > MAX_TIMESTAMP_MS) throw formatError(`timestamp ${ts.value} is beyond year 9999`);
  d.timestamp = Number(ts.value);
  const pcrs = required(p, "pcrs");
  if (pcrs.major !== 5) throw formatError("pcrs is not a map");
  if (pcrs.entries.length === 0 || pcrs.entries.length > PCR_COUNT)
    throw formatError(`pcrs has ${pcrs.entries.length} entries, allowed 1..32`);
  d.pcrs = {};
  for (const [k, v] of pcrs.entries) {
    if (k.major !== 0 || k.value >= BigInt(PCR_COUNT)) throw formatError("pcrs key is not an index 0..31");
    d.pcrs[Number(k.value)] = toHex(bstr(v, `PCR${k.value}`, PCR_SIZE, PCR_SIZE));
  }
  d.certificate = bstr(required(p, "certificate"), "certificate", 1, MAX_CERTIFICATE_SIZE);
  const bundle = required(p, "cabundle");
  if (bundle.major !== 4) throw formatError("cabundle is not an array");
  if (bundle.items.length === 0) throw formatError("cabundle is empty");
  d.cabundle = bundle.items.map((c, i) => bstr(c, `cabundle[${i}]`, 1, MAX_CERTIFICATE_SIZE));
  d.publicKey = optionalField(p, "public_key");
  d.userData = optionalField(p, "user_data");
  d.nonce = optionalField(p, "nonce");
  return d;
}

// The document's fields WITHOUT verifying anything (attest show). Never use it to decide.
export function decodeDocument(documentBytes) {
  const doc = asBytes(documentBytes, "document");
  if (doc.length === 0) throw formatError("empty input");
  if (doc.length > MAX_DOCUMENT_SIZE) throw formatError(`${doc.length} bytes exceeds the limit of ${MAX_DOCUMENT_SIZE}`);
  const env = decodeSign1(doc);
  return { envelope: env, ...decodePayload(env.payload) };
}

// ---- trust anchor --------------------------------------------------------------------------

const anchors = new Map(); // PEM text -> Promise of the parsed, checked anchor

async function loadAnchor(pem) {
  const der = pemToDer(pem);
  const c = parseCertificate(der, "trust anchor");
  if (!c.basicConstraints?.value.cA) throw new X509Error("format", "trust anchor: the certificate is not a CA");
  if (!issuedBy(c, c) || !(await signatureVerifies(c, c)))
    throw new X509Error("format", "trust anchor: the certificate is not a valid self-signed root");
  return c;
}

function anchorFor(pem) {
  const key = pem ?? AWS_ROOT_G1_PEM;
  if (!anchors.has(key)) {
    const p = loadAnchor(key).then(async (c) => {
      if (pem === undefined) {
        const sha = toHex(new Uint8Array(await (await subtle()).digest("SHA-256", c.der)));
        if (sha !== AWS_ROOT_G1_SHA256) throw new Error("embedded AWS root does not match its pinned SHA-256");
      }
      return c;
    });
    p.catch(() => anchors.delete(key));
    anchors.set(key, p);
  }
  return anchors.get(key);
}

// ---- chain (attestation.md §5) -------------------------------------------------------------

async function verifyChain(anchor, leafDer, cabundle, atS) {
  const chainError = (why) => new AttestationError("verification", `certificate chain: ${why}`);
  if (!bytesEqual(cabundle[0], anchor.der)) throw chainError(`cabundle[0] is not the trusted root (${anchor.cn})`);
  const leaf = parseCertificate(leafDer, "certificate");
  const bundle = [anchor];
  for (let i = 1; i < cabundle.length; i++) bundle.push(parseCertificate(cabundle[i], `cabundle[${i}]`));
  checkLeafProfile(leaf);
  checkCaProfile(anchor, "the trust anchor");
  for (let i = 1; i < bundle.length; i++) checkCaProfile(bundle[i], `cabundle[${i}]`);
  for (const c of [...bundle, leaf]) checkValidity(c, atS);
  // The path must be exactly leaf <- cabundle[n-1] <- ... <- cabundle[1] <- anchor. OpenSSL
  // stops at the first certificate the anchor issued, so only cabundle[1] may be one.
  const path = [leaf, ...bundle.slice(1).reverse(), anchor]; // subject first, issuer next
  for (let i = 0; i + 1 < path.length; i++) {
    const c = path[i];
    const issuer = path[i + 1];
    const what = i === 0 ? "leaf certificate" : `cabundle[${bundle.length - i}]`;
    if (!issuedBy(c, issuer)) throw chainError(`unable to get local issuer certificate at depth ${i} (${c.cn})`);
    if (i + 1 < path.length - 1 && issuedBy(c, anchor)) throw chainError("path does not use every cabundle certificate in order");
    checkKnownCriticalExtensions(c, what);
    if (!(await signatureVerifies(c, issuer))) throw chainError(`certificate signature failure at depth ${i} (${c.cn})`);
    const pathLen = issuer.basicConstraints.value.pathLenConstraint;
    const below = i; // CA certificates between this issuer and the leaf
    if (pathLen !== undefined && below > pathLen) throw chainError(`path length constraint exceeded at depth ${i + 1} (${issuer.cn})`);
  }
  checkKnownCriticalExtensions(anchor, "the trust anchor");
  if ([leaf, ...bundle].some((c) => Number.isNaN(c.notBeforeS)))
    throw new X509Error("format", "certificate: unreadable validity time");
  const key = await importKey(leaf);
  if (!key) throw chainError("leaf key does not import as EC P-384");
  return { leaf, key };
}

// ---- the verifier --------------------------------------------------------------------------

function normalizePcrs(pcrs) {
  const out = new Map();
  for (const [index, values] of Object.entries(pcrs ?? {})) {
    const n = Number(index);
    if (!Number.isInteger(n) || n < 0 || n >= PCR_COUNT) throw new TypeError(`PCR index ${index} is not an integer in 0..31`);
    const list = Array.isArray(values) ? values : [values];
    if (list.length === 0) throw new TypeError(`PCR${n}: no acceptable value`);
    out.set(n, list.map((v) => {
      const b = typeof v === "string" ? fromHex(v, `PCR${n}`) : asBytes(v, `PCR${n}`);
      if (b.length !== PCR_SIZE) throw new TypeError(`PCR${n}: expected ${PCR_SIZE} bytes, got ${b.length}`);
      return b;
    }));
  }
  return out;
}

function nowMs(now) {
  if (now === undefined) return Date.now();
  const t = now instanceof Date ? now.getTime() : now;
  if (typeof t !== "number" || !Number.isFinite(t)) throw new TypeError("now must be a Date or Unix milliseconds");
  return t;
}

function checkField(expected, actual, name) {
  if (expected === undefined) return;
  if (actual === undefined || actual === null) throw policyError(`${name} is required but ${actual === null ? "null" : "absent"}`);
  if (!bytesEqual(asBytes(expected, name), actual)) throw policyError(`${name} does not match the expected value`);
}

function applyPolicy(d, o, atMs) {
  if (d.debug && !o.allowDebug) throw policyError("debug-mode enclave (PCR0 is all zero); pass allowDebug to accept");
  if (o.maxAgeMs !== undefined) {
    if (d.timestamp > atMs + FUTURE_SKEW_MS) throw policyError(`document timestamp ${new Date(d.timestamp).toISOString()} is in the future`);
    const age = atMs - d.timestamp;
    if (age > o.maxAgeMs) throw policyError(`document is ${Math.floor(age / 1000)} s old, max age ${o.maxAgeMs / 1000} s`);
  }
  for (const [index, allowed] of o.pcrs) {
    const hex = d.pcrs[index];
    if (hex === undefined) throw policyError(`PCR${index} is required but absent from the document`);
    const actual = fromHex(hex, "pcr");
    let match = false;
    for (const v of allowed) match = bytesEqual(v, actual) || match;
    if (!match) throw policyError(`PCR${index} ${hex} is not an expected value`);
  }
  checkField(o.nonce, d.nonce, "nonce");
  checkField(o.userData, d.userData, "user_data");
  checkField(o.publicKey, d.publicKey, "public_key");
}

/**
 * Verifies a Nitro attestation document and returns its claims, or throws AttestationError.
 * See index.d.ts for the options.
 */
export async function verifyAttestation(documentBytes, options = {}) {
  const o = {
    pcrs: normalizePcrs(options.pcrs),
    nonce: options.nonce,
    userData: options.userData,
    publicKey: options.publicKey,
    allowDebug: !!options.allowDebug,
    maxAgeMs: options.maxAgeMs,
  };
  if (o.maxAgeMs !== undefined && !(Number.isFinite(o.maxAgeMs) && o.maxAgeMs >= 0))
    throw new TypeError("maxAgeMs must be a non-negative number");
  const atMs = nowMs(options.now);
  const atS = Math.floor(atMs / 1000);
  let anchor;
  try {
    anchor = await anchorFor(options.root);
  } catch (e) {
    if (e instanceof X509Error) throw new AttestationError("format", e.message);
    throw e;
  }
  const d = decodeDocument(documentBytes);
  let chain;
  try {
    chain = await verifyChain(anchor, d.certificate, d.cabundle, atS);
  } catch (e) {
    if (e instanceof X509Error) throw new AttestationError(e.kind === "format" ? "format" : "verification", e.message);
    throw e;
  }
  const env = d.envelope;
  const tbs = sigStructure(env.protectedHeader, env.payload);
  const ok = await (await subtle()).verify({ name: "ECDSA", hash: "SHA-384" }, chain.key, env.signature, tbs);
  if (!ok) throw new AttestationError("verification", "cose: ES384 signature does not verify");
  const tsS = Math.floor(d.timestamp / 1000);
  if (tsS < chain.leaf.notBeforeS || tsS > chain.leaf.notAfterS)
    throw new AttestationError("verification", `attestation document: timestamp ${new Date(d.timestamp).toISOString()} is outside the leaf certificate's validity`);
  const claims = {
    moduleId: d.moduleId,
    timestamp: d.timestamp,
    digest: d.digest,
    pcrs: d.pcrs,
    certificate: d.certificate,
    cabundle: d.cabundle,
    publicKey: d.publicKey,
    userData: d.userData,
    nonce: d.nonce,
    debug: d.pcrs[0] !== undefined && /^0+$/.test(d.pcrs[0]),
    checkedAt: atMs,
  };
  applyPolicy(claims, o, atMs);
  return claims;
}

// ["Signature1", protected, h'', payload]: the bytes the COSE signature covers.
export function sigStructure(protectedHeader, payload) {
  const parts = [
    Uint8Array.of(0x84, 0x6a, ...new TextEncoder().encode("Signature1")),
    Uint8Array.from(head(2, protectedHeader.length)), protectedHeader,
    Uint8Array.of(0x40),
    Uint8Array.from(head(2, payload.length)), payload,
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
