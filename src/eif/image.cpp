#include <openssl/evp.h>

#include <map>
#include <nlohmann/json.hpp>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/image.h"
#include "shield_nitro/eif/tar.h"

namespace shield_nitro::eif {
namespace {

constexpr uint64_t kMaxJson = 16 << 20;

[[noreturn]] void bad(const std::string& what) { throw Error(Errc::kFormat, "image tar: " + what); }

using Members = std::map<std::string, TarHeader>;

Members index_members(const RandomAccessSource& src) {
  Members out;
  TarReader reader(src);
  TarHeader h;
  while (reader.next(h)) {
    std::string name = clean_member_path(h.name);
    if (h.type != '0' && h.type != '\0' && h.type != '7') continue;
    if (!out.emplace(name, h).second) bad("duplicate member '" + name + "'");
  }
  return out;
}

const TarHeader& member(const Members& m, const std::string& name) {
  auto it = m.find(clean_member_path(name));
  if (it == m.end()) bad("missing member '" + name + "'");
  return it->second;
}

Bytes read_member(const RandomAccessSource& src, const Members& m, const std::string& name) {
  const TarHeader& h = member(m, name);
  if (h.size > kMaxJson) bad("'" + name + "' is too large for a JSON document");
  return src.read_bytes(h.data_offset, static_cast<size_t>(h.size));
}

nlohmann::json parse_json(const Bytes& b, const std::string& what) {
  auto j = nlohmann::json::parse(b.begin(), b.end(), nullptr, false);
  if (j.is_discarded()) bad(what + " is not valid JSON");
  return j;
}

std::string blob_path(const nlohmann::json& descriptor) {
  if (!descriptor.is_object() || !descriptor.contains("digest") || !descriptor["digest"].is_string())
    bad("descriptor without a digest");
  std::string d = descriptor["digest"];
  auto colon = d.find(':');
  if (colon == std::string::npos || d.find('/') != std::string::npos) bad("bad digest '" + d + "'");
  return "blobs/" + d.substr(0, colon) + "/" + d.substr(colon + 1);
}

std::optional<std::vector<std::string>> string_list(const nlohmann::json& cfg, const char* key) {
  if (!cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  if (!cfg[key].is_array()) bad(std::string("config ") + key + " is not an array");
  std::vector<std::string> out;
  for (const auto& v : cfg[key]) {
    if (!v.is_string()) bad(std::string("config ") + key + " holds a non-string");
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::string sha256_hex(const Bytes& b) {
  unsigned char md[32];
  unsigned len = 0;
  if (EVP_Digest(b.data(), b.size(), md, &len, EVP_sha256(), nullptr) != 1) throw_openssl("SHA-256");
  return hex_encode(ByteView(md, len));
}

struct Plan {
  std::string config_path;
  std::vector<std::string> layers;
  std::string name;
};

Plan docker_plan(const RandomAccessSource& src, const Members& m) {
  auto manifest = parse_json(read_member(src, m, "manifest.json"), "manifest.json");
  if (!manifest.is_array() || manifest.empty() || !manifest[0].is_object()) bad("manifest.json lists no image");
  const auto& img = manifest[0];
  Plan p;
  if (!img.contains("Config") || !img["Config"].is_string() || !img.contains("Layers") || !img["Layers"].is_array())
    bad("manifest.json entry lacks Config or Layers");
  p.config_path = img["Config"];
  for (const auto& l : img["Layers"]) {
    if (!l.is_string()) bad("manifest.json layer is not a path");
    p.layers.push_back(l);
  }
  if (img.contains("RepoTags") && img["RepoTags"].is_array() && !img["RepoTags"].empty() && img["RepoTags"][0].is_string()) {
    std::string tag = img["RepoTags"][0];
    p.name = tag.substr(0, tag.find(':'));
  }
  return p;
}

const char* oci_arch(Arch a) { return a == Arch::kAarch64 ? "arm64" : "amd64"; }

Plan oci_plan(const RandomAccessSource& src, const Members& m, Arch arch) {
  auto doc = parse_json(read_member(src, m, "index.json"), "index.json");
  for (int depth = 0; depth < 4; ++depth) {
    if (doc.contains("layers")) {
      Plan p;
      if (!doc.contains("config")) bad("OCI manifest without config");
      p.config_path = blob_path(doc["config"]);
      if (!doc["layers"].is_array()) bad("OCI manifest layers is not an array");
      for (const auto& l : doc["layers"]) p.layers.push_back(blob_path(l));
      return p;
    }
    if (!doc.contains("manifests") || !doc["manifests"].is_array() || doc["manifests"].empty())
      bad("OCI index lists no manifest");
    const nlohmann::json* pick = &doc["manifests"][0];
    for (const auto& d : doc["manifests"])
      if (d.is_object() && d.contains("platform") && d["platform"].is_object() && d["platform"].value("architecture", "") == oci_arch(arch))
        pick = &d;
    doc = parse_json(read_member(src, m, blob_path(*pick)), "OCI manifest");
  }
  bad("OCI indexes nested too deeply");
}

}  // namespace

std::vector<std::string> image_command(const ImageConfig& c) {
  if (c.cmd) return *c.cmd;  // nitro-cli: CMD wins, ENTRYPOINT is then ignored
  if (c.entrypoint) return *c.entrypoint;
  throw Error(Errc::kUsage, "the image has neither CMD nor ENTRYPOINT; give --cmd");
}

Image load_image_tar(std::shared_ptr<const RandomAccessSource> src, Arch arch, const std::string& scratch_dir,
                     uint64_t max_layer) {
  Members m = index_members(*src);
  Plan plan = m.count("manifest.json") ? docker_plan(*src, m) : m.count("index.json") ? oci_plan(*src, m, arch)
                                                                                      : (bad("neither manifest.json nor index.json found (is this a docker save / OCI tar?)"), Plan{});
  Image img;
  Bytes config_bytes = read_member(*src, m, plan.config_path);
  auto config = parse_json(config_bytes, "image config");
  const nlohmann::json* cfg = config.contains("config") ? &config["config"] : config.contains("Config") ? &config["Config"] : nullptr;
  if (cfg && cfg->is_object()) {
    img.config.cmd = string_list(*cfg, "Cmd");
    img.config.entrypoint = string_list(*cfg, "Entrypoint");
    img.config.env = string_list(*cfg, "Env");
  }
  img.id = sha256_hex(config_bytes);
  img.name = plan.name;
  FsTree tree;
  for (const auto& layer_path : plan.layers) {
    const TarHeader& h = member(m, layer_path);
    std::shared_ptr<const RandomAccessSource> layer;
    try {
      layer = maybe_gunzip(std::make_shared<SliceSource>(src, h.data_offset, h.size), scratch_dir, max_layer);
    } catch (const Error& e) {
      throw Error(e.code(), "layer '" + layer_path + "': " + e.what());
    }
    std::vector<FsEntry> entries;
    TarReader reader(*layer);
    TarHeader lh;
    while (reader.next(lh)) {
      FsEntry e = tar_to_entry(lh, layer);
      if (!e.name.empty()) entries.push_back(std::move(e));
    }
    tree.apply_layer(entries);
  }
  tree.add_docker_init_layer();
  img.export_stream = tree.export_stream();
  return img;
}

Image load_image_tar(const std::string& path, Arch arch, const std::string& scratch_dir, uint64_t max_layer) {
  return load_image_tar(std::make_shared<FileSource>(path), arch, scratch_dir, max_layer);
}

}  // namespace shield_nitro::eif
