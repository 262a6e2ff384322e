"""Helpers for end-to-end runs of real shield-nitro processes: tests and the demo (not SDK API).

Import it explicitly (``from shield_nitro.testing import ProcessStack``); ``shield_nitro`` does
not export it.

    stack = ProcessStack("build/shield-nitro", Path("/tmp/run"))
    try:
        stack.start("kms-local", "kms-local", "--listen", f"127.0.0.1:{port}", ..., ready=port_open(port))
        stack.defer(lambda: stack.call("sim", "terminate", "--state", state))   # undone in close()
        stdout = stack.run("eif", "describe", "app.eif")                        # raises on exit != 0
    finally:
        stack.close()   # deferred actions and processes, newest first (SIGTERM, then SIGKILL)

``RecordingRelay`` stands where the parent relays bytes between two unix sockets and keeps
every byte of each direction, so a test can show what the parent could see.
"""
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path


class CommandFailed(AssertionError):
    """A shield-nitro command exited with an unexpected status, or a service did not start."""


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    """A readiness probe: true once something accepts TCP connections on host:port."""
    def probe():
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return True
        except OSError:
            return False
    return probe


class ProcessStack:
    """The shield-nitro processes of one run; close() undoes everything, newest first.

    echo: called with each command line (e.g. print, to narrate); None keeps quiet.
    """

    def __init__(self, cli, logs, echo=None):
        self.cli, self.logs, self.echo = str(cli), Path(logs), echo
        self._undo = []   # (name, callable), run in reverse by close()

    def _say(self, args, suffix="", program=None):
        if self.echo is not None:
            name = Path(program).name if program else "shield-nitro"
            self.echo(f"$ {name} " + " ".join(shlex.quote(str(a)) for a in args) + suffix)

    def call(self, *args, env=None, timeout=120, input=None):
        """Runs a command to its end; returns the CompletedProcess whatever its status."""
        return subprocess.run([self.cli, *map(str, args)], capture_output=True, timeout=timeout, env=env, input=input)

    def run(self, *args, env=None, timeout=120, expect=0):
        """Runs a command (narrated), checks its exit status is ``expect``, returns its stdout."""
        self._say(args)
        proc = self.call(*args, env=env, timeout=timeout)
        if proc.returncode != expect:
            raise CommandFailed(f"`shield-nitro {' '.join(map(str, args[:2]))}` exited {proc.returncode} "
                                f"(expected {expect}): {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    def start(self, name, *args, ready, env=None, timeout=30, program=None):
        """Starts a service (narrated, output in LOGS/name.log) and waits until ready() is true.

        program: another executable than the CLI (e.g. the enclave program shield-nitro-enclave).
        """
        self._say(args, " &", program)
        log_path = self.logs / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([str(program or self.cli), *map(str, args)], stdout=log, stderr=subprocess.STDOUT,
                                    env=env)
        self._undo.append((name, lambda: _stop(proc)))
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise CommandFailed(f"{name} did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        return proc

    def defer(self, action, name="deferred"):
        """Registers an action for close() (e.g. terminating an enclave started with `sim run`)."""
        self._undo.append((name, action))

    def close(self):
        """Undoes everything, newest first; every action runs even if an earlier one failed."""
        errors = []
        while self._undo:
            name, action = self._undo.pop()
            try:
                action()
            except Exception as e:  # noqa: BLE001 - keep cleaning up, report at the end
                errors.append(f"{name}: {e}")
        if errors:
            raise CommandFailed("cleanup failed: " + "; ".join(errors))


class _Countdown:
    """Calls action once, after tick() was called n times (from any threads)."""

    def __init__(self, n, action):
        self._n, self._action, self._lock = n, action, threading.Lock()

    def tick(self):
        with self._lock:
            self._n -= 1
            last = self._n == 0
        if last:
            self._action()


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RecordingRelay:
    """A unix-socket relay that appends each direction to DIR/conn-<n>.up (client -> target)
    and DIR/conn-<n>.down, like `shield-nitro proxy --record` does for TCP targets.

        with RecordingRelay(listen="/tmp/r/parent.sock", target="/tmp/enc/vsock/16_5000.sock", record=rec):
            client = EnclaveClient.connect("unix:/tmp/r/parent.sock")
    """

    def __init__(self, listen, target, record):
        self.listen, self.target, self.record = str(listen), str(target), Path(record)
        self.record.mkdir(parents=True, exist_ok=True)
        self.connections = 0
        self._threads = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(self.listen):
            os.unlink(self.listen)
        self._server.bind(self.listen)
        self._server.listen(16)
        self._closing = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self):
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            if self._closing:
                client.close()
                return
            self.connections += 1
            n = self.connections
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                upstream.close()
                continue
            done = _Countdown(2, lambda c=client, u=upstream: (c.close(), u.close()))
            for src, dst, suffix in ((client, upstream, "up"), (upstream, client, "down")):
                t = threading.Thread(target=self._pump, args=(src, dst, self.record / f"conn-{n}.{suffix}", done),
                                     daemon=True)
                t.start()
                self._threads.append(t)

    @staticmethod
    def _pump(src, dst, path, done):
        with open(path, "ab") as out:
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
                out.write(data)
                out.flush()
                try:
                    dst.sendall(data)
                except OSError:
                    break
        try:
            dst.shutdown(socket.SHUT_WR)  # propagate the half-close
        except OSError:
            pass
        done.tick()

    def close(self):
        """Stops accepting and waits for the relayed connections to end (their peers close them)."""
        self._closing = True
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        if os.path.exists(self.listen):
            os.unlink(self.listen)
        for t in self._threads:
            t.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Checklist:
    """Named expectations for script-style tests: prints each one, keeps going, remembers failures."""

    def __init__(self):
        self.failures = []

    def expect(self, cond, what):
        print(("ok:     " if cond else "FAILED: ") + what, flush=True)
        if not cond:
            self.failures.append(what)

    def exit_code(self):
        print(f"\n{'FAILED' if self.failures else 'PASSED'}: {len(self.failures)} failure(s)")
        return 1 if self.failures else 0
