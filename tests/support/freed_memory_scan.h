// Test helper: finds secrets left behind in freed heap memory.
//
// Replaces the global operator new/delete of the test binary with malloc/free and, while a
// FreedMemoryScan is alive, looks through every block freed with operator delete (by any
// thread; malloc_usable_size bytes, the whole block) for a marker before freeing it. A
// std::string or std::vector dropped with a secret still in it is found; memory that never
// goes through operator delete (SecureBytes' own mappings, the stack) is not looked at.
//
//   FreedMemoryScan scan(as_bytes("SECRET-MARKER-01"));
//   ... code under test ...
//   EXPECT_EQ(scan.hits(), 0u);
//
// Include in exactly one source file of a test binary (it defines the global operators).
#pragma once

#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::test_support {

struct FreedMemoryWatch {
  static inline std::atomic<bool> active{false};
  static inline std::atomic<size_t> hits{0};
  static inline uint8_t marker[64];
  static inline size_t marker_size = 0;

  static void check(void* p) {
    if (!p || !active.load(std::memory_order_acquire)) return;
    size_t n = malloc_usable_size(p);
    if (n >= marker_size && memmem(p, n, marker, marker_size)) hits.fetch_add(1, std::memory_order_relaxed);
  }
};

class FreedMemoryScan {
 public:
  // marker: up to 64 bytes; at least 8, so that it does not occur by chance.
  explicit FreedMemoryScan(ByteView marker) {
    FreedMemoryWatch::marker_size = marker.size() < sizeof FreedMemoryWatch::marker ? marker.size() : sizeof FreedMemoryWatch::marker;
    std::memcpy(FreedMemoryWatch::marker, marker.data(), FreedMemoryWatch::marker_size);
    FreedMemoryWatch::hits = 0;
    FreedMemoryWatch::active.store(true, std::memory_order_release);
  }
  ~FreedMemoryScan() { FreedMemoryWatch::active.store(false, std::memory_order_release); }
  FreedMemoryScan(const FreedMemoryScan&) = delete;
  FreedMemoryScan& operator=(const FreedMemoryScan&) = delete;
  // Freed blocks that held the marker so far.
  size_t hits() const { return FreedMemoryWatch::hits.load(); }
};

// Whether freed blocks really pass through the scan in this binary. Under AddressSanitizer its
// runtime's operator delete wins and nothing is seen, so a test expecting no hits would pass
// without looking: such tests skip there (SN_SKIP_UNLESS_FREED_MEMORY_SCANNED, first thing).
inline bool freed_memory_is_scanned() {
  static const bool works = [] {
    const char probe[] = "SN-FREED-MEMORY-PROBE-7c1e0d9a";  // longer than a small-string buffer
    FreedMemoryScan scan(as_bytes(probe));
    delete new std::string(probe);
    return scan.hits() > 0;
  }();
  return works;
}

}  // namespace shield_nitro::test_support

#define SN_SKIP_UNLESS_FREED_MEMORY_SCANNED()                                        \
  if (!::shield_nitro::test_support::freed_memory_is_scanned())                      \
  GTEST_SKIP() << "freed memory is not scanned in this build (the sanitizer runtime " \
                  "replaces operator delete)"

void* operator new(size_t n) {
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept {
  shield_nitro::test_support::FreedMemoryWatch::check(p);
  std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, size_t) noexcept { operator delete(p); }
void operator delete[](void* p, size_t) noexcept { operator delete(p); }
