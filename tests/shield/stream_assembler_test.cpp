// StreamAssembler: a container of announced size decrypted straight into one buffer, chunk
// by chunk as it arrives; and peek_stream_geometry, which senders use to cut at records.
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "shield_nitro/shield/stream.h"
#include "test_support.h"

namespace shield_nitro::shield {
namespace {

using testing::code_of;
using testing::flip_bit;
using testing::random_bytes;

constexpr uint32_t kChunk = 64;
constexpr size_t kKeyHeader = 50;
constexpr size_t kRecord = kChunk + 16;
constexpr uint64_t kNoLimit = ~uint64_t{0};

Shield key_shield() { return Shield::with_key(ShieldKey::from_bytes(Bytes(32, 7))); }

Bytes seal(const Shield& s, ByteView pt, uint32_t chunk = kChunk) { return encrypt_stream(s, pt, {.chunk_size = chunk}); }

// Pushes container in pieces of `piece` bytes (the last may be shorter).
Bytes assemble(const Shield& s, ByteView container, size_t piece, uint64_t announced) {
  StreamAssembler a(s, announced, kNoLimit);
  for (size_t off = 0; off < container.size(); off += piece)
    a.push(container.subspan(off, std::min(piece, container.size() - off)));
  return to_bytes(a.finish().view());
}

TEST(StreamAssemblerTest, RebuildsThePlaintextFromAnySplitOfTheInput) {
  Shield s = key_shield();
  for (size_t len : {size_t{0}, size_t{1}, size_t{kChunk}, size_t{kChunk * 3}, size_t{1000}}) {
    Bytes pt = random_bytes(len);
    Bytes c = seal(s, pt);
    // Byte by byte, odd splits, record-aligned pieces, and all at once.
    for (size_t piece : {size_t{1}, size_t{7}, kRecord, size_t{3 * kRecord + 5}, c.size()})
      EXPECT_EQ(assemble(s, c, piece, c.size()), pt) << "len " << len << " piece " << piece;
  }
}

TEST(StreamAssemblerTest, KnowsThePlaintextSizeOnceTheHeaderArrives) {
  Shield s = key_shield();
  Bytes c = seal(s, random_bytes(1000));
  StreamAssembler a(s, c.size(), kNoLimit);
  a.push(ByteView(c).first(kKeyHeader - 1));
  EXPECT_EQ(a.plaintext_size(), 0u);
  a.push(ByteView(c).subspan(kKeyHeader - 1, 1));
  EXPECT_EQ(a.plaintext_size(), 1000u);
  a.push(ByteView(c).subspan(kKeyHeader));
  EXPECT_EQ(a.finish().size(), 1000u);
}

TEST(StreamAssemblerTest, PasswordModeHeaderIsSixtySixBytes) {
  Shield s = Shield::with_password(as_bytes("correct horse"), "svc");
  Bytes pt = random_bytes(300);
  Bytes c = seal(s, pt);
  ASSERT_EQ(peek_stream_geometry(c)->header_size, 66u);
  EXPECT_EQ(assemble(s, c, 1, c.size()), pt);
  EXPECT_EQ(assemble(s, c, 66, c.size()), pt);
}

TEST(StreamAssemblerTest, RefusesAStreamOfAnotherSizeThanAnnounced) {
  Shield s = key_shield();
  Bytes c = seal(s, random_bytes(500));
  // Longer than announced: refused on the push that passes the size.
  StreamAssembler shorter(s, c.size() - 1, kNoLimit);
  shorter.push(ByteView(c).first(c.size() - 1 - kRecord));
  EXPECT_EQ(code_of([&] { shorter.push(ByteView(c).subspan(c.size() - 1 - kRecord)); }), Errc::kFormat);
  // Shorter than announced: refused at finish.
  StreamAssembler longer(s, c.size() + kRecord, kNoLimit);
  longer.push(c);
  EXPECT_EQ(code_of([&] { longer.finish(); }), Errc::kFormat);
  // Announcing the size of a cut stream does not help: its new last chunk was sealed non-final.
  Bytes cut(c.begin(), c.begin() + static_cast<long>(kKeyHeader + 2 * kRecord));
  EXPECT_EQ(code_of([&] { assemble(s, cut, 13, cut.size()); }), Errc::kAuth);
  // Nor appending a record of the same stream.
  Bytes longer_c = testing::concat(c, ByteView(c).subspan(kKeyHeader, kRecord));
  EXPECT_EQ(code_of([&] { assemble(s, longer_c, 13, longer_c.size()); }), Errc::kAuth);
  // A size no stream can have (a last record shorter than a tag) is refused as such, at the
  // header; one within the header, as a cut header.
  EXPECT_EQ(code_of([&] { assemble(s, ByteView(c).first(kKeyHeader + 10), 5, kKeyHeader + 10); }), Errc::kFormat);
  Bytes full = seal(s, random_bytes(8 * kChunk));  // its last record is full: one byte more is impossible
  StreamAssembler one_more(s, full.size() + 1, kNoLimit);
  EXPECT_EQ(code_of([&] { one_more.push(ByteView(full).first(kKeyHeader)); }), Errc::kFormat);
  EXPECT_EQ(code_of([&] { assemble(s, ByteView(c).first(20), 5, 20); }), Errc::kFormat);
}

TEST(StreamAssemblerTest, RefusesATamperedChunk) {
  Shield s = key_shield();
  Bytes c = seal(s, random_bytes(20 * kChunk));
  Bytes bad = flip_bit(c, (kKeyHeader + 5 * kRecord + 3) * 8);  // inside chunk 5
  EXPECT_EQ(code_of([&] { assemble(s, bad, kRecord, bad.size()); }), Errc::kAuth);
  // Reordered chunks fail too (the index is in the nonce).
  Bytes swapped = c;
  std::swap_ranges(swapped.begin() + kKeyHeader, swapped.begin() + kKeyHeader + kRecord,
                   swapped.begin() + kKeyHeader + kRecord);
  EXPECT_EQ(code_of([&] { assemble(s, swapped, kRecord, swapped.size()); }), Errc::kAuth);
  // A changed header fails every chunk; a wrong key too.
  EXPECT_EQ(code_of([&] { assemble(s, flip_bit(c, 20 * 8), kRecord, c.size()); }), Errc::kAuth);
  Shield other = Shield::with_key(ShieldKey::from_bytes(Bytes(32, 8)));
  EXPECT_EQ(code_of([&] { assemble(other, c, kRecord, c.size()); }), Errc::kAuth);
}

TEST(StreamAssemblerTest, RefusesOverTheLimitBeforeAllocatingAndMalformedHeaders) {
  Shield s = key_shield();
  Bytes c = seal(s, random_bytes(1000));
  StreamAssembler a(s, c.size(), 999);
  EXPECT_EQ(code_of([&] { a.push(c); }), Errc::kPolicy);
  // A huge announced size with a tiny chunk would need over 2^32 chunks.
  StreamAssembler huge(s, uint64_t{1} << 40, kNoLimit);
  EXPECT_EQ(code_of([&] { huge.push(ByteView(c).first(kKeyHeader)); }), Errc::kFormat);
  StreamAssembler big(s, uint64_t{1} << 40, uint64_t{1} << 30);
  Bytes c1m = seal(s, random_bytes(10), 1u << 20);
  EXPECT_EQ(code_of([&] { big.push(ByteView(c1m).first(kKeyHeader)); }), Errc::kPolicy);
  StreamAssembler bad_magic(s, c.size(), kNoLimit);
  EXPECT_EQ(code_of([&] { bad_magic.push(flip_bit(c, 0)); }), Errc::kFormat);
  // A reader's chunk size limit applies as in StreamDecryptor.
  StreamAssembler small_chunks(s, c1m.size(), kNoLimit, {.max_chunk_size = 4096});
  EXPECT_EQ(code_of([&] { small_chunks.push(c1m); }), Errc::kPolicy);
}

TEST(StreamAssemblerTest, BigPlaintextGoesToOneBuffer) {
  // Over SecureBytes' mapped-allocation threshold (4 MiB), 1 MiB chunks as artifacts use.
  Shield s = key_shield();
  Bytes pt = random_bytes((6u << 20) + 12345);
  Bytes c = seal(s, pt, 1u << 20);
  EXPECT_EQ(assemble(s, c, (1u << 20) + 16, c.size()), pt);
  EXPECT_EQ(assemble(s, c, 65536, c.size()), pt);
}

// ---- the worker pool -------------------------------------------------------------------

// Pushes container in pieces of `piece` bytes with the given options; borrowed: each piece
// is a heap copy lent with its keepalive (as the enclave lends received frames).
Bytes assemble_with(const Shield& s, ByteView container, size_t piece, const AssemblerOptions& o, bool borrowed) {
  StreamAssembler a(s, container.size(), kNoLimit, o);
  for (size_t off = 0; off < container.size(); off += piece) {
    ByteView p = container.subspan(off, std::min(piece, container.size() - off));
    if (!borrowed) {
      a.push(p);
      continue;
    }
    auto frame = std::make_shared<Bytes>(p.begin(), p.end());
    a.push(*frame, frame);
  }
  return to_bytes(a.finish().view());
}

TEST(StreamAssemblerTest, EveryWorkerCountSplitAndPushGivesTheExactPlaintext) {
  Shield s = key_shield();
  for (size_t len : {size_t{0}, size_t{1}, size_t{kChunk}, size_t{kChunk * 37 + 5}}) {
    Bytes pt = random_bytes(len);
    Bytes c = seal(s, pt);
    for (unsigned workers = 1; workers <= 4; ++workers)
      for (uint64_t in_flight : {uint64_t{1}, uint64_t{8} << 20})
        for (size_t piece : {size_t{1}, size_t{7}, kRecord, size_t{3 * kRecord + 5}, c.size()})
          for (bool borrowed : {false, true})
            EXPECT_EQ(assemble_with(s, c, piece, {.workers = workers, .max_in_flight_bytes = in_flight}, borrowed), pt)
                << "len " << len << " workers " << workers << " piece " << piece << " borrowed " << borrowed;
  }
}

TEST(StreamAssemblerTest, ATamperedChunkAnywhereFailsTheLoadWithAnyWorkerCount) {
  Shield s = key_shield();
  Bytes c = seal(s, random_bytes(11 * kChunk + 9));  // 12 records, the last one short
  for (unsigned workers = 1; workers <= 4; ++workers)
    for (size_t chunk = 0; chunk < 12; ++chunk) {
      Bytes bad = flip_bit(c, (kKeyHeader + chunk * kRecord + 2) * 8);
      std::string what;
      try {
        assemble_with(s, bad, kRecord, {.workers = workers}, true);
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), Errc::kAuth);
        what = e.what();
      }
      EXPECT_NE(what.find("stream chunk " + std::to_string(chunk) + ":"), std::string::npos)
          << "workers " << workers << " chunk " << chunk << ": " << what;
    }
}

