// Differential test against the C++ verifier: mutations of the real documents (bit flips,
// byte edits, truncations, insertions, and CBOR edits of the envelope, some of which keep the
// document valid) get the same verdict, and the same error code, from both.
import test from "node:test";
import assert from "node:assert/strict";
import { verifyAttestation } from "../src/index.js";
import { head } from "../src/cbor.js";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { manifest, readFixture, haveFixtures, haveCli, cliVerdict, jsVerdict, jsCodeOf, isoAt, cli, startSimulator } from "./helpers.js";

const COUNT = Number(process.env.SN_JS_MUTATIONS ?? 300);

// mulberry32: a seeded generator, so a failure names a reproducible case.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};

// The four items of a genuine definite envelope (84 ...) as raw encodings, by their heads.
function split(doc) {
  const items = [];
  let pos = 1;
  for (let k = 0; k < 4; k++) {
    const start = pos;
    const ib = doc[pos++];
    const info = ib & 0x1f;
    let len = info;
    if (info >= 24) {
      const n = 1 << (info - 24);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + doc[pos++];
    }
    if ((ib >> 5) === 2) pos += len; // byte strings; the unprotected map is a0
    items.push({ start, end: pos, major: ib >> 5, value: doc.subarray(pos - ((ib >> 5) === 2 ? len : 0), pos) });
  }
  return items;
}

// A byte string with a longer head than needed (legal CBOR, not canonical).
function longBstr(b) {
  return concat(Uint8Array.of(0x5a, (b.length >>> 24) & 0xff, (b.length >> 16) & 0xff, (b.length >> 8) & 0xff, b.length & 0xff), b);
}
const bstr = (b) => concat(Uint8Array.from(head(2, b.length)), b);

function envelopeEdit(doc, r) {
  const [p, u, pl, sig] = split(doc);
  const raw = (it) => doc.subarray(it.start, it.end);
  const edits = [
    () => concat(Uint8Array.of(0x9f), doc.subarray(1), Uint8Array.of(0xff)), // indefinite array
    () => concat(Uint8Array.of(0xd2), doc), // tag 18
    () => concat(Uint8Array.of(0xd3), doc), // tag 19
    () => concat(Uint8Array.of(0xd2, 0xd2), doc), // tag 18 twice
    () => concat(doc, Uint8Array.of(0x00)), // trailing byte
    () => concat(Uint8Array.of(0x85), doc.subarray(1), Uint8Array.of(0x40)), // five items
    () => concat(Uint8Array.of(0x84), longBstr(p.value), raw(u), raw(pl), raw(sig)),
    () => concat(Uint8Array.of(0x84), raw(p), raw(u), longBstr(pl.value), raw(sig)),
    () => concat(Uint8Array.of(0x84), raw(p), raw(u), raw(pl), longBstr(sig.value)),
    () => concat(Uint8Array.of(0x84), raw(p), Uint8Array.of(0xbf, 0xff), raw(pl), raw(sig)), // {_ }
    () => concat(Uint8Array.of(0x84), raw(p), Uint8Array.of(0xf6), raw(pl), raw(sig)), // null header
    () => concat(Uint8Array.of(0x84), bstr(Uint8Array.of(0xa1, 0x01, 0x38, 0x22, 0x00)), raw(u), raw(pl), raw(sig)),
    () => concat(Uint8Array.of(0x84), bstr(Uint8Array.of(0xa1, 0x01, 0x39, 0x00, 0x22)), raw(u), raw(pl), raw(sig)),
    () => concat(Uint8Array.of(0x84), raw(p), Uint8Array.of(0xa1, 0x04, 0x40), raw(pl), raw(sig)),
    () => concat(Uint8Array.of(0x84), raw(p), raw(u), raw(pl), bstr(sig.value.subarray(0, 95))),
    () => concat(Uint8Array.of(0x84), raw(p), raw(u), Uint8Array.of(0x5f), bstr(pl.value), Uint8Array.of(0xff), raw(sig)),
    () => { // s -> n - s: the other valid signature (high-S <-> low-S)
      const n = BigInt("0x" + "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973");
      const s = BigInt("0x" + Buffer.from(sig.value.subarray(48)).toString("hex"));
      const flipped = Buffer.from((n - s).toString(16).padStart(96, "0"), "hex");
      return concat(Uint8Array.of(0x84), raw(p), raw(u), raw(pl), bstr(concat(sig.value.subarray(0, 48), flipped)));
    },
  ];
  const i = Math.floor(r() * edits.length);
  return [`envelope edit ${i}`, edits[i]()];
}

