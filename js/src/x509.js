// X.509 parsing and checks for the attestation chain. The certificate structure is walked here
// (pure JS, runs in browsers) so that it accepts and refuses what OpenSSL's d2i_X509 does (a
// schema decoder such as @peculiar/asn1-x509's Certificate refuses, e.g., attribute values of
// unusual types that OpenSSL reads as ANY, and would turn a signature failure into a format
// error); @peculiar/asn1-x509 decodes the extension values. Signatures: WebCrypto.
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  BasicConstraints,
  KeyUsage,
  AuthorityKeyIdentifier,
  SubjectKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_authorityKeyIdentifier,
  id_ce_subjectKeyIdentifier,
  id_ce_extKeyUsage,
  id_ce_subjectAltName,
  id_ce_certificatePolicies,
  id_ce_nameConstraints,
  id_ce_policyConstraints,
  id_ce_policyMappings,
  id_ce_inhibitAnyPolicy,
} from "@peculiar/asn1-x509";
import { toHex } from "./hex.js";

export const OID_ECDSA_SHA384 = "1.2.840.10045.4.3.3";
export const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const CURVES = { "1.2.840.10045.3.1.7": "P-256", "1.3.132.0.34": "P-384", "1.3.132.0.35": "P-521" };
const SCALAR = { "P-256": 32, "P-384": 48, "P-521": 66 };
const KU_DIGITAL_SIGNATURE = 1; // KeyUsageFlags bit values of @peculiar/asn1-x509
const KU_KEY_CERT_SIGN = 32;
// Critical extensions OpenSSL's path validation understands; any other critical one fails it.
const KNOWN_CRITICAL = new Set([
  id_ce_basicConstraints, id_ce_keyUsage, id_ce_extKeyUsage, id_ce_subjectAltName, id_ce_certificatePolicies,
  id_ce_nameConstraints, id_ce_policyConstraints, id_ce_policyMappings, id_ce_inhibitAnyPolicy,
]);

export class X509Error extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind; // "format" | "verification"
  }
}

let subtlePromise;
export function subtle() {
  // Node >= 19 and browsers have globalThis.crypto; Node 18 has it only in node:crypto.
  if (globalThis.crypto?.subtle) return Promise.resolve(globalThis.crypto.subtle);
  subtlePromise ??= import("node:crypto").then((m) => m.webcrypto.subtle);
  return subtlePromise;
}

// One TLV at `pos`: {tag, start (of the value), end}. Like OpenSSL's decoder, a long-form
// length may be longer than needed (leading zeros); indefinite lengths are refused.
export function tlv(b, pos, what, limit = b.length) {
  const bad = () => { throw new X509Error("format", `${what}: not a DER X.509 certificate`); };
  if (pos + 2 > limit) bad();
  const tag = b[pos];
  if ((tag & 0x1f) === 0x1f) bad();
  let len = b[pos + 1];
  let p = pos + 2;
  if (len & 0x80) {
    let n = len & 0x7f;
    if (n === 0 || p + n > limit) bad();
    while (n > 0 && b[p] === 0) { p++; n--; }
    if (n > 4) bad();
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p++];
  }
  if (p + len > limit) bad();
  return { tag, start: p, end: p + len };
}

// The universal tags OpenSSL decodes a name's attribute value as (ASN1_PRINTABLE through its
// tag2bit table: the string types, SEQUENCE and the "unknown" ones), and the
// content checks its decoder makes (UTF-8 valid, BMP and Universal string lengths).
const NAME_VALUE_TAGS = new Set([0x07, 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x12, 0x13, 0x14, 0x16, 0x1d, 0x1e, 0x30]);
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
function nameValueOk(b, t) {
  if (!NAME_VALUE_TAGS.has(t.tag)) return false;
  const n = t.end - t.start;
  if (t.tag === 0x0c) {
    try { strictUtf8.decode(b.subarray(t.start, t.end)); } catch { return false; }
  }
  return !(t.tag === 0x1e && n % 2) && !(t.tag === 0x1c && n % 4);
}


