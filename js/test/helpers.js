// Shared by the tests: where the fixtures and the C++ CLI are, and the CLI's verdict on a document.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../..");
// ctest sets both; by hand they default to the checkout's layout.
export const fixtures = path.join(process.env.SN_FIXTURES_DIR ?? path.resolve(repo, "../shared/fixtures"), "nsm");
export const cli = process.env.SN_CLI ?? path.join(repo, "build/shield-nitro");
export const haveFixtures = fs.existsSync(path.join(fixtures, "manifest.json"));
export const haveCli = fs.existsSync(cli);

export function manifest() {
  const all = JSON.parse(fs.readFileSync(path.join(fixtures, "manifest.json"), "utf8"));
  return all.filter((f) => f.file.startsWith("real/")); // the genuine documents
}

export function readFixture(rel) {
  return new Uint8Array(fs.readFileSync(path.join(fixtures, rel)));
}

export function tempDir(prefix = "sn-js-") {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// A fresh NSM simulator (`nsm-sim init` with PCR0 = pcr0Hex, then `nsm-sim serve [...serveArgs]`,
// stopped after test t): {dir (a fresh temporary directory), sim (the simulator's, in it), root (its root.pem text)}.
export async function startSimulator(t, prefix, pcr0Hex, serveArgs = []) {
  const dir = tempDir(prefix);
  const sim = path.join(dir, "nsm");
  execFileSync(cli, ["nsm-sim", "init", sim, "--pcr", `0=${pcr0Hex}`], { stdio: "pipe" });
  const serve = spawn(cli, ["nsm-sim", "serve", ...serveArgs, sim], { stdio: "ignore" });
  t.after(() => serve.kill("SIGTERM"));
  for (let i = 0; !fs.existsSync(path.join(sim, "nsm.sock")); i++) {
    if (i >= 200) throw new Error("nsm-sim serve did not create its socket");
    await new Promise((r) => setTimeout(r, 50));
  }
  return { dir, sim, root: fs.readFileSync(path.join(sim, "root.pem"), "utf8") };
}

const scratch = tempDir("sn-js-cli-");
let counter = 0;

// The C++ verifier's verdict: {ok, code ("format" | "verify" | "expired" | "policy"), message}.
export function cliVerdict(doc, args) {
  const file = path.join(scratch, `doc${counter++}.cbor`);
  fs.writeFileSync(file, doc);
  let r = spawnSync(cli, ["attest", "verify", file, "--json", ...args], { encoding: "utf8" });
  // The shared build directory: the CLI may be relinked by a concurrent build for a moment.
  for (let i = 0; i < 60 && r.error && ["EACCES", "ETXTBSY", "ENOENT"].includes(r.error.code); i++) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    r = spawnSync(cli, ["attest", "verify", file, "--json", ...args], { encoding: "utf8" });
  }
  fs.unlinkSync(file);
  if (r.status !== 0 && r.status !== 1) throw new Error(`attest verify exited ${r.status} (signal ${r.signal}, ${r.error}): ${r.stderr}`);
  // Input that is not a COSE_Sign1 at all is refused before --json output starts.
  if (r.status === 1 && r.stdout.trim() === "") return { ok: false, code: "format", message: r.stderr.trim() };
  const out = JSON.parse(r.stdout);
  return out.valid ? { ok: true, claims: out } : { ok: false, ...out.error };
}

// The JS verdict in the same shape; code is the JS one ("format" | "verification" | "policy").
export async function jsVerdict(verify, doc, options) {
  try {
    return { ok: true, claims: await verify(doc, options) };
  } catch (e) {
    if (!e.code) throw e; // a crash, not a verdict
    return { ok: false, code: e.code, message: e.message };
  }
}

// The C++ error code as the JS API names it.
export function jsCodeOf(cppCode, { maxAge = false } = {}) {
  if (cppCode === "expired") return maxAge ? "policy" : "verification";
  return { format: "format", verify: "verification", policy: "policy" }[cppCode] ?? cppCode;
}

export function isoAt(ms) {
  return new Date(ms).toISOString();
}