function mutate(doc, r) {
  const pick = r();
  const at = (lo, hi) => lo + Math.floor(r() * (hi - lo));
  const out = doc.slice();
  if (pick < 0.25) {
    const i = at(0, doc.length);
    out[i] ^= 1 << at(0, 8);
    return [`bit flip at ${i}`, out];
  }
  if (pick < 0.45) { // the structural bytes: envelope heads, payload map head and first keys, signature
    const [, , pl] = split(doc);
    const regions = [[0, 12], [pl.end - pl.value.length, pl.end - pl.value.length + 120], [doc.length - 100, doc.length]];
    const [lo, hi] = regions[at(0, regions.length)];
    const i = at(lo, hi);
    out[i] = r() < 0.5 ? out[i] ^ (1 << at(0, 8)) : at(0, 256);
    return [`structural byte edit at ${i}`, out];
  }
  if (pick < 0.55) {
    const n = at(0, doc.length);
    return [`truncated to ${n}`, doc.subarray(0, n)];
  }
  if (pick < 0.65) {
    const i = at(0, doc.length);
    return r() < 0.5
      ? [`byte inserted at ${i}`, concat(doc.subarray(0, i), Uint8Array.of(at(0, 256)), doc.subarray(i))]
      : [`byte deleted at ${i}`, concat(doc.subarray(0, i), doc.subarray(i + 1))];
  }
  return envelopeEdit(doc, r);
}

test(`${COUNT} mutated documents: JS verdict == C++ verdict`, { skip: (!haveFixtures || !haveCli) && "no fixtures or CLI" }, async () => {
  const docs = manifest().filter((f) => f.file !== "real/basenv_indefinite_2026-01-03.cbor" || true);
  const r = rng(Number(process.env.SN_JS_SEED ?? 15));
  const tally = { accept: 0, reject: 0 };
  for (let k = 0; k < COUNT; k++) {
    const f = docs[k % docs.length];
    const doc = readFixture(f.file);
    if (doc[0] !== 0x84) continue;
    const [what, bytes] = mutate(doc, r);
    const cpp = cliVerdict(bytes, ["--at", isoAt(f.timestamp_ms), "--allow-debug"]);
    const js = await jsVerdict(verifyAttestation, bytes, { now: f.timestamp_ms, allowDebug: true });
    const name = `#${k} ${f.file}: ${what}`;
    assert.equal(js.ok, cpp.ok, `${name}: JS ${js.ok ? "accepts" : "refuses: " + js.message}; C++ ${cpp.ok ? "accepts" : "refuses: " + cpp.message}`);
    if (!cpp.ok) assert.equal(js.code, jsCodeOf(cpp.code), `${name}: JS ${js.message} / C++ ${cpp.message}`);
    tally[js.ok ? "accept" : "reject"]++;
  }
  // Both kinds occur, so the comparison is not one-sided.
  assert.ok(tally.accept >= 10 && tally.reject >= COUNT / 2, JSON.stringify(tally));
});

