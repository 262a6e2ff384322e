// Byte sources and sinks for the stream container, so multi-GB artifacts flow from a file,
// pipe, socket or std::istream without ever sitting in memory whole.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iosfwd>
#include <span>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::shield {

// Sequential input. read() fills all n bytes unless the input ends first, so a short read
// means end of input. Throws Error(kIo) on failure.
class Source {
 public:
  virtual ~Source() = default;
  virtual size_t read(uint8_t* buf, size_t n) = 0;
};

// Sequential output. Throws Error(kIo) on failure.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(ByteView data) = 0;
};

// Input with a known size that can be read at any offset (random access to chunk N).
class RandomAccessSource {
 public:
  virtual ~RandomAccessSource() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly out.size() bytes at offset; throws Error(kIo/kFormat) if it cannot.
  virtual void read_at(uint64_t offset, std::span<uint8_t> out) const = 0;
};

// Bytes already in memory. The stream functions read it without copying.
class MemorySource final : public Source {
 public:
  explicit MemorySource(ByteView data) : data_(data) {}
  size_t read(uint8_t* buf, size_t n) override;
  // What read() has not returned yet, and a way to skip it without a copy.
  ByteView remaining() const { return data_.subspan(pos_); }
  void consume(size_t n) { pos_ += std::min(n, data_.size() - pos_); }

 private:
  ByteView data_;
  size_t pos_ = 0;
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

class IstreamSource final : public Source {
 public:
  explicit IstreamSource(std::istream& in) : in_(in) {}
  size_t read(uint8_t* buf, size_t n) override;

 private:
  std::istream& in_;
};

// A file or "-" (stdin) through core's FileReader.
class FileSource final : public Source {
 public:
  explicit FileSource(FileReader& reader) : reader_(reader) {}
  size_t read(uint8_t* buf, size_t n) override { return reader_.read(buf, n); }

 private:
  FileReader& reader_;
};

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

class OstreamSink final : public Sink {
 public:
  explicit OstreamSink(std::ostream& out) : out_(out) {}
  void write(ByteView data) override;

 private:
  std::ostream& out_;
};

// Writes through an AtomicFileWriter; the caller commits once everything verified.
class AtomicFileSink final : public Sink {
 public:
  explicit AtomicFileSink(AtomicFileWriter& w) : w_(w) {}
  void write(ByteView data) override { w_.write(data); }

 private:
  AtomicFileWriter& w_;
};

// Discards everything (benchmarks, verification-only runs).
class NullSink final : public Sink {
 public:
  void write(ByteView) override {}
};

class MemoryRandomSource final : public RandomAccessSource {
 public:
  explicit MemoryRandomSource(ByteView data) : data_(data) {}
  uint64_t size() const override { return data_.size(); }
  void read_at(uint64_t offset, std::span<uint8_t> out) const override;

 private:
  ByteView data_;
};

// A regular file read with pread(2); safe to share between threads.
class FileRandomSource final : public RandomAccessSource {
 public:
  explicit FileRandomSource(const std::string& path);
  ~FileRandomSource() override;
  FileRandomSource(const FileRandomSource&) = delete;
  FileRandomSource& operator=(const FileRandomSource&) = delete;
  uint64_t size() const override { return size_; }
  void read_at(uint64_t offset, std::span<uint8_t> out) const override;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace shield_nitro::shield
