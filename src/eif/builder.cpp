#include "shield_nitro/eif/builder.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "fanout.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/error.h"
#include "shield_nitro/core/progress.h"
#include "shield_nitro/eif/signature.h"

namespace shield_nitro::eif {
namespace {

constexpr size_t kChunkSize = 1 << 20;
constexpr size_t kPoolSize = 8;
enum : unsigned { kMeasured = 1, kInPcr2 = 2, kPcr1Mark = 4 };

uint64_t file_size(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) throw Error(Errc::kIo, "cannot read " + path);
  return static_cast<uint64_t>(st.st_size);
}

uint64_t ramdisk_size(const RamdiskInput& r) { return r.path.empty() ? cpio_size(r.entries) : file_size(r.path); }

// Copies bytes into pool chunks, publishing each when full or at a section boundary, and
// writes them to the output in order.
class ChunkWriter {
 public:
  ChunkWriter(ChunkFanOut& fan, AtomicFileWriter& out, Progress& progress) : fan_(fan), out_(out), progress_(progress) {}
  void begin_section(unsigned flags) {
    flush();
    flags_ = flags;
  }
  void write(ByteView b) {
    while (!b.empty()) {
      if (!cur_) cur_ = &fan_.acquire();
      size_t n = std::min(b.size(), cur_->buf.size() - cur_->len);
      std::memcpy(cur_->buf.data() + cur_->len, b.data(), n);
      cur_->len += n;
      b = b.subspan(n);
      written_ += n;
      if (cur_->len == cur_->buf.size()) flush();
    }
  }
  // Reads a file body straight into pool chunks (no intermediate buffer).
  void write_ref(const DataRef& ref, uint64_t size) {
    if (ref.path.empty() && !ref.source) return write(ref.inline_data);
    std::shared_ptr<const RandomAccessSource> src = ref.source;
    if (!src) src = std::make_shared<FileSource>(ref.path);
    if (!src->in_bounds(ref.offset, size)) throw Error(Errc::kIo, src->name() + " changed size while the image was built");
    uint64_t off = ref.offset;
    while (size > 0) {
      if (!cur_) cur_ = &fan_.acquire();
      size_t n = static_cast<size_t>(std::min<uint64_t>(size, cur_->buf.size() - cur_->len));
      src->read_at(off, cur_->buf.data() + cur_->len, n);
      cur_->len += n;
      off += n;
      size -= n;
      written_ += n;
      if (cur_->len == cur_->buf.size()) flush();
    }
  }
  void mark_pcr1() {
    flush();
    Chunk& c = fan_.acquire();
    c.flags = kPcr1Mark;
    fan_.publish(c);
  }
  void flush() {
    if (!cur_) return;
    cur_->flags = flags_;
    out_.write(cur_->view());
    progress_.add(cur_->len);
    fan_.publish(*cur_);
    cur_ = nullptr;
  }
  uint64_t written() const { return written_; }

 private:
  ChunkFanOut& fan_;
  AtomicFileWriter& out_;
  Progress& progress_;
  Chunk* cur_ = nullptr;
  unsigned flags_ = 0;
  uint64_t written_ = 0;
};

struct Hashes {
  Sha384 pcr0, pcr1, pcr2;
  uLong crc = crc32(0L, Z_NULL, 0);
};

void write_section(ChunkWriter& w, SectionType type, uint64_t size, unsigned flags,
                   const std::function<void(ChunkWriter&)>& body) {
  w.begin_section(0);
  w.write(serialize_section_header(type, size));
  w.begin_section(flags);
  uint64_t before = w.written();
  body(w);
  if (w.written() - before != size)
    throw Error(Errc::kIo, std::string(section_type_name(type)) + " input changed size while the image was built");
}

}  // namespace

