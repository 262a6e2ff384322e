#include "shield_nitro/core/secure_bytes.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>

namespace shield_nitro {
namespace {

// Buffers from this size on (multi-MiB plaintext artifacts) get their own mapping, aligned to
// and advised for 2 MiB transparent huge pages: first-touching 1 GiB in 4 KiB pages costs
// about 2.5x more (one fault per page) than in huge pages on the machines we measured
// (docs/performance.md). Smaller buffers stay on the heap.
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kMappedFrom = size_t{4} << 20;

size_t mapped_length(size_t capacity) { return (capacity + kHugePage - 1) / kHugePage * kHugePage; }

// Small buffers come from pages advised MADV_DONTDUMP too: heap memory cannot be excluded from
// core dumps per allocation, so they are carved from 4 MiB slabs in power-of-two size classes
// and recycled through per-class free lists (never returned to the system).
class DontDumpPool {
 public:
  uint8_t* allocate(size_t n) {
    const int cls = class_of(n);
    const size_t size = size_t{kMinBlock} << cls;
    std::lock_guard<std::mutex> lock(mu_);
    if (Block* b = free_[cls]) {
      free_[cls] = b->next;
      return reinterpret_cast<uint8_t*>(b);
    }
    if (left_ < size) {
      void* p = ::mmap(nullptr, kSlab, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      ::madvise(p, kSlab, MADV_DONTDUMP);
      // The rest of the old slab is not lost: it is split into free blocks of the classes it fits.
      donate(cur_, left_);
      cur_ = static_cast<uint8_t*>(p);
      left_ = kSlab;
    }
    uint8_t* out = cur_;
    cur_ += size;
    left_ -= size;
    return out;
  }

  void release(uint8_t* p, size_t n) {
    const int cls = class_of(n);
    std::lock_guard<std::mutex> lock(mu_);
    auto* b = reinterpret_cast<Block*>(p);
    b->next = free_[cls];
    free_[cls] = b;
  }

  static constexpr size_t kSlab = kMappedFrom;

 private:
  struct Block {
    Block* next;
  };
  static constexpr size_t kMinBlock = 64;
  static constexpr int kClasses = 17;  // 64 B .. 4 MiB

  static int class_of(size_t n) {
    int cls = 0;
    while ((size_t{kMinBlock} << cls) < n) ++cls;
    return cls;
  }

  void donate(uint8_t* p, size_t left) {
    for (int cls = kClasses - 1; cls >= 0; --cls) {
      const size_t size = size_t{kMinBlock} << cls;
      while (left >= size) {
        auto* b = reinterpret_cast<Block*>(p);
        b->next = free_[cls];
        free_[cls] = b;
        p += size;
        left -= size;
      }
    }
  }

  std::mutex mu_;
  Block* free_[kClasses] = {};
  uint8_t* cur_ = nullptr;
  size_t left_ = 0;
};

DontDumpPool& small_pool() {
  static DontDumpPool* pool = new DontDumpPool();  // never destroyed: buffers may outlive statics
  return *pool;
}

// Under AddressSanitizer small buffers stay on the heap, where it can see overflows, uses after
// free and leaks; the sanitizer build is never a product build.
#if defined(__SANITIZE_ADDRESS__)
#define SN_SMALL_FROM_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SN_SMALL_FROM_HEAP 1
#endif
#endif

uint8_t* allocate(size_t capacity) {
#ifdef SN_SMALL_FROM_HEAP
  if (capacity < kMappedFrom) return static_cast<uint8_t*>(::operator new(capacity == 0 ? 1 : capacity));
#else
  if (capacity < kMappedFrom) return small_pool().allocate(capacity == 0 ? 1 : capacity);
#endif
  const size_t len = mapped_length(capacity);
  void* p = ::mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  // Trim the slack so the buffer starts on a huge-page boundary.
  auto base = reinterpret_cast<uintptr_t>(p);
  uintptr_t aligned = (base + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
  if (aligned > base) ::munmap(p, aligned - base);
  if (size_t tail = base + kHugePage - aligned) ::munmap(reinterpret_cast<void*>(aligned + len), tail);
  auto* data = reinterpret_cast<uint8_t*>(aligned);
  ::madvise(data, len, MADV_HUGEPAGE);   // a hint: without THP the buffer still works
  ::madvise(data, len, MADV_DONTDUMP);   // secrets stay out of core dumps
  return data;
}

// The caller wiped the bytes already.
void release(uint8_t* data, size_t capacity) {
#ifdef SN_SMALL_FROM_HEAP
  if (capacity < kMappedFrom) ::operator delete(data);
#else
  if (capacity < kMappedFrom) small_pool().release(data, capacity == 0 ? 1 : capacity);
#endif
  else ::munmap(data, mapped_length(capacity));
}

}  // namespace

void secure_wipe(void* p, size_t n) {
  if (p && n) explicit_bzero(p, n);
}

SecureBytes::SecureBytes(size_t size) { resize(size); }
SecureBytes::SecureBytes(ByteView copy_from) { append(copy_from); }
SecureBytes::~SecureBytes() { clear(); }

SecureBytes::SecureBytes(SecureBytes&& o) noexcept : data_(o.data_), size_(o.size_), capacity_(o.capacity_) {
  o.data_ = nullptr;
  o.size_ = o.capacity_ = 0;
}

SecureBytes& SecureBytes::operator=(SecureBytes&& o) noexcept {
  if (this != &o) {
    clear();
    data_ = o.data_;
    size_ = o.size_;
    capacity_ = o.capacity_;
    o.data_ = nullptr;
    o.size_ = o.capacity_ = 0;
  }
  return *this;
}

void SecureBytes::reserve_exact(size_t capacity) {
  uint8_t* fresh = allocate(capacity);
  if (size_) std::memcpy(fresh, data_, size_);
  if (data_) {
    secure_wipe(data_, size_);  // [size_, capacity_) never holds data: see clear()
    release(data_, capacity_);
  }
  data_ = fresh;
  capacity_ = capacity;
}

void SecureBytes::resize(size_t size) {
  const size_t old = size_;
  resize_for_overwrite(size);
  if (size > old) std::memset(data_ + old, 0, size - old);
}

void SecureBytes::resize_for_overwrite(size_t size) {
  if (size > capacity_) reserve_exact(size);
  if (size < size_) secure_wipe(data_ + size, size_ - size);
  size_ = size;
}

void SecureBytes::append(ByteView more) {
  if (more.empty()) return;
  if (size_ + more.size() > capacity_) reserve_exact(std::max(size_ + more.size(), capacity_ * 2));
  std::memcpy(data_ + size_, more.data(), more.size());
  size_ += more.size();
}

bool SecureBytes::prefault(size_t offset, size_t len) {
#ifdef MADV_POPULATE_WRITE
  if (offset >= size_ || len == 0) return true;
  len = std::min(len, size_ - offset);
  // madvise wants a page-aligned start; the page holding `offset` is part of the buffer's
  // allocation (heap or mapping) either way, and populating changes no byte.
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  auto start = reinterpret_cast<uintptr_t>(data_ + offset);
  auto aligned = start & ~(page - 1);
  return ::madvise(reinterpret_cast<void*>(aligned), len + (start - aligned), MADV_POPULATE_WRITE) == 0;
#else
  (void)offset;
  (void)len;
  return false;
#endif
}

// Only [0, size_) can hold data: shrinking wipes what it cuts off, and growth either zero-fills
// or is overwritten by the caller. So the bytes beyond size_ need no wipe, and a large mapped
// buffer's untouched pages are not faulted in just to be zeroed.
void SecureBytes::clear() {
  if (data_) {
    secure_wipe(data_, size_);
    release(data_, capacity_);
  }
  data_ = nullptr;
  size_ = capacity_ = 0;
}

}  // namespace shield_nitro
