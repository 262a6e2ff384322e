// Random-access byte sources, so readers (EIF, tar, cpio) stream from a file with pread and
// never hold the whole input in memory, while fuzzers and tests feed them memory buffers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::eif {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly n bytes at offset; throws Error(kFormat) if the range passes the end.
  virtual void read_at(uint64_t offset, uint8_t* out, size_t n) const = 0;
  // A short name for error messages (the path, or "<memory>").
  virtual std::string name() const = 0;

  Bytes read_bytes(uint64_t offset, size_t n) const;
  bool in_bounds(uint64_t offset, uint64_t n) const { return offset <= size() && n <= size() - offset; }
};

// A regular file, opened read-only. Throws Error(kIo) when it cannot be opened.
class FileSource final : public ByteSource {
 public:
  explicit FileSource(const std::string& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  uint64_t size() const override { return size_; }
  void read_at(uint64_t offset, uint8_t* out, size_t n) const override;
  std::string name() const override { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// A view of caller-owned memory (which must outlive the source).
class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(ByteView data) : data_(data) {}
  uint64_t size() const override { return data_.size(); }
  void read_at(uint64_t offset, uint8_t* out, size_t n) const override;
  std::string name() const override { return "<memory>"; }

 private:
  ByteView data_;
};

// The bytes [offset, offset + length) of another source.
class SliceSource final : public ByteSource {
 public:
  SliceSource(std::shared_ptr<const ByteSource> base, uint64_t offset, uint64_t length);
  uint64_t size() const override { return length_; }
  void read_at(uint64_t offset, uint8_t* out, size_t n) const override;
  std::string name() const override { return base_->name(); }

 private:
  std::shared_ptr<const ByteSource> base_;
  uint64_t offset_;
  uint64_t length_;
};

// Calls fn(chunk) over [offset, offset + length) of src in chunks of at most chunk bytes.
template <typename Fn>
void for_each_chunk(const ByteSource& src, uint64_t offset, uint64_t length, Fn&& fn, size_t chunk = 1 << 20);

}  // namespace shield_nitro::eif

#include "shield_nitro/eif/source_inl.h"