BuildResult build_eif(const BuildInput& in, const std::string& out_path) {
  if (in.ramdisks.empty()) throw Error(Errc::kUsage, "an EIF needs at least one ramdisk");
  if (in.ramdisks.size() + 4 > kMaxSections) throw Error(Errc::kUsage, "too many ramdisks (at most 28)");
  if (in.cmdline.size() > 64 * 1024) throw Error(Errc::kUsage, "cmdline longer than 64 KiB");
  struct Planned {
    SectionType type;
    uint64_t size;
  };
  std::vector<Planned> plan = {{SectionType::kKernel, file_size(in.kernel_path)},
                               {SectionType::kCmdline, in.cmdline.size()},
                               {SectionType::kMetadata, in.metadata.size()}};
  for (const auto& r : in.ramdisks) plan.push_back({SectionType::kRamdisk, ramdisk_size(r)});
  uint64_t total = 0;
  for (const auto& p : plan) total += kSectionHeaderSize + p.size;

  AtomicFileWriter out(out_path);
  out.write(Bytes(kHeaderSize, 0));
  Hashes h;
  Progress progress("eif build", total, in.progress);
  {
    ChunkFanOut fan({[&](const Chunk& c) {
                       if (c.flags & kMeasured) h.pcr0.update(c.view());
                       if (c.flags & kPcr1Mark) h.pcr1 = h.pcr0;
                     },
                     [&](const Chunk& c) {
                       if (c.flags & kInPcr2) h.pcr2.update(c.view());
                       h.crc = crc32(h.crc, c.buf.data(), static_cast<uInt>(c.len));
                     }},
                    kPoolSize, kChunkSize);
    ChunkWriter w(fan, out, progress);
    write_section(w, SectionType::kKernel, plan[0].size, kMeasured,
                  [&](ChunkWriter& cw) { cw.write_ref(DataRef{{}, nullptr, in.kernel_path, 0}, plan[0].size); });
    write_section(w, SectionType::kCmdline, in.cmdline.size(), kMeasured, [&](ChunkWriter& cw) { cw.write(in.cmdline); });
    write_section(w, SectionType::kMetadata, in.metadata.size(), 0, [&](ChunkWriter& cw) { cw.write(in.metadata); });
    for (size_t i = 0; i < in.ramdisks.size(); ++i) {
      const RamdiskInput& r = in.ramdisks[i];
      write_section(w, SectionType::kRamdisk, plan[3 + i].size, kMeasured | (i > 0 ? kInPcr2 : 0), [&](ChunkWriter& cw) {
        if (!r.path.empty()) return cw.write_ref(DataRef{{}, nullptr, r.path, 0}, plan[3 + i].size);
        write_cpio(r.entries, [&](ByteView b) { cw.write(b); }, [&](const DataRef& d, uint64_t n) { cw.write_ref(d, n); });
      });
      if (i == 0) w.mark_pcr1();
    }
    w.flush();
    fan.finish();
  }
  progress.finish();

  BuildResult result;
  result.measurements.pcr0 = pcr_extend_from_zero(h.pcr0.final());
  result.measurements.pcr1 = pcr_extend_from_zero(h.pcr1.final());
  result.measurements.pcr2 = pcr_extend_from_zero(h.pcr2.final());
  if (in.signing) {
    SignatureEntry sig = sign_pcr0(result.measurements.pcr0, in.signing->certificate_pem, in.signing->key_pem);
    Bytes section = encode_signature_section({sig});
    if (section.size() > kMaxSignatureSection) throw Error(Errc::kUsage, "signature section larger than 32768 bytes");
    Bytes sh = serialize_section_header(SectionType::kSignature, section.size());
    out.write(sh);
    out.write(section);
    h.crc = crc32(h.crc, sh.data(), static_cast<uInt>(sh.size()));
    h.crc = crc32(h.crc, section.data(), static_cast<uInt>(section.size()));
    plan.push_back({SectionType::kSignature, section.size()});
    total += sh.size() + section.size();
    result.measurements.pcr8 = pcr8_of_certificate(in.signing->certificate_pem);
  }

  Header hdr;
  hdr.flags = in.arch == Arch::kAarch64 ? 1 : 0;
  hdr.num_sections = static_cast<uint16_t>(plan.size());
  uint64_t offset = kHeaderSize;
  for (size_t i = 0; i < plan.size(); ++i) {
    hdr.section_offsets[i] = offset;
    hdr.section_sizes[i] = plan[i].size;
    offset += kSectionHeaderSize + plan[i].size;
  }
  Bytes head = serialize_header(hdr);
  uLong head_crc = crc32(0L, head.data(), static_cast<uInt>(kCrcOffset));
  hdr.crc32 = static_cast<uint32_t>(crc32_combine(head_crc, h.crc, static_cast<z_off_t>(total)));
  out.write_at(0, serialize_header(hdr));
  out.commit();
  result.crc32 = hdr.crc32;
  result.file_size = kHeaderSize + total;
  return result;
}

}  // namespace shield_nitro::eif