const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// The items of a constructed value, each {tag, start, end, raw}.
function children(b, t, what, anyForm = false) {
  if (!(t.tag & 0x20) && !anyForm) throw new X509Error("format", `${what}: not a DER X.509 certificate`);
  const out = [];
  for (let p = t.start; p < t.end;) {
    const c = tlv(b, p, what, t.end);
    c.raw = b.subarray(p, c.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

// OBJECT IDENTIFIER contents as OpenSSL accepts them: non-empty, no 0x80 padding, not cut.
function oidOf(b, t, what) {
  const v = b.subarray(t.start, t.end);
  const ok = t.tag === 0x06 && v.length > 0 && !(v[v.length - 1] & 0x80) &&
    v.every((x, i) => x !== 0x80 || (i > 0 && v[i - 1] & 0x80));
  if (!ok) throw new X509Error("format", `${what}: not a DER X.509 certificate`);
  return oidText(v);
}

// An ANY value (algorithm parameters) as OpenSSL decodes it: universal primitives are checked.
function anyOk(b, t) {
  const n = t.end - t.start;
  if (t.tag & 0x20) { // constructed: its content must be TLVs
    try {
      children(b, t, "");
      return true;
    } catch {
      return false;
    }
  }
  switch (t.tag) {
    case 0x01: return n === 1;
    case 0x05: return n === 0;
    case 0x02: return integerOk(b, t);
    case 0x03: return n > 0 && b[t.start] <= 7;
    case 0x06:
      try { oidOf(b, t, ""); return true; } catch { return false; }
    default: return true;
  }
}

function integerOk(b, t) {
  const v = b.subarray(t.start, t.end);
  if (t.tag !== 0x02 || v.length === 0) return false;
  return !(v.length > 1 && ((v[0] === 0 && !(v[1] & 0x80)) || (v[0] === 0xff && v[1] & 0x80)));
}

// UTCTime / GeneralizedTime "...SSZ" to Unix seconds; NaN when unreadable (OpenSSL reads the
// value only when it compares it).
function timeOf(b, t, what) {
  if (t.tag !== 0x17 && t.tag !== 0x18) throw new X509Error("format", `${what}: not a DER X.509 certificate`);
  const s = String.fromCharCode(...b.subarray(t.start, t.end));
  const m = t.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return NaN;
  let year = Number(m[1]);
  if (t.tag === 0x17) year += year < 50 ? 2000 : 1900;
  const [mo, d, h, mi, se] = m.slice(2).map(Number);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) return NaN;
  const ms = Date.UTC(year, mo - 1, d, h, mi, se);
  if (new Date(ms).getUTCDate() !== d) return NaN; // e.g. February 30
  return ms / 1000;
}

function nameCn(b, name) {
  let cn = "?";
  for (const rdn of children(b, name, "name", true))
    for (const atv of children(b, rdn, "name", true)) {
      const [type, value] = children(b, atv, "name");
      if (type && value && type.tag === 0x06 && eq(b.subarray(type.start, type.end), Uint8Array.of(0x55, 0x04, 0x03)))
        cn = new TextDecoder().decode(b.subarray(value.start, value.end));
    }
  return cn;
}

// Parses a certificate. Throws X509Error("format") for what OpenSSL's d2i_X509 refuses, as
// far as the chain needs it: structure, OIDs, integers, time types. Names are compared as
// their bytes; attribute values, like OpenSSL's ANY, may be of any type.
export function parseCertificate(der, what) {
  if (der.length === 0) throw new X509Error("format", `${what}: empty certificate`);
  const bad = () => new X509Error("format", `${what}: not a DER X.509 certificate`);
  const outer = tlv(der, 0, what);
  if (outer.tag !== 0x30) throw bad();
  if (outer.end !== der.length) throw new X509Error("format", `${what}: trailing bytes after the certificate`);
  const top = children(der, outer, what);
  if (top.length !== 3 || top[0].tag !== 0x30 || top[1].tag !== 0x30 || top[2].tag !== 0x03) throw bad();
  const [tbsTlv, algTlv, sigTlv] = top;
  const algOid = (t) => {
    if (t.tag !== 0x30) throw bad();
    const a = children(der, t, what);
    if (a.length < 1 || a.length > 2 || (a[1] && !anyOk(der, a[1]))) throw bad();
    return { oid: oidOf(der, a[0], what), params: a[1] };
  };
  const bits = (t) => {
    if (t.tag !== 0x03 || t.end === t.start || der[t.start] > 7) throw bad();
    return der.subarray(t.start, t.end);
  };
  const f = children(der, tbsTlv, what);
  let i = 0;
  if (f[i]?.tag === 0xa0) {
    const v = children(der, f[i], what);
    if (v.length !== 1 || !integerOk(der, v[0])) throw bad();
    i++;
  }
  const [serial, sigAlg, issuer, validity, subject, spkiTlv] = f.slice(i, i + 6);
  // OpenSSL's Name decoder ignores the constructed bit of a Name and its RDNs (tested).
  if (!spkiTlv || !integerOk(der, serial) || (issuer.tag | 0x20) !== 0x30 || (subject.tag | 0x20) !== 0x30 ||
      validity.tag !== 0x30 || spkiTlv.tag !== 0x30)
    throw bad();
  const tbsAlg = algOid(sigAlg);
  const nameKey = (n) => children(der, n, what, true).map((rdn) => toHex(der.subarray(rdn.start, rdn.end))).join("/");
  for (const n of [issuer, subject])
    for (const rdn of children(der, n, what, true)) {
      if ((rdn.tag | 0x20) !== 0x31) throw bad();
      const atvs = children(der, rdn, what, true);
      if (atvs.length === 0) throw bad();
      for (const atv of atvs) {
        if (atv.tag !== 0x30) throw bad();
        const tv = children(der, atv, what);
        if (tv.length !== 2 || !nameValueOk(der, tv[1])) throw bad();
        oidOf(der, tv[0], what);
      }
    }
  const times = children(der, validity, what);
  if (times.length !== 2) throw bad();
  const spkiParts = children(der, spkiTlv, what);
  if (spkiParts.length !== 2) throw bad();
  const keyAlg = algOid(spkiParts[0]);
  bits(spkiParts[1]);
  // As OpenSSL: a duplicate or undecodable extension does not make the certificate unparsable;
  // it reads as absent and marks the certificate invalid, which fails path validation.
  const exts = new Map();
  let invalidExtension;
  // Then, in this order and each at most once: issuerUniqueID [1], subjectUniqueID [2] (both
  // primitive BIT STRINGs), extensions [3].
  const rest = f.slice(i + 6);
  let order = 0;
  for (const t of rest) {
    const rank = { 0x81: 1, 0x82: 2, 0xa3: 3 }[t.tag];
    if (!rank || rank <= order) throw bad();
    order = rank;
  }
  for (const t of rest) {
    if (t.tag !== 0xa3) {
      if (t.end === t.start || der[t.start] > 7) throw bad();
      continue;
    }
    const inner = children(der, t, what);
    if (inner.length !== 1 || inner[0].tag !== 0x30) throw bad();
    for (const e of children(der, inner[0], what)) {
      if (e.tag !== 0x30) throw bad();
      const parts = children(der, e, what);
      const oid = oidOf(der, parts[0] ?? { tag: 0, start: 0, end: 0 }, what);
      let critical = false;
      let k = 1;
      if (parts[k]?.tag === 0x01) {
        if (parts[k].end - parts[k].start !== 1) throw bad();
        critical = der[parts[k].start] !== 0;
        k++;
      }
      // A constructed (BER) OCTET STRING decodes in OpenSSL but its extension does not.
      if (parts.length !== k + 1 || (parts[k].tag !== 0x04 && parts[k].tag !== 0x24)) throw bad();
      if (exts.has(oid)) invalidExtension ??= `duplicate extension ${oid}`;
      exts.set(oid, { critical, value: parts[k].tag === 0x04 ? der.subarray(parts[k].start, parts[k].end) : new Uint8Array() });
    }
  }
  const ext = (oid, type) => {
    const e = exts.get(oid);
    if (!e) return undefined;
    try {
      return { critical: e.critical, value: AsnConvert.parse(e.value, type) };
    } catch {
      invalidExtension ??= `malformed extension ${oid}`;
      return undefined;
    }
  };
  const outerAlg = algOid(algTlv);
  const sigBits = bits(sigTlv);
  let curve;
  if (keyAlg.oid === OID_EC_PUBLIC_KEY && keyAlg.params?.tag === 0x06) {
    try {
      curve = CURVES[oidOf(der, keyAlg.params, what)];
    } catch {
      curve = undefined;
    }
  }
  return {
    der,
    cn: nameCn(der, subject),
    tbsBytes: tbsTlv.raw,
    signatureAlgorithm: outerAlg.oid,
    tbsSignatureAlgorithm: tbsAlg.oid,
    signatureBits: sigBits, // unused-bits byte, then the value
    issuer: nameKey(issuer), // names compare by their RDNs' contents
    subject: nameKey(subject),
    notBeforeS: timeOf(der, times[0], what),
    notAfterS: timeOf(der, times[1], what),
    spki: spkiTlv.raw,
    keyCurve: curve,
    keyAlgorithm: keyAlg.oid,
    extensions: exts,
    basicConstraints: ext(id_ce_basicConstraints, BasicConstraints),
    keyUsage: ext(id_ce_keyUsage, KeyUsage),
    aki: ext(id_ce_authorityKeyIdentifier, AuthorityKeyIdentifier),
    ski: ext(id_ce_subjectKeyIdentifier, SubjectKeyIdentifier),
    get invalidExtension() { return invalidExtension; },
  };
}

function oidText(b) {
  if (b.length === 0) return "";
  const parts = [Math.floor(b[0] / 40), b[0] % 40];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i] & 0x7f);
    if (!(b[i] & 0x80)) { parts.push(v); v = 0; }
  }
  return parts.join(".");
}

