#include "shield_nitro/eif/fs_entry.h"

#include "shield_nitro/core/error.h"

namespace shield_nitro::eif {

void stream_data(const DataRef& ref, uint64_t size, const std::function<void(ByteView)>& fn) {
  if (size == 0) return;
  if (ref.source) {
    for_each_chunk(*ref.source, ref.offset, size, fn);
  } else if (!ref.path.empty()) {
    FileSource f(ref.path);
    if (!f.in_bounds(ref.offset, size)) throw Error(Errc::kIo, ref.path + " changed size while the image was built");
    for_each_chunk(f, ref.offset, size, fn);
  } else {
    if (ref.inline_data.size() != size) throw Error(Errc::kInternal, "inline data size mismatch");
    fn(ref.inline_data);
  }
}

std::string clean_member_path(const std::string& name) {
  if (name.find('\0') != std::string::npos) throw Error(Errc::kFormat, "path contains a NUL byte");
  if (name.size() > 4096) throw Error(Errc::kFormat, "path longer than 4096 bytes refused");
  if (!name.empty() && name[0] == '/') throw Error(Errc::kFormat, "absolute path refused: " + name);
  std::string out;
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string::npos) j = name.size();
    std::string c = name.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") throw Error(Errc::kFormat, "path traversal refused: " + name);
    if (!out.empty()) out += '/';
    out += c;
  }
  return out;
}

}  // namespace shield_nitro::eif
