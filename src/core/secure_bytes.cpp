#include "shield_nitro/core/secure_bytes.h"

#include <openssl/crypto.h>

#include <cstring>
#include <new>

namespace shield_nitro {

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
    OPENSSL_cleanse(data_, capacity_);
    ::operator delete(data_);
  }
  data_ = fresh;
  capacity_ = capacity;
}

void SecureBytes::resize(size_t size) {
  if (size > capacity_) reserve_exact(size);
  if (size > size_) std::memset(data_ + size_, 0, size - size_);
  else if (size < size_) OPENSSL_cleanse(data_ + size, size_ - size);
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
    OPENSSL_cleanse(data_, capacity_);
    ::operator delete(data_);
  }
  data_ = nullptr;
  size_ = capacity_ = 0;
}

}  // namespace shield_nitro
