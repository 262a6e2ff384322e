// load-artifact: streams a sealed artifact to the enclave in frames, so a 1 GiB model never
// sits whole in the parent's memory; sending stops as soon as the enclave answers early (a
// refusal: wrong key, policy, tamper).
//
// A regular file announces its size in the first body (the enclave then allocates the
// plaintext once) and its bytes go to the socket by sendfile(2), never copied through this
// process; other input (a pipe, an istream) is read straight into each frame. A stream
// container is cut at its records (the header alone, then one record per frame) so the
// enclave decrypts each frame where it lies; a sealed file the same way after its sealed
// header. An empty key handle sends no "key": the enclave then takes a sealed file only and
// releases its data key from the file's own header (KMS, Recipient).
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>

#include "client_impl.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/sealed/sealed.h"
#include "shield_nitro/shield/stream.h"

namespace shield_nitro::parent {

using cbor::Value;

namespace {

// Fills up to n bytes at dst; returns how many (0 at the end).
using ChunkReader = std::function<size_t(uint8_t* dst, size_t n)>;

// Largest record sent one per frame; bigger ones (chunks up to 16 MiB) go in chunk_size pieces.
constexpr size_t kMaxAlignedPart = (size_t{16} << 20) + 16;
constexpr size_t kLongestStreamHeader = 66;  // password mode (docs/stream-format.md §2)
// The first bytes read to tell the cut: a sealed header (at most kMaxHeaderSize), then a stream header.
constexpr size_t kLongestHead = sealed::kMaxHeaderSize + kLongestStreamHeader;

void check_kind(const std::string& kind) {
  if (kind != "model" && kind != "code") throw Error(Errc::kUsage, "load_artifact: kind must be 'model' or 'code', got '" + kind + "'");
}

Value header(const std::string& key_handle, const std::string& kind, const std::string& name,
             const std::vector<std::string>& models, std::optional<uint64_t> size = std::nullopt) {
  cbor::MapEntries h{cbor::entry("kind", Value::text(kind)), cbor::entry("name", Value::text(name.empty() ? "artifact" : name))};
  if (!key_handle.empty()) h.push_back(cbor::entry("key", Value::text(key_handle)));
  if (size) h.push_back(cbor::entry("size", Value::uint(*size)));
  if (!models.empty()) {
    cbor::Array list;
    for (const auto& m : models) list.push_back(Value::text(m));
    h.push_back(cbor::entry("models", Value::array(std::move(list))));
  }
  return Value::map(std::move(h));
}

ArtifactInfo artifact_info(const Value& out) {
  auto text = [&](const char* name) {
    const Value* v = out.find(name);
    if (!v || !v->is(cbor::Type::kText)) throw Error(Errc::kFormat, std::string("load-artifact: response lacks the text '") + name + "'");
    return v->as_text();
  };
  const Value* size = out.find("size");
  if (!size || !size->is(cbor::Type::kUnsigned)) throw Error(Errc::kFormat, "load-artifact: response lacks the size");
  return {text("handle"), text("kind"), text("name"), size->as_uint()};
}

std::string base_name(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Where a stream container's records start and how long they are (one per frame), or
// chunk_size pieces for anything else (a v4 message, or records too big for one frame).
struct Cut {
  size_t first;
  size_t part;
};
Cut cut_for(ByteView head, size_t chunk_size) {
  size_t skip = 0;  // a sealed file's header, before its stream
  try {
    if (auto n = sealed::peek_header_size(head)) skip = *n;
  } catch (const Error&) {
    // not a sealed file
  }
  if (skip > head.size()) return {chunk_size, chunk_size};
  if (auto g = shield::peek_stream_geometry(head.subspan(skip)); g && g->record_size() <= kMaxAlignedPart)
    return {std::min(skip + g->header_size, head.size()), g->record_size()};
  return {chunk_size, chunk_size};
}

// What an upload needs of the client (EnclaveClient::Impl is private to the class).
struct Uplink {
  net::Client& conn;
  size_t chunk_size;
  std::function<void(const Value&)> maybe_refresh;  // acts on a refresh hint in the answer
};

ArtifactInfo result_of(const Uplink& c, net::ClientStream& up) {
  net::Response r = up.finish();
  if (!r.ok) throw Error(r.code, "load-artifact: " + r.message);
  c.maybe_refresh(r.body);
  return artifact_info(r.body);
}

// Sends one part; false when the enclave already answered (a refusal) or the connection is
// gone: finish() then tells what happened.
template <typename Send>
bool sent(Send send) {
  try {
    return send();
  } catch (const Error& e) {
    if (e.code() == Errc::kUsage) throw;
    return false;
  }
}

// Any input: read straight into each frame.
ArtifactInfo upload(const Uplink& c, Value first, const ChunkReader& read) {
  net::ClientStream up = c.conn.stream("load-artifact", std::move(first));
  // The first bytes tell a stream container and its record size; they are replayed into the
  // first frames.
  Bytes head(kLongestHead);
  size_t head_len = 0;
  while (head_len < head.size())
    if (size_t n = read(head.data() + head_len, head.size() - head_len)) head_len += n;
    else break;
  size_t head_pos = 0;
  Cut cut = cut_for({head.data(), head_len}, c.chunk_size);
  auto fill = [&](uint8_t* dst, size_t n) {
    size_t from_head = std::min(n, head_len - head_pos);
    std::memcpy(dst, head.data() + head_pos, from_head);
    head_pos += from_head;
    size_t got = from_head;
    while (got < n)  // an exception here leaves `up` to close the stream on unwind
      if (size_t r = read(dst + got, n - got)) got += r;
      else break;
    return got;
  };
  for (size_t want = cut.first; sent([&] { return up.send_bytes("data", want, fill) > 0; }); want = cut.part) {
  }
  return result_of(c, up);
}

// A regular file from offset `start`: its size is announced and its bytes go from the page
// cache to the socket inside the kernel (sendfile), never through this process's memory.
ArtifactInfo upload_file(const Uplink& c, Value first, int fd, uint64_t start, uint64_t size) {
  net::ClientStream up = c.conn.stream("load-artifact", std::move(first));
  Bytes head(static_cast<size_t>(std::min<uint64_t>(kLongestHead, size)));
  ssize_t got = ::pread(fd, head.data(), head.size(), static_cast<off_t>(start));
  if (got < 0) throw Error(Errc::kIo, "load_artifact: cannot read the artifact file");
  Cut cut = cut_for({head.data(), static_cast<size_t>(got)}, c.chunk_size);
  uint64_t off = 0;
  for (size_t want = cut.first; off < size; want = cut.part) {
    const auto n = static_cast<size_t>(std::min<uint64_t>(want, size - off));
    if (!sent([&] { up.send_file_bytes("data", fd, start + off, n); return true; })) break;
    off += n;
  }
  return result_of(c, up);
}

}  // namespace

ArtifactInfo EnclaveClient::load_artifact(const std::string& key_handle, const std::string& path, const std::string& kind,
                                          const std::string& name, const std::vector<std::string>& models) {
  check_kind(kind);
  const Uplink uplink{*impl_->conn, impl_->options.chunk_size, [this](const Value& b) { impl_->maybe_refresh(b); }};
  FileReader file(path);  // "-" is standard input
  const std::string shown = name.empty() ? base_name(path) : name;
  off_t start = file.size() >= 0 ? ::lseek(file.fd(), 0, SEEK_CUR) : -1;  // stdin may be a file read in part
  if (start >= 0 && start <= file.size()) {
    uint64_t size = static_cast<uint64_t>(file.size() - start);
    return upload_file(uplink, header(key_handle, kind, shown, models, size), file.fd(), static_cast<uint64_t>(start), size);
  }
  return upload(uplink, header(key_handle, kind, shown, models), [&](uint8_t* dst, size_t n) { return file.read(dst, n); });
}

ArtifactInfo EnclaveClient::load_artifact(const std::string& key_handle, std::istream& in, const std::string& kind,
                                          const std::string& name, const std::vector<std::string>& models) {
  check_kind(kind);
  const Uplink uplink{*impl_->conn, impl_->options.chunk_size, [this](const Value& b) { impl_->maybe_refresh(b); }};
  return upload(uplink, header(key_handle, kind, name, models), [&](uint8_t* dst, size_t n) -> size_t {
    in.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (in.bad()) throw Error(Errc::kIo, "load_artifact: reading the artifact stream failed");
    return static_cast<size_t>(in.gcount());
  });
}

}  // namespace shield_nitro::parent
