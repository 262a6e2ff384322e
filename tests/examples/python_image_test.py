"""The python-inference example's image: built without Docker, reproducible, self-contained.

Builds the image twice (the bytes must be equal: same files, same PCR2), checks its config
(entrypoint, user) and that the trimmed parts are really gone, then runs the app from the
image's own files alone (chroot, as the image's user, no host Python) and classifies the test
set through its HTTP API: the answers must equal the plaintext model's reference.

usage: python_image_test.py BUILD_DIR    (needs root for chroot: exit 77 = skipped)
"""
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "python-inference"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    build = Path(sys.argv[1])
    model = build / "examples" / "model-inference" / "model"
    if os.geteuid() != 0:
        print("SKIP: chroot needs root")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("a.tar", "b.tar"):
            subprocess.run([sys.executable, EXAMPLE / "make_image.py", "-o", tmp / name], check=True)
        assert (tmp / "a.tar").read_bytes() == (tmp / "b.tar").read_bytes(), "image is not reproducible"
        assert not list(tmp.glob("*.tmp")), "a temporary file was left behind"

        with tarfile.open(tmp / "a.tar") as image:
            manifest = json.load(image.extractfile("manifest.json"))
            config = json.load(image.extractfile(manifest[0]["Config"]))["config"]
            assert config["Entrypoint"] == ["/usr/bin/python3", "/app/server.py"], config
            assert config["User"] == "1000:1000", config
            root = tmp / "root"
            root.mkdir()
            with tarfile.open(fileobj=image.extractfile(manifest[0]["Layers"][0])) as layer:
                names = set(layer.getnames())
                layer.extractall(root)
        assert "usr/lib/python3.11/test" not in names, "the standard library's tests were not trimmed"
        assert "usr/lib/python3/dist-packages/botocore/data/kms" in names
        assert "usr/lib/python3/dist-packages/botocore/data/s3" not in names, "botocore models not trimmed"

        (root / "run").mkdir()
        (root / "run" / "mlp.weights").write_bytes((model / "mlp.weights").read_bytes())
        port = free_port()
        env = {"MODEL_PATH": "/run/mlp.weights", "PORT": str(port), "PATH": "/usr/bin:/bin"}
        server = subprocess.Popen(["/usr/sbin/chroot", "--userspec=1000:1000", root, "/usr/bin/python3", "/app/server.py"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            line = server.stdout.readline().decode()
            assert "listening on port %d" % port in line, "server did not start: %r" % line
            result = subprocess.run([sys.executable, EXAMPLE / "client.py", "--url", "http://127.0.0.1:%d" % port,
                                     "--testset", model / "testset.bin", "--reference", model / "reference.json"],
                                    capture_output=True, text=True)
            print(result.stdout.strip(), result.stderr.strip())
            assert result.returncode == 0, "classification differs from the reference"
            summary = json.loads(result.stdout)
            assert summary["images"] == 360 and summary["matches_reference"], summary
        finally:
            server.terminate()
            server.wait(10)
    print("python_image_test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