TEST(StreamAssemblerTest, TruncationExtensionAndReorderingFailWithAnyWorkerCount) {
  Shield s = key_shield();
  Bytes c = seal(s, random_bytes(9 * kChunk));
  Bytes cut(c.begin(), c.begin() + static_cast<long>(kKeyHeader + 4 * kRecord));
  Bytes extended = testing::concat(c, ByteView(c).subspan(kKeyHeader + kRecord, kRecord));
  for (unsigned workers = 1; workers <= 4; ++workers) {
    const AssemblerOptions o{.workers = workers};
    EXPECT_EQ(code_of([&] { assemble_with(s, cut, kRecord, o, true); }), Errc::kAuth);
    EXPECT_EQ(code_of([&] { assemble_with(s, extended, kRecord, o, false); }), Errc::kAuth);
    // Positions are given by arrival: a record pushed in another place cannot verify there.
    for (size_t i = 0; i + 1 < 9; ++i) {
      Bytes swapped = c;
      auto at = [&](size_t k) { return swapped.begin() + static_cast<long>(kKeyHeader + k * kRecord); };
      std::swap_ranges(at(i), at(i + 1), at(i + 1));
      EXPECT_EQ(code_of([&] { assemble_with(s, swapped, 3 * kRecord, o, true); }), Errc::kAuth) << i;
    }
    // More or fewer bytes than announced.
    StreamAssembler shorter(s, c.size() - kRecord, kNoLimit, o);
    EXPECT_EQ(code_of([&] { shorter.push(c); }), Errc::kFormat);
    StreamAssembler longer(s, c.size() + kRecord, kNoLimit, o);
    longer.push(c);
    EXPECT_EQ(code_of([&] { longer.finish(); }), Errc::kFormat);
  }
}

