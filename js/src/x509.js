// X.509 parsing and checks for the attestation chain, with @peculiar/asn1-x509 (pure JS, runs
// in browsers) for the fields and a small DER walker for what must be exact: the certificate's
// outer structure (no trailing bytes), the TBS bytes as signed, and the ECDSA signature value.
// Signatures are verified with WebCrypto.
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  Certificate,
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

export const OID_ECDSA_SHA384 = "1.2.840.10045.4.3.3";
const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
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

// One DER TLV at `pos`: {tag, start (of the value), end}. Lengths must be definite and minimal.
export function tlv(b, pos, what) {
  const bad = () => { throw new X509Error("format", `${what}: not a DER X.509 certificate`); };
  if (pos + 2 > b.length) bad();
  const tag = b[pos];
  if ((tag & 0x1f) === 0x1f) bad();
  let len = b[pos + 1];
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || p + n > b.length || b[p] === 0) bad();
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p++];
    if (len < 0x80) bad();
  }
  if (p + len > b.length) bad();
  return { tag, start: p, end: p + len };
}

function commonName(name) {
  for (const rdn of name) for (const atv of rdn) if (atv.type === "2.5.4.3") return atv.value.toString();
  return "?";
}

const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// Parses a DER certificate. Throws X509Error("format") when it is not one.
export function parseCertificate(der, what) {
  if (der.length === 0) throw new X509Error("format", `${what}: empty certificate`);
  const outer = tlv(der, 0, what);
  if (outer.tag !== 0x30) throw new X509Error("format", `${what}: not a DER X.509 certificate`);
  if (outer.end !== der.length) throw new X509Error("format", `${what}: trailing bytes after the certificate`);
  const tbsTlv = tlv(der, outer.start, what);
  const algTlv = tlv(der, tbsTlv.end, what);
  const sigTlv = tlv(der, algTlv.end, what);
  if (tbsTlv.tag !== 0x30 || algTlv.tag !== 0x30 || sigTlv.tag !== 0x03 || sigTlv.end !== outer.end)
    throw new X509Error("format", `${what}: not a DER X.509 certificate`);
  let cert;
  try {
    cert = AsnConvert.parse(der, Certificate);
  } catch {
    throw new X509Error("format", `${what}: not a DER X.509 certificate`);
  }
  const tbs = cert.tbsCertificate;
  const exts = new Map();
  for (const e of tbs.extensions ?? []) {
    if (exts.has(e.extnID)) throw new X509Error("format", `${what}: duplicate extension ${e.extnID}`);
    exts.set(e.extnID, e);
  }
  const ext = (oid, type) => {
    const e = exts.get(oid);
    if (!e) return undefined;
    try {
      return { critical: !!e.critical, value: AsnConvert.parse(e.extnValue.buffer, type) };
    } catch {
      throw new X509Error("format", `${what}: malformed extension ${oid}`);
    }
  };
  const spki = tbs.subjectPublicKeyInfo;
  const cn = commonName(tbs.subject);
  const sigBits = der.subarray(sigTlv.start, sigTlv.end);
  return {
    der,
    cn,
    tbsBytes: der.subarray(outer.start, tbsTlv.end),
    signatureAlgorithm: cert.signatureAlgorithm.algorithm,
    tbsSignatureAlgorithm: tbs.signature.algorithm,
    signatureBits: sigBits, // unused-bits byte, then the value
    issuer: new Uint8Array(AsnConvert.serialize(tbs.issuer)),
    subject: new Uint8Array(AsnConvert.serialize(tbs.subject)),
    notBeforeS: Math.floor(tbs.validity.notBefore.getTime().getTime() / 1000),
    notAfterS: Math.floor(tbs.validity.notAfter.getTime().getTime() / 1000),
    spki: new Uint8Array(AsnConvert.serialize(spki)),
    keyCurve: spki.algorithm.algorithm === OID_EC_PUBLIC_KEY ? curveOf(spki, what) : undefined,
    keyAlgorithm: spki.algorithm.algorithm,
    extensions: exts,
    basicConstraints: ext(id_ce_basicConstraints, BasicConstraints),
    keyUsage: ext(id_ce_keyUsage, KeyUsage),
    aki: ext(id_ce_authorityKeyIdentifier, AuthorityKeyIdentifier),
    ski: ext(id_ce_subjectKeyIdentifier, SubjectKeyIdentifier),
  };
}

// The named curve of an EC SubjectPublicKeyInfo, or undefined (explicit parameters, unknown).
function curveOf(spki, what) {
  const p = spki.algorithm.parameters ? new Uint8Array(spki.algorithm.parameters) : new Uint8Array();
  if (p.length < 2 || p[0] !== 0x06) return undefined;
  const t = tlv(p, 0, what);
  if (t.end !== p.length) return undefined;
  return CURVES[oidText(p.subarray(t.start, t.end))];
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
  for (const [oid, e] of c.extensions)
    if (e.critical && !KNOWN_CRITICAL.has(oid))
      throw new X509Error("verification", `certificate chain: unhandled critical extension ${oid} at ${what} (${c.cn})`);
}

const iso = (s) => new Date(s * 1000).toISOString().replace(".000Z", "Z");

// Validity with both bounds inclusive, in whole seconds (RFC 5280 §4.1.2.5).
export function checkValidity(c, atS) {
  if (c.notBeforeS > atS)
    throw new X509Error("expired", `certificate not yet valid (${c.cn}): notBefore ${iso(c.notBeforeS)} is after the check time ${iso(atS)}`);
  if (c.notAfterS < atS)
    throw new X509Error("expired", `certificate expired (${c.cn}): notAfter ${iso(c.notAfterS)} is before the check time ${iso(atS)}`);
}

// issuer named `c`'s issuer (name, and key identifiers when both are present), as OpenSSL matches.
export function issuedBy(c, issuer) {
  if (!eq(c.issuer, issuer.subject)) return false;
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
