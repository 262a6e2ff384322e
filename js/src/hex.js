// Lowercase hex of bytes, shared by the verifier's modules (browser-safe: no Buffer).
export function toHex(b) {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}
