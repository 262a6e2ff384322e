// Byte sources and sinks, the one family for every reader and writer of large inputs: the stream
// container pulls from a Source and pushes to a Sink, so multi-GB artifacts flow from a file, pipe
// or socket without sitting in memory whole; the EIF, tar, cpio and ELF readers and the stream
// container's random access read a RandomAccessSource (a file read with pread, or memory), so
// they never hold the whole input either. FileReader (file_io.h) is a Source and
// AtomicFileWriter a Sink.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"
#include "shield_nitro/core/unique_fd.h"

namespace shield_nitro {

// Sequential input. read() fills all n bytes unless the input ends first, so a short read
// means end of input. Throws Error(kIo) on failure.
class Source {
 public:
  virtual ~Source() = default;
  // Up to n bytes into buf; fewer only at the end of input.
  virtual size_t read(uint8_t* buf, size_t n) = 0;
};

// Sequential output. Throws Error(kIo) on failure.
class Sink {
 public:
  virtual ~Sink() = default;
  // Writes all of data (copied: the caller keeps it).
  virtual void write(ByteView data) = 0;
};

// Input with a known size that can be read at any offset; const reads are safe to share
// between threads.
class RandomAccessSource {
 public:
  virtual ~RandomAccessSource() = default;
  // Total bytes; fixed for the source's life.
  virtual uint64_t size() const = 0;
  // Reads exactly n bytes at offset; throws Error(kFormat) if the range passes the end.
  virtual void read_at(uint64_t offset, uint8_t* out, size_t n) const = 0;
  // A short name for error messages (the path, or "<memory>").
  virtual std::string name() const = 0;

  // read_at into a new buffer; same errors.
  Bytes read_bytes(uint64_t offset, size_t n) const;
  // Whether [offset, offset + n) lies inside the input (overflow-safe).
  bool in_bounds(uint64_t offset, uint64_t n) const { return offset <= size() && n <= size() - offset; }
};

// Caller-owned memory (which must outlive the source), read in order or at any offset. The
// stream functions read it without copying.
class MemorySource final : public Source, public RandomAccessSource {
 public:
  explicit MemorySource(ByteView data) : data_(data) {}
  size_t read(uint8_t* buf, size_t n) override;
  // What read() has not returned yet, and a way to skip it without a copy.
  ByteView remaining() const { return data_.subspan(pos_); }
  void consume(size_t n) { pos_ += std::min(n, data_.size() - pos_); }

  uint64_t size() const override { return data_.size(); }
  void read_at(uint64_t offset, uint8_t* out, size_t n) const override;
  std::string name() const override { return "<memory>"; }

 private:
  ByteView data_;
  size_t pos_ = 0;
};

// A regular file, opened read-only and read with pread(2). Throws Error(kIo) when it cannot be
// opened or is not a regular file (a pipe has no random access: use FileReader).
class FileSource final : public RandomAccessSource {
 public:
  explicit FileSource(const std::string& path);
  uint64_t size() const override { return size_; }
  void read_at(uint64_t offset, uint8_t* out, size_t n) const override;
  std::string name() const override { return path_; }

 private:
  std::string path_;
  UniqueFd fd_;
  uint64_t size_ = 0;
};

// The bytes [offset, offset + length) of another source (a member of an archive).
class SliceSource final : public RandomAccessSource {
 public:
  SliceSource(std::shared_ptr<const RandomAccessSource> base, uint64_t offset, uint64_t length);
  uint64_t size() const override { return length_; }
  void read_at(uint64_t offset, uint8_t* out, size_t n) const override;
  std::string name() const override { return base_->name(); }

 private:
  std::shared_ptr<const RandomAccessSource> base_;
  uint64_t offset_;
  uint64_t length_;
};

// Replays prefix (bytes already consumed, e.g. to detect the format), then rest.
class PrefixedSource final : public Source {
 public:
  PrefixedSource(Bytes prefix, Source& rest) : prefix_(std::move(prefix)), rest_(rest) {}
  size_t read(uint8_t* buf, size_t n) override;

 private:
  Bytes prefix_;
  size_t pos_ = 0;
  Source& rest_;
};

// Reads a caller-owned std::istream (which must outlive it); Error(kIo) when the stream fails.
class IstreamSource final : public Source {
 public:
  explicit IstreamSource(std::istream& in) : in_(in) {}
  size_t read(uint8_t* buf, size_t n) override;

 private:
  std::istream& in_;
};

// Appends to a caller-owned Bytes (not for secrets: SecureSink is).
class BytesSink final : public Sink {
 public:
  explicit BytesSink(Bytes& out) : out_(out) {}
  void write(ByteView data) override { out_.insert(out_.end(), data.begin(), data.end()); }

 private:
  Bytes& out_;
};

// Collects plaintext in zeroized memory.
class SecureSink final : public Sink {
 public:
  explicit SecureSink(SecureBytes& out) : out_(out) {}
  void write(ByteView data) override { out_.append(data); }

 private:
  SecureBytes& out_;
};

// Writes to a caller-owned std::ostream; Error(kIo) when the stream fails.
class OstreamSink final : public Sink {
 public:
  explicit OstreamSink(std::ostream& out) : out_(out) {}
  void write(ByteView data) override;

 private:
  std::ostream& out_;
};

// Discards everything (benchmarks, verification-only runs).
class NullSink final : public Sink {
 public:
  void write(ByteView) override {}
};

// Calls fn(chunk) over [offset, offset + length) of src in chunks of at most chunk bytes.
template <typename Fn>
void for_each_chunk(const RandomAccessSource& src, uint64_t offset, uint64_t length, Fn&& fn, size_t chunk = 1 << 20) {
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(chunk, std::max<uint64_t>(length, 1))));
  while (length > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(length, buf.size()));
    src.read_at(offset, buf.data(), n);
    fn(ByteView(buf.data(), n));
    offset += n;
    length -= n;
  }
}

}  // namespace shield_nitro