export const isCa = (c) => !!c.basicConstraints?.value.cA;
const hasKeyUsage = (c, bit) => !!c.keyUsage && (c.keyUsage.value.toNumber() & bit) !== 0;

function checkSignatureAlgorithm(c, what) {
  if (c.signatureAlgorithm !== OID_ECDSA_SHA384 || c.tbsSignatureAlgorithm !== OID_ECDSA_SHA384)
    throw new X509Error("verification", `certificate chain: ${what} (${c.cn}) is not signed with ecdsa-with-SHA384`);
}

export function checkCaProfile(c, what) {
  const bc = c.basicConstraints;
  if (!bc || !bc.critical || !bc.value.cA)
    throw new X509Error("verification", `certificate chain: ${what} (${c.cn}) lacks critical basicConstraints CA:TRUE`);
  if (!hasKeyUsage(c, KU_KEY_CERT_SIGN))
    throw new X509Error("verification", `certificate chain: ${what} (${c.cn}) lacks keyUsage keyCertSign`);
  checkSignatureAlgorithm(c, what);
}

export function checkLeafProfile(c) {
  if (isCa(c)) throw new X509Error("verification", `certificate chain: leaf certificate (${c.cn}) is a CA`);
  if (!hasKeyUsage(c, KU_DIGITAL_SIGNATURE))
    throw new X509Error("verification", "certificate chain: leaf certificate lacks keyUsage digitalSignature");
  if (c.keyCurve !== "P-384")
    throw new X509Error("verification", `certificate chain: leaf key is ${c.keyCurve ? "EC " + c.keyCurve : "not EC"}, not EC P-384`);
  checkSignatureAlgorithm(c, "leaf certificate");
}

