#include "window_search.h"

#include <algorithm>
#include <filesystem>

#include "shield_nitro/core/file_io.h"

namespace sn_test {

using namespace shield_nitro;

namespace {

constexpr uint64_t kBase = 0x100000001b3ull;  // odd: multiplication mod 2^64 is invertible

uint64_t power_of_base(size_t n) {
  uint64_t p = 1;
  for (size_t i = 0; i < n; ++i) p *= kBase;
  return p;
}

// Calls fn(offset, hash) for every window of data (mod 2^64 arithmetic wraps by design).
template <typename F>
void each_window(ByteView data, size_t w, F&& fn) {
  if (data.size() < w) return;
  static const uint64_t top = power_of_base(WindowIndex::kWindow - 1);
  uint64_t h = 0;
  for (size_t i = 0; i < w; ++i) h = h * kBase + data[i];
  fn(size_t{0}, h);
  for (size_t i = w; i < data.size(); ++i) {
    h = (h - data[i - w] * top) * kBase + data[i];
    fn(i - w + 1, h);
  }
}

bool low_information(ByteView window) {
  bool seen[256] = {};
  size_t distinct = 0;
  for (uint8_t b : window)
    if (!seen[b]) {
      seen[b] = true;
      if (++distinct >= WindowIndex::kMinDistinct) return false;
    }
  return true;
}

}  // namespace

WindowIndex::WindowIndex(std::vector<Bytes> recordings) : recordings_(std::move(recordings)) {
  for (const auto& r : recordings_) each_window(r, kWindow, [&](size_t, uint64_t h) { hashes_.push_back(h); });
  std::sort(hashes_.begin(), hashes_.end());
}

bool WindowIndex::confirm(ByteView needle) const {
  for (const auto& r : recordings_)
    if (std::search(r.begin(), r.end(), needle.begin(), needle.end()) != r.end()) return true;
  return false;
}

std::optional<size_t> WindowIndex::first_leak(ByteView secret) const {
  if (secret.size() < kWindow) return confirm(secret) ? std::optional<size_t>(0) : std::nullopt;
  std::optional<size_t> found;
  each_window(secret, kWindow, [&](size_t off, uint64_t h) {
    if (found || !std::binary_search(hashes_.begin(), hashes_.end(), h)) return;
    ByteView w = secret.subspan(off, kWindow);
    if (!low_information(w) && confirm(w)) found = off;
  });
  return found;
}

size_t WindowIndex::informative_windows(ByteView secret) {
  size_t n = 0;
  for (size_t off = 0; off + kWindow <= secret.size(); ++off) n += low_information(secret.subspan(off, kWindow)) ? 0 : 1;
  return n;
}

size_t WindowIndex::recorded_bytes() const {
  size_t n = 0;
  for (const auto& r : recordings_) n += r.size();
  return n;
}

std::vector<Bytes> read_recordings(const std::string& dir) {
  std::vector<Bytes> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(read_file(e.path().string()));
  return out;
}

}  // namespace sn_test
