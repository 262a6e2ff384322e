// A strict decoder for the CBOR subset of attestation documents (attestation.md §3), the same
// rules as the C++ cbor::decode with Limits::strict(). Why not cbor-x or cbor: their decoders
// accept duplicate map keys (last one wins), indefinite strings, floats, undefined and any tag,
// and report no offsets, while a verifier must refuse exactly what the C++ verifier refuses
// (tests/js compare verdicts on mutated documents). The subset is small enough to decode here.
//
// Values: {major: 0, value: bigint} unsigned, {major: 1, value: bigint} negative (raw argument:
// the number is -1 - value), {major: 2, bytes}, {major: 3, text}, {major: 4, items, indefinite},
// {major: 5, entries: [[key, value]...], indefinite}, {major: 6, tag: bigint, item},
// {major: 7, simple: "false" | "true" | "null"}.

import { toHex } from "./hex.js";

export class CborError extends Error {}

export const STRICT = Object.freeze({
  maxDepth: 4,
  maxItems: 64,
  maxString: 16384 + 1024,
  allowTags: true,
});

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function fail(why, offset) {
  throw new CborError(`cbor: ${why} at offset ${offset}`);
}

class Decoder {
  constructor(bytes, limits) {
    this.b = bytes;
    this.pos = 0;
    this.limits = limits;
  }

  u8(at) {
    if (this.pos >= this.b.length) fail("unexpected end of input", at);
    return this.b[this.pos++];
  }

  argument(info, at) {
    if (info < 24) return BigInt(info);
    const n = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
    if (n === undefined) fail(`reserved additional information ${info}`, at);
    if (this.pos + n > this.b.length) fail("truncated argument", at);
    let v = 0n;
    for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(this.b[this.pos++]);
    return v;
  }

  string(len, at) {
    if (len > BigInt(this.limits.maxString)) fail(`string of ${len} bytes exceeds the limit`, at);
    const n = Number(len);
    if (this.pos + n > this.b.length) fail("string runs past the end of input", at);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  checkCount(n, at) {
    if (n > BigInt(this.limits.maxItems)) fail(`container of ${n} items exceeds the limit`, at);
  }

  atBreak() {
    if (this.pos >= this.b.length) fail("indefinite-length item is not terminated", this.pos);
    if (this.b[this.pos] !== 0xff) return false;
    this.pos++;
    return true;
  }

  item(depth) {
    if (depth > this.limits.maxDepth) fail(`nesting deeper than ${this.limits.maxDepth}`, this.pos);
    const at = this.pos;
    const ib = this.u8(at);
    const major = ib >> 5;
    const info = ib & 0x1f;
    if (major === 7) return this.simple(info, at);
    if (info === 31) {
      if (major === 2 || major === 3) fail("indefinite-length strings are not allowed", at);
      if (major === 4 || major === 5) return this.container(major, 0n, true, depth, at);
      fail("indefinite length on a major type that has none", at);
    }
    const arg = this.argument(info, at);
    switch (major) {
      case 0:
      case 1:
        return { major, value: arg };
      case 2:
        return { major, bytes: this.string(arg, at) };
      case 3: {
        const raw = this.string(arg, at);
        let text;
        try {
          text = utf8.decode(raw);
        } catch {
          fail("text string is not valid UTF-8", at);
        }
        return { major, text };
      }
      case 4:
      case 5:
        return this.container(major, arg, false, depth, at);
      default:
        if (!this.limits.allowTags) fail(`tag ${arg} is not allowed`, at);
        return { major, tag: arg, item: this.item(depth + 1) };
    }
  }

  simple(info, at) {
    switch (info) {
      case 20: return { major: 7, simple: "false" };
      case 21: return { major: 7, simple: "true" };
      case 22: return { major: 7, simple: "null" };
      case 23: fail("undefined is not allowed", at);
      // falls through (fail throws)
      case 25: case 26: case 27: fail("floating-point values are not allowed", at);
      // falls through
      case 31: fail("unexpected break", at);
      // falls through
      default: fail(`unsupported simple value ${info}`, at);
    }
  }

  container(major, count, indefinite, depth, at) {
    this.checkCount(count, at);
    const out = [];
    const seen = new Set();
    for (let i = 0n; indefinite ? !this.atBreak() : i < count; i++) {
      this.checkCount(i + 1n, at);
      if (major === 4) {
        out.push(this.item(depth + 1));
        continue;
      }
      const keyAt = this.pos;
      const k = this.item(depth + 1);
      // Keys are duplicates when their encodings (shortest heads) are equal, as in C++.
      const id = keyId(k);
      if (seen.has(id)) fail("duplicate map key", keyAt);
      seen.add(id);
      out.push([k, this.item(depth + 1)]);
    }
    return major === 4 ? { major, items: out, indefinite } : { major, entries: out, indefinite };
  }
}

function keyId(v) {
  switch (v.major) {
    case 0: case 1: return `${v.major}:${v.value}`;
    case 2: return `2:${toHex(v.bytes)}`;
    case 3: return `3:${JSON.stringify(v.text)}`;
    case 4: return `4${v.indefinite ? "i" : "d"}[${v.items.map(keyId).join(",")}]`;
    case 5: return `5${v.indefinite ? "i" : "d"}{${v.entries.map(([k, x]) => keyId(k) + "=" + keyId(x)).join(",")}}`;
    case 6: return `6:${v.tag}(${keyId(v.item)})`;
    default: return `7:${v.simple}`;
  }
}

// Decodes exactly one item; trailing bytes are an error.
export function decode(bytes, limits = STRICT) {
  const d = new Decoder(bytes, limits);
  const v = d.item(0);
  if (d.pos !== bytes.length) fail(`${bytes.length - d.pos} trailing bytes`, d.pos);
  return v;
}

export function typeName(v) {
  return ["unsigned integer", "negative integer", "byte string", "text string", "array", "map", "tag", "simple value"][v.major] +
    (v.major === 7 ? ` (${v.simple})` : "");
}

// The first value of text key `key` in a map value, or undefined.
export function find(map, key) {
  for (const [k, v] of map.entries) if (k.major === 3 && k.text === key) return v;
  return undefined;
}

// Definite-length head of major type `major` with argument n, shortest form.
export function head(major, n) {
  const m = major << 5;
  if (n < 24) return [m | n];
  if (n < 0x100) return [m | 24, n];
  if (n < 0x10000) return [m | 25, n >> 8, n & 0xff];
  return [m | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}
