#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/reader.h"

namespace shield_nitro {

std::string hex_encode(ByteView data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(data.size() * 2, '\0');
  for (size_t i = 0; i < data.size(); ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

static int hex_nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Bytes hex_decode(std::string_view hex) {
  if (hex.size() % 2 != 0) throw Error(Errc::kFormat, "hex string has odd length " + std::to_string(hex.size()));
  Bytes out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) throw Error(Errc::kFormat, "invalid hex character at offset " + std::to_string(2 * i + (hi < 0 ? 0 : 1)));
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string base64_encode(ByteView data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(), static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

Bytes base64_decode(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  if (text.size() % 4 != 0) throw Error(Errc::kFormat, "base64 length is not a multiple of 4");
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
              (c == '=' && i + 2 >= text.size());
    if (!ok) throw Error(Errc::kFormat, "invalid base64 character at offset " + std::to_string(i));
  }
  if (text.size() >= 2 && text[text.size() - 2] == '=' && text.back() != '=')
    throw Error(Errc::kFormat, "misplaced base64 padding");
  Bytes out(text.size() / 4 * 3);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) throw Error(Errc::kFormat, "invalid base64");
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = (text[text.size() - 2] == '=') ? 2 : 1;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

bool ct_equal(ByteView a, ByteView b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void put_u16be(Bytes& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void put_u32be(Bytes& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}
void put_u64be(Bytes& out, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}
uint16_t get_u16be(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t get_u32be(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}
uint64_t get_u64be(const uint8_t* p) { return static_cast<uint64_t>(get_u32be(p)) << 32 | get_u32be(p + 4); }

// ---- ByteReader ----
bool ByteReader::take(size_t n, ByteView& out) {
  if (remaining() < n) return false;
  out = data_.subspan(pos_, n);
  pos_ += n;
  return true;
}
bool ByteReader::skip(size_t n) {
  if (remaining() < n) return false;
  pos_ += n;
  return true;
}
bool ByteReader::peek_u8(uint8_t& out) const {
  if (remaining() < 1) return false;
  out = data_[pos_];
  return true;
}
bool ByteReader::u8(uint8_t& out) {
  if (!peek_u8(out)) return false;
  ++pos_;
  return true;
}
template <typename T>
static bool read_int(ByteReader& r, T& out, bool big_endian) {
  ByteView v;
  if (!r.take(sizeof(T), v)) return false;
  T x = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    size_t idx = big_endian ? i : sizeof(T) - 1 - i;
    x = static_cast<T>((x << 8) | v[idx]);
  }
  out = x;
  return true;
}
bool ByteReader::u16be(uint16_t& out) { return read_int(*this, out, true); }
bool ByteReader::u32be(uint32_t& out) { return read_int(*this, out, true); }
bool ByteReader::u64be(uint64_t& out) { return read_int(*this, out, true); }
bool ByteReader::u16le(uint16_t& out) { return read_int(*this, out, false); }
bool ByteReader::u32le(uint32_t& out) { return read_int(*this, out, false); }
bool ByteReader::u64le(uint64_t& out) { return read_int(*this, out, false); }

}  // namespace shield_nitro
