// core/byte_io.h and core/unique_fd.h: the one source/sink family and the one fd owner.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <sstream>

#include "shield_nitro/core/byte_io.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/unique_fd.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"

using namespace shield_nitro;
using test_support::code_of;
using test_support::message_of;

namespace {

Bytes drain(Source& in, size_t step) {
  Bytes out, buf(step);
  for (size_t n; (n = in.read(buf.data(), buf.size())) > 0;) out.insert(out.end(), buf.begin(), buf.begin() + n);
  return out;
}

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

}  // namespace

TEST(ByteIo, MemorySourceIsSequentialAndRandomAccess) {
  Bytes data = {1, 2, 3, 4, 5, 6, 7};
  MemorySource m(data);
  EXPECT_EQ(m.read_bytes(2, 3), (Bytes{3, 4, 5}));
  m.consume(1);
  EXPECT_EQ(m.remaining().size(), 6u);
  EXPECT_EQ(drain(m, 4), (Bytes{2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(m.read_bytes(0, 7), data);  // random access is independent of the read position
  EXPECT_EQ(code_of([&] { m.read_bytes(5, 3); }), Errc::kFormat);
  EXPECT_EQ(code_of([&] { m.read_bytes(UINT64_MAX, 1); }), Errc::kFormat);
}

TEST(ByteIo, FileSourceReadsAtOffsetsAndRefusesWhatItCannot) {
  test_support::TempDir dir;
  write_file_atomic(dir / "f", Bytes{10, 11, 12, 13, 14});
  FileSource f(dir / "f");
  EXPECT_EQ(f.size(), 5u);
  EXPECT_EQ(f.name(), dir / "f");
  EXPECT_EQ(f.read_bytes(1, 3), (Bytes{11, 12, 13}));
  EXPECT_NE(message_of([&] { f.read_bytes(3, 3); }).find(dir / "f"), std::string::npos);
  EXPECT_EQ(code_of([&] { f.read_bytes(3, 3); }), Errc::kFormat);
  EXPECT_EQ(code_of([&] { FileSource missing(dir / "missing"); }), Errc::kIo);
  EXPECT_EQ(code_of([&] { FileSource folder(dir.path()); }), Errc::kIo);  // no random access to a folder
}

TEST(ByteIo, SliceSourceStaysInsideItsMember) {
  Bytes data = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto base = std::make_shared<MemorySource>(data);
  SliceSource s(base, 2, 5);
  EXPECT_EQ(s.size(), 5u);
  EXPECT_EQ(s.read_bytes(0, 5), (Bytes{2, 3, 4, 5, 6}));
  EXPECT_EQ(code_of([&] { s.read_bytes(3, 3); }), Errc::kFormat);
  EXPECT_EQ(code_of([&] { SliceSource past(base, 8, 3); }), Errc::kFormat);
}

TEST(ByteIo, ForEachChunkCoversTheRangeInBoundedChunks) {
  Bytes data(1000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i);
  MemorySource m(data);
  Bytes seen;
  size_t largest = 0;
  for_each_chunk(m, 100, 777, [&](ByteView c) {
    largest = std::max(largest, c.size());
    seen.insert(seen.end(), c.begin(), c.end());
  }, 64);
  EXPECT_EQ(seen, Bytes(data.begin() + 100, data.begin() + 877));
  EXPECT_EQ(largest, 64u);
}

TEST(ByteIo, FileReaderIsASourceAndTheWriterASink) {
  test_support::TempDir dir;
  {
    AtomicFileWriter w(dir / "out");
    Sink& sink = w;
    sink.write(as_bytes("hello "));
    sink.write(as_bytes("world"));
    w.commit();
  }
  FileReader r(dir / "out");
  Bytes head = {'>', ' '};
  PrefixedSource p(head, r);
  EXPECT_EQ(to_string(drain(p, 3)), "> hello world");
}

TEST(ByteIo, StreamAndCollectingSinks) {
  std::istringstream in("abcdef");
  IstreamSource src(in);
  Bytes b;
  BytesSink bs(b);
  bs.write(drain(src, 4));
  EXPECT_EQ(to_string(b), "abcdef");
  SecureBytes s;
  SecureSink ss(s);
  ss.write(as_bytes("k1"));
  EXPECT_EQ(to_string(to_bytes(s.view())), "k1");
  std::ostringstream out;
  OstreamSink os(out);
  os.write(as_bytes("xy"));
  EXPECT_EQ(out.str(), "xy");
}

TEST(UniqueFd, ClosesOnceAndMovesOwnership) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    UniqueFd a(raw);
    UniqueFd b(std::move(a));
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.get(), raw);
    UniqueFd c;
    c = std::move(b);
    EXPECT_TRUE(fd_open(raw));
  }
  EXPECT_FALSE(fd_open(raw));  // closed when the last owner went

  UniqueFd d(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int kept = d.release();
  EXPECT_FALSE(d.valid());
  EXPECT_TRUE(fd_open(kept));
  UniqueFd e(kept);
  EXPECT_EQ(e.close(), 0);  // close() reports close(2)'s answer and leaves nothing to close
  EXPECT_FALSE(e.valid());
  EXPECT_FALSE(fd_open(kept));
  EXPECT_EQ(e.close(), 0);
}
