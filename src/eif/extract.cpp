#include "shield_nitro/eif/extract.h"

#include "shield_nitro/core/file_io.h"
#include "shield_nitro/eif/cpio.h"
#include "shield_nitro/eif/reader.h"
#include "staging_dir.h"

namespace shield_nitro::eif {
namespace {

void copy_section(const EifReader& r, const SectionInfo& s, const std::string& path) {
  AtomicFileWriter out(path);
  r.stream_section(s, [&](ByteView b) { out.write(b); });
  out.commit();
}

}  // namespace

ExtractResult extract_eif(const std::string& eif_path, const std::string& out_dir, bool unpack) {
  auto source = std::make_shared<FileSource>(eif_path);
  EifReader reader(source);
  StagingDir stage(out_dir);
  ExtractResult result;
  auto put = [&](const SectionInfo& s, const std::string& name) {
    copy_section(reader, s, stage.path() + "/" + name);
    result.files.push_back(name);
  };
  put(reader.kernel(), "kernel");
  put(reader.cmdline_section(), "cmdline");
  auto ramdisks = reader.ramdisks();
  for (size_t i = 0; i < ramdisks.size(); ++i) {
    std::string name = "ramdisk-" + std::to_string(i);
    put(ramdisks[i], name + ".cpio");
    if (unpack) {
      unpack_cpio(SliceSource(source, ramdisks[i].data_offset, ramdisks[i].size), stage.path() + "/" + name);
      result.files.push_back(name + "/");
    }
  }
  if (const SectionInfo* m = reader.metadata_section()) put(*m, "metadata.json");
  if (const SectionInfo* s = reader.signature_section()) put(*s, "signature.cbor");
  stage.commit();
  return result;
}

}  // namespace shield_nitro::eif
