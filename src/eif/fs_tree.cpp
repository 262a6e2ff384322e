#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "shield_nitro/core/error.h"
#include "shield_nitro/eif/image.h"

namespace shield_nitro::eif {

struct FsTree::Node {
  FsEntry e;
  std::map<std::string, std::unique_ptr<Node>> kids;  // byte order, as Go's sort.Strings
  int layer = -1;
  uint64_t inode = 0;
};

namespace {

std::string parent_path(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? "" : p.substr(0, s);
}

std::string base_name(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

FsEntry implicit_dir(const std::string& name) {
  FsEntry d;
  d.name = name;
  d.type = FileType::kDirectory;
  d.perm = 0755;
  return d;
}

}  // namespace

FsTree::FsTree() : root_(std::make_unique<Node>()) { root_->e.type = FileType::kDirectory; }
FsTree::~FsTree() = default;

FsTree::Node* FsTree::find(const std::string& path) const {
  Node* n = root_.get();
  size_t i = 0;
  while (n && i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    auto it = n->kids.find(path.substr(i, j - i));
    n = it == n->kids.end() ? nullptr : it->second.get();
    i = j + 1;
  }
  return n;
}

FsTree::Node* FsTree::parent_of(const std::string& path, int layer, std::string& leaf) {
  Node* n = root_.get();
  size_t i = 0;
  for (;;) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) {
      leaf = path.substr(i);
      return n;
    }
    std::string comp = path.substr(i, j - i);
    auto& slot = n->kids[comp];
    if (!slot) {
      slot = std::make_unique<Node>();
      slot->e = implicit_dir(path.substr(0, j));
      slot->layer = layer;
      slot->inode = next_inode_++;
    } else if (slot->e.type == FileType::kSymlink) {
      throw Error(Errc::kFormat, "symlink escape refused: '" + path + "' goes through the symlink '" + path.substr(0, j) + "'");
    } else if (slot->e.type != FileType::kDirectory) {
      throw Error(Errc::kFormat, "'" + path + "' goes through '" + path.substr(0, j) + "', which is not a folder");
    }
    n = slot.get();
    i = j + 1;
  }
}

void FsTree::insert(const FsEntry& e, int layer) {
  std::string leaf;
  Node* parent = parent_of(e.name, layer, leaf);
  auto node = std::make_unique<Node>();
  node->e = e;
  node->layer = layer;
  node->inode = next_inode_++;
  if (e.type == FileType::kHardlink) {
    Node* target = find(e.link);
    if (!target || target->e.type == FileType::kDirectory)
      throw Error(Errc::kFormat, "hard link '" + e.name + "' points to a missing file or a folder: " + e.link);
    node->e = target->e;  // one inode: same metadata and bytes
    node->e.name = e.name;
    node->inode = target->inode;
  }
  auto& slot = parent->kids[leaf];
  if (slot && slot->e.type == FileType::kDirectory && e.type == FileType::kDirectory) {
    slot->e = e;  // a folder entry updates metadata and keeps the lower contents
    slot->layer = layer;
    return;
  }
  slot = std::move(node);
}

void FsTree::apply_layer(const std::vector<FsEntry>& entries) {
  int layer = layer_++;
  std::unordered_set<std::string> seen;
  for (const auto& e : entries) {
    if (!seen.insert(e.name).second) throw Error(Errc::kFormat, "duplicate entry '" + e.name + "' in image layer");
    std::string base = base_name(e.name);
    if (base.rfind(".wh.", 0) != 0) {
      insert(e, layer);
      continue;
    }
    Node* dir = find(parent_path(e.name));
    if (!dir || dir->e.type != FileType::kDirectory) continue;  // nothing below to hide
    if (base == ".wh..wh..opq") {
      std::erase_if(dir->kids, [&](const auto& kv) { return kv.second->layer < layer; });
    } else {
      dir->kids.erase(base.substr(4));
    }
  }
}

