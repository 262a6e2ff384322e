// The verifier runs in browsers: its modules import no Node built-in statically and use no
// Buffer (node:crypto is imported lazily, only where globalThis.crypto is missing: Node 18).
import test from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";

for (const file of ["index.js", "cbor.js", "x509.js", "aws-root.js", "hex.js"]) {
  test(`src/${file} is browser-safe`, () => {
    const src = fs.readFileSync(new URL(`../src/${file}`, import.meta.url), "utf8");
    assert.doesNotMatch(src, /^import .* from "node:/m);
    assert.doesNotMatch(src, /\bBuffer\./);
    assert.doesNotMatch(src, /\bprocess\./);
  });
}
