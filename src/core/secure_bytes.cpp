#include "shield_nitro/core/secure_bytes.h"

#include <string.h>

#include <cstring>
#include <new>

namespace shield_nitro {

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
  auto* fresh = static_cast<uint8_t*>(::operator new(capacity == 0 ? 1 : capacity));
  if (size_) std::memcpy(fresh, data_, size_);
  if (data_) {
    secure_wipe(data_, capacity_);
    ::operator delete(data_);
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

void SecureBytes::clear() {
  if (data_) {
    secure_wipe(data_, capacity_);
    ::operator delete(data_);
  }
  data_ = nullptr;
  size_ = capacity_ = 0;
}

}  // namespace shield_nitro
