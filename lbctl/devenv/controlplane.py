"""Run a real etcd + kube-apiserver on loopback, as controller-runtime's envtest does.

Used by the test suite and by ``lbctl demo``.  Both servers listen on free 127.0.0.1 ports,
keep their data on tmpfs with fsync off, and die with the process that started them (Linux
parent-death signal), so an interrupted run leaves no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from lbctl.devenv.build import Binaries, ensure_binaries

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
ADMIN_USER = "lbctl-admin"


class ControlPlaneStartError(RuntimeError):
    """etcd or kube-apiserver did not come up; the message carries the server's last log lines."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL it when the parent exits."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalControlPlane:
    """etcd and kube-apiserver as child processes; ``with LocalControlPlane() as cp: ...``."""

    def __init__(self, binaries: Binaries | None = None, workdir: Path | None = None) -> None:
        self.binaries = binaries or ensure_binaries()
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="lbctl-cp-", dir=base))
        self.token = secrets.token_hex(24)
        self.etcd_url = ""
        self.url = ""
        self.kubeconfig = self.workdir / "kubeconfig"
        self._procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def __enter__(self) -> LocalControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self._procs.append((name, proc, log))
        return proc

    def _fail(self, what: str) -> ControlPlaneStartError:
        logs = "\n".join(f"--- {name} log ---\n{_tail(log)}" for name, _, log in self._procs)
        self.stop()
        return ControlPlaneStartError(f"{what}\n{logs}")

    def _wait_ready(self, name: str, url: str, ctx: ssl.SSLContext | None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        headers = {"Authorization": f"Bearer {self.token}"} if ctx else {}
        while time.monotonic() < deadline:
            for proc_name, proc, _ in self._procs:
                if proc.poll() is not None:
                    raise self._fail(f"{proc_name} exited with code {proc.returncode}")
            try:
                request = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(request, timeout=2, context=ctx) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise self._fail(f"{name} was not ready at {url} within {START_TIMEOUT:.0f} s")

    def start(self) -> None:
        data = self.workdir / "etcd-data"
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=lbctl-test",
                f"--data-dir={data}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=lbctl-test={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait_ready("etcd", f"{self.etcd_url}/health", None)
        self._start_apiserver()

    def _write_auth_files(self) -> None:
        key, pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        if not key.exists():
            subprocess.run(
                ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
            )
            subprocess.run(
                ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
                check=True,
                capture_output=True,
            )
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)

    def _start_apiserver(self) -> None:
        self._write_auth_files()
        self.url = f"https://127.0.0.1:{free_port()}"
        self._launch_apiserver()
        self._write_kubeconfig(self.workdir / "certs" / "apiserver.crt")

    def _launch_apiserver(self) -> None:
        port = self.url.rsplit(":", 1)[1]
        self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers={self.etcd_url}",
                f"--secure-port={port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={self.workdir / 'certs'}",
                "--service-cluster-ip-range=10.0.0.0/16,fd00:10:96::/112",  # dual-stack
                # No kube-proxy here: a wide NodePort range lets benchmarks create 10,000+
                # LoadBalancer Services (the default 30000-32767 holds 2,768).
                "--service-node-port-range=10000-32767",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                f"--service-account-issuer={self.url}/",
                f"--service-account-key-file={self.workdir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--endpoint-reconciler-type=none",
                "--v=1",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        self._wait_ready("kube-apiserver", f"{self.url}/readyz", insecure)

    def _write_kubeconfig(self, ca_file: Path) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "lbctl-local",
                    "cluster": {"server": self.url, "certificate-authority": str(ca_file)},
                }
            ],
            "users": [{"name": ADMIN_USER, "user": {"token": self.token}}],
            "contexts": [
                {"name": "lbctl-local", "context": {"cluster": "lbctl-local", "user": ADMIN_USER}}
            ],
            "current-context": "lbctl-local",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)

    def stop_apiserver(self) -> None:
        """Stop only kube-apiserver (tests use this to cut watches); etcd keeps the data."""
        self._terminate([p for p in self._procs if p[0] == "kube-apiserver"])
        self._procs = [p for p in self._procs if p[0] != "kube-apiserver"]

    def restart_apiserver(self) -> None:
        """Start kube-apiserver again on the same port, certificates and token."""
        self.stop_apiserver()
        self._launch_apiserver()

    def pids(self) -> dict[str, int]:
        """Process id of each running component: ``etcd``, ``kube-apiserver``."""
        return {name: proc.pid for name, proc, _ in self._procs if proc.poll() is None}

    @contextlib.contextmanager
    def paused_apiserver(self) -> Iterator[None]:
        """Freeze kube-apiserver (SIGSTOP) inside the block: requests hang instead of failing,
        as with an overloaded server or a network partition that drops packets."""
        procs = [proc for name, proc, _ in self._procs if name == "kube-apiserver"]
        for proc in procs:
            proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGCONT)

    @staticmethod
    def _terminate(procs: list[tuple[str, subprocess.Popen[bytes], Path]]) -> None:
        for _, proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd; remove the data unless the caller gave the dir."""
        self._terminate(list(reversed(self._procs)))
        self._procs = []
        if self._own_workdir:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.workdir)