TEST(StreamAssemblerTest, AFailureIsFinalAndEveryLaterCallRepeatsIt) {
  Shield s = key_shield();
  Bytes c = seal(s, random_bytes(30 * kChunk));
  Bytes bad = flip_bit(c, (kKeyHeader + 2 * kRecord) * 8);
  StreamAssembler a(s, bad.size(), kNoLimit, {.workers = 2});
  std::optional<Errc> first;
  for (size_t off = 0; off < bad.size() && !first; off += kRecord)
    try {
      a.push(ByteView(bad).subspan(off, std::min<size_t>(kRecord, bad.size() - off)));
    } catch (const Error& e) {
      first = e.code();
    }
  if (!first) first = code_of([&] { a.finish(); });
  EXPECT_EQ(*first, Errc::kAuth);
  EXPECT_EQ(code_of([&] { a.push(ByteView(c).first(1)); }), Errc::kAuth);
  EXPECT_EQ(code_of([&] { a.finish(); }), Errc::kAuth);
}

TEST(StreamAssemblerTest, DecryptsIntoTheCallersDestination) {
  Shield s = key_shield();
  Bytes pt = random_bytes(20 * kChunk + 3);
  Bytes c = seal(s, pt);
  Bytes dest;
  int calls = 0;
  uint64_t asked = 0;
  StreamAssembler a(s, c.size(), kNoLimit, [&](uint64_t n) {
    ++calls;
    asked = n;
    dest.assign(n, 0xaa);
    return std::span<uint8_t>(dest);
  }, {.workers = 3});
  a.push(ByteView(c).first(kKeyHeader - 1));
  EXPECT_EQ(calls, 0);  // not before the header is in
  a.push(ByteView(c).subspan(kKeyHeader - 1));
  EXPECT_TRUE(a.finish().empty());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(asked, pt.size());
  EXPECT_EQ(dest, pt);
}

