// load-artifact: streams a sealed artifact to the enclave in chunk_size frames. The file is
// read one chunk at a time, so a 1 GiB model never sits whole in the parent's memory, and
// sending stops as soon as the enclave answers early (a refusal: wrong key, policy, tamper).
#include <functional>

#include "client_impl.h"
#include "shield_nitro/core/file_io.h"

namespace shield_nitro::parent {

using cbor::Value;

namespace {

// Fills buf with up to buf.size() bytes; returns how many (0 at the end).
using ChunkReader = std::function<size_t(Bytes& buf)>;

void check_kind(const std::string& kind) {
  if (kind != "model" && kind != "code") throw Error(Errc::kUsage, "load_artifact: kind must be 'model' or 'code', got '" + kind + "'");
}

Value header(const std::string& key_handle, const std::string& kind, const std::string& name,
             const std::vector<std::string>& models) {
  cbor::MapEntries h{cbor::entry("key", Value::text(key_handle)), cbor::entry("kind", Value::text(kind)),
                     cbor::entry("name", Value::text(name.empty() ? "artifact" : name))};
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

ArtifactInfo upload(EnclaveClient::Impl& c, Value first, const ChunkReader& read) {
  net::ClientStream up = c.conn->stream("load-artifact", std::move(first));
  Bytes buf(c.options.chunk_size);
  for (;;) {
    size_t n = read(buf);  // an exception here leaves `up` to close the stream on unwind
    if (n == 0) break;
    try {
      up.send(Value::map({cbor::entry("data", Value::bytes(ByteView(buf.data(), n)))}));
    } catch (const Error&) {
      break;  // answered early or connection gone: finish() returns what happened
    }
  }
  net::Response r = up.finish();
  if (!r.ok) throw Error(r.code, "load-artifact: " + r.message);
  c.maybe_refresh(r.body);
  return artifact_info(r.body);
}

}  // namespace

ArtifactInfo EnclaveClient::load_artifact(const std::string& key_handle, const std::string& path, const std::string& kind,
                                          const std::string& name, const std::vector<std::string>& models) {
  check_kind(kind);
  FileReader file(path);  // "-" is standard input
  return upload(*impl_, header(key_handle, kind, name.empty() ? base_name(path) : name, models),
                        [&](Bytes& buf) { return file.read(buf.data(), buf.size()); });
}

ArtifactInfo EnclaveClient::load_artifact(const std::string& key_handle, std::istream& in, const std::string& kind,
                                          const std::string& name, const std::vector<std::string>& models) {
  check_kind(kind);
  return upload(*impl_, header(key_handle, kind, name, models), [&](Bytes& buf) -> size_t {
    in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
    if (in.bad()) throw Error(Errc::kIo, "load_artifact: reading the artifact stream failed");
    return static_cast<size_t>(in.gcount());
  });
}

}  // namespace shield_nitro::parent
