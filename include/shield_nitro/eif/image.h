// Container filesystems without Docker: flatten `docker save` / OCI image layers, or take a
// folder, and produce the stream `docker create` + `docker export` would (spec/eif.md §6.4, §7).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shield_nitro/eif/format.h"
#include "shield_nitro/eif/fs_entry.h"
#include "shield_nitro/eif/tar.h"

namespace shield_nitro::eif {

// A merged filesystem built from layers. Paths never pass through a symlink or a file:
// such an entry (a "symlink escape") is refused, so the tree is always a plain hierarchy.
class FsTree {
 public:
  FsTree();
  ~FsTree();
  // Applies one layer in its tar order: whiteouts (.wh.NAME) remove lower entries, an opaque
  // marker (.wh..wh..opq) hides the lower contents of its folder, hard links share an inode.
  // Throws Error(kFormat) for duplicates within the layer or paths through symlinks.
  void apply_layer(const std::vector<FsEntry>& entries);
  // Docker's init layer: /.dockerenv, /etc/{hosts,hostname,resolv.conf,mtab}, /dev/{console,
  // pts,shm}, /proc, /sys, each created only when missing.
  void add_docker_init_layer();
  // Depth-first, lexical, folders before their contents; a second path of an inode becomes a
  // hard link to the first, as Docker's tar writer does.
  std::vector<FsEntry> export_stream() const;

 private:
  struct Node;
  Node* find(const std::string& path) const;
  Node* parent_of(const std::string& path, int layer, std::string& leaf);
  void insert(const FsEntry& e, int layer);
  std::unique_ptr<Node> root_;
  uint64_t next_inode_ = 1;
  int layer_ = 0;
};

// The pieces of an image config nitro-cli uses (Config.Cmd, Config.Entrypoint, Config.Env).
struct ImageConfig {
  std::optional<std::vector<std::string>> cmd, entrypoint, env;
};

struct Image {
  std::vector<FsEntry> export_stream;  // flattened, with Docker's init layer
  ImageConfig config;
  std::string name;  // first RepoTag before ':' (nitro-cli's rule), or ""
  std::string id;    // SHA-256 of the config blob, hex, without "sha256:"
};

// Reads a `docker save` tar (manifest.json) or an OCI image layout tar (index.json). Layers
// may be gzip'd; they are inflated into scratch_dir ("" = $TMPDIR), and one that inflates past
// max_layer bytes is refused (Error(kPolicy)). For an OCI index with several platforms the one
// matching arch is taken.
Image load_image_tar(const std::string& path, Arch arch, const std::string& scratch_dir,
                     uint64_t max_layer = kDefaultMaxInflated);
// The same from any source (tests and fuzzing).
Image load_image_tar(std::shared_ptr<const RandomAccessSource> src, Arch arch, const std::string& scratch_dir,
                     uint64_t max_layer = kDefaultMaxInflated);

// nitro-cli's /cmd: Cmd if present, else Entrypoint, else Error(kUsage). Never both.
std::vector<std::string> image_command(const ImageConfig& c);

// A folder as the filesystem of an image: modes, symlinks, devices and hard links from the
// folder; owner root and every mtime = mtime, so the ramdisk depends only on the content.
std::vector<FsEntry> scan_rootfs_dir(const std::string& dir, int64_t mtime);

}  // namespace shield_nitro::eif