// As the supervisor uses it: the plaintext lands in a file of a tmpfs (here a memfd), mapped
// shared once its size is known; the file then holds the plaintext, or only zeros on failure.
TEST(StreamAssemblerTest, DecryptsIntoAMappedFile) {
  Shield s = key_shield();
  Bytes pt = random_bytes((3u << 20) + 5);
  Bytes c = seal(s, pt, 65536);
  for (bool tamper : {false, true}) {
    Bytes in = tamper ? flip_bit(c, (c.size() - 100) * 8) : c;
    int fd = ::memfd_create("sn-assembler-test", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    void* map = nullptr;
    size_t len = 0;
    {
      StreamAssembler a(s, in.size(), kNoLimit, [&](uint64_t n) {
        len = static_cast<size_t>(n);
        if (::ftruncate(fd, static_cast<off_t>(n)) != 0) throw Error(Errc::kIo, "ftruncate");
        map = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) throw Error(Errc::kIo, "mmap");
        return std::span<uint8_t>(static_cast<uint8_t*>(map), len);
      }, {.workers = 2});
      auto load = [&] {
        for (size_t off = 0; off < in.size(); off += 65536 + 16)
          a.push(ByteView(in).subspan(off, std::min<size_t>(65536 + 16, in.size() - off)));
        return a.finish();
      };
      if (tamper) EXPECT_EQ(code_of([&] { load(); }), Errc::kAuth);  // on a push or at finish: workers race
      else EXPECT_TRUE(load().empty());
    }
    ASSERT_EQ(len, pt.size());
    ::munmap(map, len);
    Bytes file(len);
    ASSERT_EQ(::pread(fd, file.data(), len, 0), static_cast<ssize_t>(len));
    ::close(fd);
    EXPECT_EQ(file, tamper ? Bytes(len, 0) : pt) << "tamper " << tamper;
  }
}

TEST(StreamAssemblerTest, ADestinationIsNotAskedForARefusedStreamAndMustFit) {
  Shield s = key_shield();
  Bytes c = seal(s, random_bytes(1000));
  bool asked = false;
  StreamAssembler over(s, c.size(), 999, [&](uint64_t) -> std::span<uint8_t> {
    asked = true;
    return {};
  });
  EXPECT_EQ(code_of([&] { over.push(c); }), Errc::kPolicy);
  EXPECT_FALSE(asked);
  Bytes small(999);
  StreamAssembler misfit(s, c.size(), kNoLimit, [&](uint64_t) { return std::span<uint8_t>(small); });
  EXPECT_EQ(code_of([&] { misfit.push(c); }), Errc::kUsage);
  StreamAssembler no_room(s, c.size(), kNoLimit, [&](uint64_t) -> std::span<uint8_t> {
    throw Error(Errc::kIo, "tmpfs full");
  });
  EXPECT_EQ(code_of([&] { no_room.push(c); }), Errc::kIo);
  EXPECT_EQ(code_of([&] { StreamAssembler(s, c.size(), kNoLimit, PlaintextDestination{}); }), Errc::kUsage);
}

