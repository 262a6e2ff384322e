// Every document of fixtures/nsm gets the same verdict from the JS verifier as from the C++
// `shield-nitro attest verify`, and the classic negatives are refused with the right code.
import test from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { verifyAttestation, AWS_ROOT_G1_PEM, AWS_ROOT_G1_SHA256, fromHex } from "../src/index.js";
import { pemToDer } from "../src/x509.js";
import { manifest, readFixture, haveFixtures, haveCli, cliVerdict, jsVerdict, jsCodeOf, isoAt } from "./helpers.js";

const skip = !haveFixtures && "no ../shared/fixtures/nsm";
const skipCli = (!haveFixtures || !haveCli) && "no fixtures or no built CLI";
const untilMs = (f) => Date.parse(f.chain_valid_until) + 1000; // first instant after the window

test("the embedded AWS root is pinned by its DER SHA-256 and equals the fixture root", { skip }, () => {
  const der = pemToDer(AWS_ROOT_G1_PEM);
  assert.equal(createHash("sha256").update(der).digest("hex"), AWS_ROOT_G1_SHA256);
  assert.equal(AWS_ROOT_G1_SHA256, "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b");
  assert.deepEqual(der, readFixture("root/aws_nitro_enclaves_root_g1.der"));
});

test("every real document verifies at its timestamp and reports the manifest's claims", { skip }, async () => {
  const all = manifest();
  assert.equal(all.length, 11);
  for (const f of all) {
    const c = await verifyAttestation(readFixture(f.file), { now: f.timestamp_ms, allowDebug: true });
    assert.equal(c.moduleId, f.module_id);
    assert.equal(c.timestamp, f.timestamp_ms);
    assert.equal(c.digest, "SHA384");
    assert.equal(Object.keys(c.pcrs).length, f.pcr_count);
    for (const [i, hex] of Object.entries(f.pcrs)) assert.equal(c.pcrs[i], hex, `${f.file} PCR${i}`);
    assert.equal(c.debug, f.debug_mode_pcr0_zero);
    assert.equal(c.cabundle.length, f.cabundle_len);
    for (const [field, len] of [["publicKey", f.public_key_len], ["userData", f.user_data_len], ["nonce", f.nonce_len]])
      assert.equal(len === null ? c[field] : c[field].length, len, `${f.file} ${field}`);
  }
});

test("every fixture gets the C++ CLI's verdict (in the window, after it, debug policy, negatives)", { skip: skipCli }, async () => {
  const cases = [];
  for (const f of manifest()) {
    const doc = readFixture(f.file);
    cases.push([f.file + " at ts", doc, f.timestamp_ms, true]);
    cases.push([f.file + " at ts, debug refused", doc, f.timestamp_ms, false]);
    cases.push([f.file + " after its window", doc, untilMs(f), true]);
    cases.push([f.file + " before its window", doc, Date.parse(f.chain_valid_from) - 1000, true]);
  }
  cases.push(["corrupted upstream", readFixture("negative/basenv_corrupted_as_stored_upstream.cbor"), 1767472867402, true]);
  cases.push(["self-signed not AWS", readFixture("negative/blocky_selfsigned_not_aws.cbor"), 1725719859000, true]);
  let accepted = 0;
  for (const [name, doc, at, allowDebug] of cases) {
    const cpp = cliVerdict(doc, ["--at", isoAt(at), ...(allowDebug ? ["--allow-debug"] : [])]);
    const js = await jsVerdict(verifyAttestation, doc, { now: at, allowDebug });
    assert.equal(js.ok, cpp.ok, `${name}: JS ${js.ok ? "accepts" : js.message}; C++ ${cpp.ok ? "accepts" : cpp.message}`);
    if (!cpp.ok) assert.equal(js.code, jsCodeOf(cpp.code), `${name}: ${js.message} / ${cpp.message}`);
    accepted += js.ok;
  }
  assert.equal(accepted, 11 + 7); // all 11 in the window; the 7 production ones also without allowDebug
});

test("negatives: wrong PCR, wrong nonce, stale, wrong root, tampered signature, expired chain", { skip }, async () => {
  const f = manifest().find((m) => m.file === "real/evervault_prod_2022-10-13.cbor");
  const doc = readFixture(f.file);
  const now = f.timestamp_ms;
  const good = await verifyAttestation(doc, { now, pcrs: { 0: f.pcrs[0], 8: f.pcrs[8] } });
  const nonce = good.nonce;
  assert.equal(nonce.length, 256);
  // Positive controls: every policy below passes with the right value.
  await verifyAttestation(doc, { now, nonce, pcrs: { 0: [f.pcrs[1], f.pcrs[0]] }, maxAgeMs: 60_000 });

  const refused = async (options, code, pattern, bytes = doc) => {
    await assert.rejects(verifyAttestation(bytes, { now, ...options }), (e) => {
      assert.equal(e.name, "AttestationError");
      assert.equal(e.code, code, e.message);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  };
  await refused({ pcrs: { 0: f.pcrs[1] } }, "policy", /^policy: PCR0 [0-9a-f]{96} is not an expected value$/);
  await refused({ pcrs: { 9: "11".repeat(48) } }, "policy", /PCR9 0{96} is not an expected value/);
  const wrongNonce = nonce.slice();
  wrongNonce[255] ^= 1;
  await refused({ nonce: wrongNonce }, "policy", /nonce does not match/);
  await refused({ nonce: wrongNonce.subarray(0, 16) }, "policy", /nonce does not match/);
  await refused({ userData: new Uint8Array(8) }, "policy", /user_data is required but null/);
  await refused({ now: now + 61_000, maxAgeMs: 60_000 }, "policy", /document is 61 s old, max age 60 s/);
  // anjuna 2023: its leaf was valid 9.6 s before the document's timestamp.
  const early = readFixture("real/anjuna_prod_2023-09-21.cbor");
  await verifyAttestation(early, { now: 1695337797673 - 5_000, maxAgeMs: 60_000 });
  await refused({ now: 1695337797673 - 6_000, maxAgeMs: 60_000 }, "policy", /in the future/, early);
  await refused({ now: untilMs(f) }, "verification", /^certificate expired \(/);
  const other = `-----BEGIN CERTIFICATE-----\n${Buffer.from(readFixture("root/aws_nitro_enclaves_root_g1.der")).toString("base64")}\n-----END CERTIFICATE-----\n`;
  await verifyAttestation(doc, { now, root: other }); // the same root given explicitly
  const tampered = doc.slice();
  tampered[tampered.length - 1] ^= 0x01;
  await refused({}, "verification", /^cose: ES384 signature does not verify$/, tampered);
  const debug = readFixture("real/evervault_debug_2022-10-12.cbor");
  await refused({ now: 1665582606081 }, "policy", /debug-mode enclave/, debug);
  await assert.rejects(verifyAttestation(doc, { pcrs: { 0: "zz" } }), TypeError);
  assert.equal(fromHex("0aFF", "x")[1], 255);
});
