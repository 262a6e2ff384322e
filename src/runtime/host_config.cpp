#include "shield_nitro/runtime/host_config.h"

#include "shield_nitro/core/error.h"
#include "shield_nitro/core/file_io.h"
#include "yaml_check.h"

namespace shield_nitro::runtime {

HostConfig parse_host_config(std::string_view yaml, const std::string& base_dir, std::string_view source) {
  detail::Doc doc(source);
  detail::Map top(doc, doc.load(yaml), "", {"enclaves", "kms", "credentials", "metrics"});
  return HostConfig{};
}

HostConfig load_host_config(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  return parse_host_config(read_text_file(path), dir, path);
}

}  // namespace shield_nitro::runtime