void FsTree::add_docker_init_layer() {
  struct Init {
    const char* path;
    FileType type;
    uint32_t perm;
  };
  static const Init kInit[] = {
      {"dev/pts", FileType::kDirectory, 0755},    {"dev/shm", FileType::kDirectory, 0755},
      {"proc", FileType::kDirectory, 0755},       {"sys", FileType::kDirectory, 0755},
      {".dockerenv", FileType::kRegular, 0755},   {"etc/resolv.conf", FileType::kRegular, 0755},
      {"etc/hosts", FileType::kRegular, 0755},    {"etc/hostname", FileType::kRegular, 0755},
      {"dev/console", FileType::kRegular, 0755},  {"etc/mtab", FileType::kSymlink, 0777},
  };
  int layer = layer_++;
  for (const Init& i : kInit) {
    if (find(i.path)) continue;
    FsEntry e;
    e.name = i.path;
    e.type = i.type;
    e.perm = i.perm;
    if (i.type == FileType::kSymlink) e.link = "/proc/mounts";
    try {
      insert(e, layer);
    } catch (const Error&) {
      // A parent is a symlink in this image (e.g. /etc -> /usr/etc); Docker follows it, we skip.
    }
  }
}

std::vector<FsEntry> FsTree::export_stream() const {
  std::vector<FsEntry> out;
  std::unordered_map<uint64_t, std::string> first_path;
  std::function<void(const Node&, const std::string&)> walk = [&](const Node& n, const std::string& prefix) {
    for (const auto& [name, kid] : n.kids) {
      FsEntry e = kid->e;
      e.name = prefix + name;
      if (e.type != FileType::kDirectory) {
        auto [it, first] = first_path.emplace(kid->inode, e.name);
        if (!first) {
          e.type = FileType::kHardlink;
          e.link = it->second;
          e.size = 0;
          e.data = DataRef{};
        }
      }
      out.push_back(e);
      if (kid->e.type == FileType::kDirectory) walk(*kid, e.name + "/");
    }
  };
  walk(*root_, "");
  return out;
}

namespace {

void scan_dir(const std::string& root, const std::string& rel, int64_t mtime, std::vector<FsEntry>& out,
              std::map<std::pair<dev_t, ino_t>, std::string>& inodes) {
  std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw Error(Errc::kIo, "cannot read folder " + dir);
  std::vector<std::string> names;
  while (dirent* de = ::readdir(d))
    if (std::string(de->d_name) != "." && std::string(de->d_name) != "..") names.emplace_back(de->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    std::string r = rel.empty() ? name : rel + "/" + name, full = root + "/" + r;
    struct stat st{};
    if (::lstat(full.c_str(), &st) != 0) throw Error(Errc::kIo, "cannot stat " + full);
    FsEntry e;
    e.name = r;
    e.perm = st.st_mode & 07777;
    e.mtime = mtime;
    if (S_ISDIR(st.st_mode)) {
      e.type = FileType::kDirectory;
      out.push_back(e);
      scan_dir(root, r, mtime, out, inodes);
      continue;
    }
    if (S_ISREG(st.st_mode)) {
      e.type = FileType::kRegular;
      e.size = static_cast<uint64_t>(st.st_size);
      e.data.path = full;
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlink(full.c_str(), target.data(), target.size());
      if (n < 0 || static_cast<size_t>(n) >= target.size()) throw Error(Errc::kIo, "cannot read symlink " + full);
      e.type = FileType::kSymlink;
      e.link = target.substr(0, static_cast<size_t>(n));
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      e.type = S_ISCHR(st.st_mode) ? FileType::kCharDevice : FileType::kBlockDevice;
      e.dev_major = major(st.st_rdev);
      e.dev_minor = minor(st.st_rdev);
    } else if (S_ISFIFO(st.st_mode)) {
      e.type = FileType::kFifo;
    } else {
      throw Error(Errc::kUnsupported, "cannot put a socket into a ramdisk: " + full);
    }
    if (st.st_nlink > 1) {
      auto [it, first] = inodes.emplace(std::make_pair(st.st_dev, st.st_ino), r);
      if (!first) {
        e.type = FileType::kHardlink;
        e.link = it->second;
      }
    }
    out.push_back(e);
  }
}

}  // namespace

std::vector<FsEntry> scan_rootfs_dir(const std::string& dir, int64_t mtime) {
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw Error(Errc::kIo, "not a folder: " + dir);
  std::vector<FsEntry> entries;
  std::map<std::pair<dev_t, ino_t>, std::string> inodes;
  scan_dir(dir, "", mtime, entries, inodes);
  FsTree tree;
  tree.apply_layer(entries);
  tree.add_docker_init_layer();
  return tree.export_stream();
}

}  // namespace shield_nitro::eif