// Offsets inside certificates where an earlier version of the JS walker disagreed with
// OpenSSL's d2i_X509 (found by sweeping seeds): every bit of each byte is compared.
const REGRESSIONS = [
  ["real/anjuna_prod_pubkey_2021-03-24.cbor", 1449], // keyUsage value: malformed reads as absent
  ["real/evervault_prod_2022-10-13.cbor", 3781], // an RDN's SET tag, primitive form
  ["real/evervault_prod_2022-10-13.cbor", 2872], // a Name's SEQUENCE tag, primitive form
  ["real/evervault_prod_2022-10-13.cbor", 1307], // the SPKI algorithm OID's length
  ["real/evervault_debug_2022-10-12.cbor", 3282], // an extnValue OCTET STRING tag
  ["real/anjuna_prod_2021-03-17.cbor", 2386], // the curve OID tag (constructed ANY)
  ["real/qos_prod_2022-07-06.cbor", 1385], // the EC point: a key that does not decode
  ["real/anjuna_prod_2023-09-21.cbor", 3267], // the extensions [3] tag
];

test("certificate edits that once disagreed: JS verdict == C++ verdict", { skip: (!haveFixtures || !haveCli) && "no fixtures or CLI" }, async () => {
  const at = Object.fromEntries(manifest().map((f) => [f.file, f.timestamp_ms]));
  for (const [file, offset] of REGRESSIONS) {
    const doc = readFixture(file);
    for (let bit = 0; bit < 8; bit++) {
      const bytes = doc.slice();
      bytes[offset] ^= 1 << bit;
      const cpp = cliVerdict(bytes, ["--at", isoAt(at[file]), "--allow-debug"]);
      const js = await jsVerdict(verifyAttestation, bytes, { now: at[file], allowDebug: true });
      const name = `${file} byte ${offset} bit ${bit}`;
      assert.equal(js.ok, cpp.ok, name);
      if (!cpp.ok) assert.equal(js.code, jsCodeOf(cpp.code), `${name}: JS ${js.message} / C++ ${cpp.message}`);
    }
  }
});

// The simulator's documents: another chain (made by shield-nitro, not AWS), an indefinite
// payload map, nonce and user_data set; verified with --root, untouched and mutated.
test("simulator documents and their mutations: JS verdict == C++ verdict", { skip: !haveCli && "no CLI" }, async (t) => {
  const { sim, root } = await startSimulator(t, "sn-js-sim-", "3c".repeat(48), ["--indefinite"]);
  const r = rng(Number(process.env.SN_JS_SEED ?? 7));
  let accepted = 0;
  for (let k = 0; k < 3; k++) {
    const nonce = "a5".repeat(16 + k);
    const doc = new Uint8Array(execFileSync(cli, ["attest", "request", "--nsm", `sim:${sim}`, "--nonce", nonce,
      "--user-data", "736e2d746c732f31" + "00".repeat(32), "-o", "-"], { maxBuffer: 1 << 20 }));
    const now = Date.now(); // after the request: a leaf the simulator just made is valid from then
    const options = { now, root, nonce: Buffer.from(nonce, "hex"), pcrs: { 0: "3c".repeat(48) } };
    const args = ["--at", isoAt(now), "--root", path.join(sim, "root.pem"), "--nonce", nonce, "--pcr", `0=${"3c".repeat(48)}`];
    const cases = [["original", doc]];
    for (let m = 0; m < 30; m++) cases.push(mutate(doc, r));
    for (const [what, bytes] of cases) {
      const cpp = cliVerdict(bytes, args);
      const js = await jsVerdict(verifyAttestation, bytes, options);
      assert.equal(js.ok, cpp.ok, `sim doc ${k} ${what}: JS ${js.ok ? "accepts" : js.message}; C++ ${cpp.ok ? "accepts" : cpp.message}`);
      if (!cpp.ok) assert.equal(js.code, jsCodeOf(cpp.code), `sim doc ${k} ${what}: JS ${js.message} / C++ ${cpp.message}`);
      accepted += js.ok;
    }
  }
  assert.ok(accepted >= 3, `accepted ${accepted}`);
});
