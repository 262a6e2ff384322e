#!/usr/bin/python3
"""Builds the python-inference example's container image without Docker, from this machine's
Debian files: Python 3.11 with its standard library, numpy, botocore (KMS only) and the app.

  make_image.py -o app.tar [--app DIR] [--file SRC:DEST]...

The output is a `docker save` tar (manifest.json + config + one layer) that
`shield-nitro eif build --image app.tar` reads like any other image. The layer is reproducible:
files are sorted, owned by root, and stamped with one fixed time, so the same Debian packages
give the same bytes (and the same PCR2). Shared libraries are found with ldd and copied under
the paths the loader looks for.
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

PYTHON = "/usr/bin/python3.11"
STDLIB = "/usr/lib/python3.11"
DIST = "/usr/lib/python3/dist-packages"
# Packages the app imports: numpy; botocore and what it needs at import time (Debian's botocore
# uses requests instead of its vendored copy).
PACKAGES = ["numpy", "botocore", "dateutil", "jmespath", "urllib3", "six.py", "requests", "certifi", "idna",
            "charset_normalizer", "chardet"]
# Parts of the standard library a server never uses (saves ~25 MB of enclave memory).
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "pydoc_data",
               "config-3.11-x86_64-linux-gnu", "distutils", "venv", "unittest"}
# botocore ships ~80 MB of service models; the app talks to KMS only.
BOTOCORE_DATA = ["_retry.json", "endpoints.json", "partitions.json", "sdk-default-configuration.json", "kms"]
FIXED_MTIME = 1700000000
APP_UID = 1000


def fail(message):
    sys.stderr.write("make_image.py: %s\n" % message)
    sys.exit(3)


def shared_libraries(elf):
    """Absolute paths of the libraries the loader resolves for elf (and the loader itself)."""
    out = subprocess.run(["ldd", elf], capture_output=True, text=True)
    if out.returncode != 0:
        return []  # not a dynamic executable
    libs = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
            libs.append(parts[2])
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])  # the dynamic loader
    return libs


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


class Layer:
    """The files of the image, by path inside it; written out sorted and stamped."""

    def __init__(self):
        self.entries = {}  # image path -> ("file", host path, mode) | ("dir",) | ("symlink", target) | ("data", bytes, mode)

    def add_dirs(self, path):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.entries.setdefault("/" + "/".join(parts[:i]), ("dir",))

    def add_file(self, host_path, image_path=None):
        image_path = image_path or host_path
        self.add_dirs(image_path)
        if os.path.islink(host_path) and image_path == host_path:
            target = os.readlink(host_path)
            self.entries[image_path] = ("symlink", target)
            resolved = os.path.normpath(os.path.join(os.path.dirname(host_path), target))
            if resolved not in self.entries:
                self.add_file(resolved)
            return
        self.entries[image_path] = ("file", host_path, os.stat(host_path).st_mode & 0o755)

    def add_data(self, image_path, data, mode=0o644):
        self.add_dirs(image_path)
        self.entries[image_path] = ("data", data, mode)

    def add_tree(self, root, skip=lambda rel: False):
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            dirnames[:] = sorted(d for d in dirnames
                                 if not skip(os.path.normpath(os.path.join(rel, d))) and d != "__pycache__")
            for name in sorted(filenames):
                if not skip(os.path.normpath(os.path.join(rel, name))):
                    self.add_file(os.path.join(dirpath, name))

    def add_libraries_of_elves(self):
        elves = [host for kind, host, *_ in (e for e in self.entries.values() if e[0] == "file")
                 if is_elf(host)]
        for elf in elves:
            for lib in shared_libraries(elf):
                if lib not in self.entries:
                    self.add_file(lib)

    def tar_bytes(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self.entries):
                entry = self.entries[path]
                info = tarfile.TarInfo(path.lstrip("/"))
                info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_MTIME, 0, 0, "", ""
                if entry[0] == "dir":
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    if path == "/tmp":
                        info.mode = 0o1777  # sticky, world-writable, as on any Linux
                    tar.addfile(info)
                elif entry[0] == "symlink":
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry[1], 0o777
                    tar.addfile(info)
                else:
                    data = open(entry[1], "rb").read() if entry[0] == "file" else entry[1]
                    info.size, info.mode = len(data), entry[2]
                    tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def build_layer(app_dir, extra_files):
    layer = Layer()
    layer.add_file(PYTHON)
    layer.add_file("/usr/bin/python3")  # a symlink to python3.11
    layer.add_tree(STDLIB, skip=lambda rel: rel.split("/")[0] in STDLIB_SKIP)
    for package in PACKAGES:
        path = os.path.join(DIST, package)
        if not os.path.exists(path):
            fail("%s is missing: install python3-numpy and python3-botocore (scripts/bootstrap does)" % path)
        if package == "botocore":
            layer.add_tree(path, skip=lambda rel: rel.startswith("data/") and rel.split("/")[1] not in BOTOCORE_DATA)
        elif os.path.isdir(path):
            layer.add_tree(path)
        else:
            layer.add_file(path)
    layer.add_libraries_of_elves()
    if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
        layer.add_file("/etc/ssl/certs/ca-certificates.crt")  # TLS through the egress proxy
    layer.add_data("/etc/passwd", b"root:x:0:0:root:/root:/bin/false\napp:x:%d:%d:app:/app:/bin/false\n" % (APP_UID, APP_UID))
    layer.add_data("/etc/group", b"root:x:0:\napp:x:%d:\n" % APP_UID)
    layer.entries["/tmp"] = ("dir",)
    for name in sorted(os.listdir(app_dir)):
        host = os.path.join(app_dir, name)
        if os.path.isfile(host) and not name.startswith("."):
            layer.add_data("/app/" + name, open(host, "rb").read(), 0o755 if os.access(host, os.X_OK) else 0o644)
    for host, dest in extra_files:
        if not os.path.isabs(dest):
            fail("--file %s:%s: the destination must be an absolute path in the image" % (host, dest))
        layer.add_data(dest, open(host, "rb").read(), 0o644)
    return layer.tar_bytes(), len(layer.entries)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", required=True, help="the image tar to write (docker save format)")
    parser.add_argument("--app", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "app"),
                        help="folder whose files become /app (default: this example's app/)")
    parser.add_argument("--file", action="append", default=[], metavar="SRC:DEST",
                        help="also put SRC at DEST in the image (repeatable), e.g. a private CA")
    args = parser.parse_args()
    extra = []
    for item in args.file:
        host, sep, dest = item.partition(":")
        if not sep or not os.path.isfile(host):
            fail("--file %s: expected SRC:DEST with SRC an existing file" % item)
        extra.append((host, dest))
    if not os.path.exists(PYTHON):
        fail("%s is missing: this script packs the host's Debian Python" % PYTHON)

    layer, count = build_layer(args.app, extra)
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "PYTHONDONTWRITEBYTECODE=1", "PORT=8080"],
            "Entrypoint": ["/usr/bin/python3", "/app/server.py"],
            "WorkingDir": "/app",
            "User": "%d:%d" % (APP_UID, APP_UID),
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_digest]},
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": ["python-inference:1"], "Layers": [layer_digest + "/layer.tar"]}]

    tmp = args.output + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(config_name, config_bytes), (layer_digest + "/layer.tar", layer),
                           ("manifest.json", json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), FIXED_MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, args.output)
    print("make_image.py: %s: %d entries, layer %.1f MiB, sha256:%s" % (
        args.output, count, len(layer) / 2**20, layer_digest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