export function checkKnownCriticalExtensions(c, what) {
  if (c.invalidExtension)
    throw new X509Error("verification", `certificate chain: invalid or inconsistent certificate extension (${c.invalidExtension}) at ${what} (${c.cn})`);
  for (const [oid, e] of c.extensions)
    if (e.critical && !KNOWN_CRITICAL.has(oid))
      throw new X509Error("verification", `certificate chain: unhandled critical extension ${oid} at ${what} (${c.cn})`);
}

const iso = (s) => new Date(s * 1000).toISOString().replace(".000Z", "Z");

// Validity with both bounds inclusive, in whole seconds (RFC 5280 §4.1.2.5).
// An unreadable time fails as OpenSSL's comparison does: notBefore reads as "not after the
// check time", notAfter as "before it", and then the expiry message cannot be written.
export function checkValidity(c, atS) {
  if (Number.isNaN(c.notAfterS)) throw new X509Error("format", "certificate: unreadable validity time");
  if (c.notBeforeS > atS)
    throw new X509Error("expired", `certificate not yet valid (${c.cn}): notBefore ${iso(c.notBeforeS)} is after the check time ${iso(atS)}`);
  if (c.notAfterS < atS)
    throw new X509Error("expired", `certificate expired (${c.cn}): notAfter ${iso(c.notAfterS)} is before the check time ${iso(atS)}`);
}