// Every byte a failed or abandoned load may have written is zero afterwards.
TEST(StreamAssemblerTest, AFailedOrAbandonedLoadWipesTheDestination) {
  Shield s = key_shield();
  Bytes pt = random_bytes(16 * kChunk);
  Bytes c = seal(s, pt);
  Bytes last_bad = flip_bit(c, (c.size() - 3) * 8);
  for (unsigned workers = 1; workers <= 4; ++workers) {
    Bytes dest;
    auto into = [&](uint64_t n) {
      dest.assign(n, 0xaa);
      return std::span<uint8_t>(dest);
    };
    {
      StreamAssembler a(s, c.size(), kNoLimit, into, {.workers = workers});
      EXPECT_EQ(code_of([&] {
                  a.push(last_bad);
                  a.finish();
                }),
                Errc::kAuth);
      EXPECT_EQ(dest, Bytes(pt.size(), 0)) << workers;  // chunks 0-14 were written, then wiped
    }
    {
      StreamAssembler a(s, c.size(), kNoLimit, into, {.workers = workers});
      a.push(ByteView(c).first(c.size() - kRecord));
    }  // dropped before finish(): 15 records handed out, whatever the workers got to
    EXPECT_EQ(Bytes(dest.begin(), dest.begin() + 15 * kChunk), Bytes(15 * kChunk, 0)) << workers;
  }
}

TEST(StreamAssemblerTest, BorrowedPiecesAreHeldOnlyWhileInFlightAndWithinTheBound) {
  Shield s = key_shield();
  constexpr uint32_t kBig = 64 * 1024;  // slow enough to decrypt that an unbounded queue would fill
  Bytes c = seal(s, random_bytes(64 * size_t{kBig}), kBig);
  auto live = std::make_shared<std::atomic<int>>(0);
  int most = 0;
  StreamAssembler a(s, c.size(), kNoLimit, {.workers = 1, .max_in_flight_bytes = 1});  // 2 records
  a.push(ByteView(c).first(kKeyHeader));
  for (size_t off = kKeyHeader; off < c.size(); off += kBig + 16) {
    ++*live;
    std::shared_ptr<Bytes> frame(new Bytes(c.begin() + static_cast<long>(off), c.begin() + static_cast<long>(off + kBig + 16)),
                                 [live](Bytes* b) {
                                   --*live;
                                   delete b;
                                 });
    most = std::max(most, live->load());
    ByteView view(*frame);
    a.push(view, std::move(frame));
  }
  a.finish();
  EXPECT_LE(most, 3);  // 2 in flight and the one being pushed
  EXPECT_EQ(live->load(), 0);
}

TEST(StreamAssemblerTest, WorkerCountIsTheOptionOrOnePerCore) {
  Shield s = key_shield();
  EXPECT_EQ(StreamAssembler(s, 100, kNoLimit, {.workers = 3}).workers(), 3u);
  EXPECT_EQ(StreamAssembler(s, 100, kNoLimit).workers(), std::max(1u, std::thread::hardware_concurrency()));
}

TEST(StreamGeometryTest, TellsHeaderAndRecordSizesOrNothing) {
  Shield s = key_shield();
  Bytes c = seal(s, random_bytes(10), 4096);
  auto g = peek_stream_geometry(c);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->header_size, kKeyHeader);
  EXPECT_EQ(g->chunk_size, 4096u);
  EXPECT_EQ(g->record_size(), 4096u + 16);
  EXPECT_FALSE(peek_stream_geometry(ByteView(c).first(10)));  // the chunk size is not in yet
  EXPECT_TRUE(peek_stream_geometry(ByteView(c).first(11)));
  EXPECT_FALSE(peek_stream_geometry(flip_bit(c, 0)));          // not the magic
  Bytes bad_mode = c;
  bad_mode[6] = 0x05;
  EXPECT_FALSE(peek_stream_geometry(bad_mode));
  EXPECT_FALSE(peek_stream_geometry(s.encrypt(as_bytes("a v4 message"))));
  EXPECT_FALSE(peek_stream_geometry({}));
}

}  // namespace
}  // namespace shield_nitro::shield