// issuer named `c`'s issuer (name, and key identifiers when both are present), as OpenSSL matches.
export function issuedBy(c, issuer) {
  if (c.issuer !== issuer.subject) return false;
  const aki = c.aki?.value.keyIdentifier;
  const ski = issuer.ski?.value;
  if (aki && ski && !eq(new Uint8Array(aki.buffer), new Uint8Array(ski.buffer))) return false;
  return true;
}

// DER ECDSA-Sig-Value (strict: minimal positive INTEGERs) to r||s of the curve's scalar size.
function derSignatureToRaw(bits, size) {
  if (bits.length < 1 || bits[0] !== 0) return undefined; // unused bits must be 0
  const b = bits.subarray(1);
  try {
    const seq = tlv(b, 0, "signature");
    if (seq.tag !== 0x30 || seq.end !== b.length) return undefined;
    const out = new Uint8Array(2 * size);
    let pos = seq.start;
    for (let k = 0; k < 2; k++) {
      const t = tlv(b, pos, "signature");
      if (t.tag !== 0x02 || t.end > seq.end || t.end === t.start) return undefined;
      let v = b.subarray(t.start, t.end);
      if (v[0] & 0x80) return undefined; // negative
      if (v.length > 1 && v[0] === 0 && !(v[1] & 0x80)) return undefined; // not minimal
      if (v[0] === 0 && v.length > 1) v = v.subarray(1);
      if (v.length > size) return undefined;
      out.set(v, (k + 1) * size - v.length);
      pos = t.end;
    }
    return pos === seq.end ? out : undefined;
  } catch {
    return undefined;
  }
}

export async function importKey(c) {
  if (c.keyAlgorithm !== OID_EC_PUBLIC_KEY || !c.keyCurve) return undefined;
  try {
    return await (await subtle()).importKey("spki", c.spki, { name: "ECDSA", namedCurve: c.keyCurve }, false, ["verify"]);
  } catch {
    return undefined;
  }
}

// Whether c's signature verifies with issuer's key (ECDSA with SHA-384).
export async function signatureVerifies(c, issuer) {
  const key = await importKey(issuer);
  if (!key) return false;
  const raw = derSignatureToRaw(c.signatureBits, SCALAR[issuer.keyCurve]);
  if (!raw) return false;
  return (await subtle()).verify({ name: "ECDSA", hash: "SHA-384" }, key, raw, c.tbsBytes);
}

export function pemToDer(pem) {
  const text = typeof pem === "string" ? pem : new TextDecoder().decode(pem);
  const blocks = [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)];
  if (blocks.length === 0) throw new X509Error("format", "trust anchor: no PEM certificate found");
  if (blocks.length > 1) throw new X509Error("format", "trust anchor: more than one certificate; a verifier trusts exactly one root");
  const b64 = blocks[0][1].replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new X509Error("format", "trust anchor: PEM body is not base64");
  const bin = atob(b64);
  return Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
}
