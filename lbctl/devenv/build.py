"""Build kube-apiserver and etcd from Go modules into a per-user cache.

No registry ships these servers as binaries, so they are compiled from the pinned wrapper
modules in ``hack/controlplane/``.  A finished build is keyed by the versions and a hash of the
wrapper files, so a second call finds it and returns at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

WRAPPER_DIR = Path(__file__).resolve().parents[2] / "hack" / "controlplane"

Progress = Callable[[str], None]


class ControlPlaneBuildError(RuntimeError):
    """The control plane binaries could not be built; the message says which step failed."""


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    kube_version: str
    etcd_version: str


def _stderr(message: str) -> None:
    print(f"[controlplane] {message}", file=sys.stderr, flush=True)


def _required_version(go_mod: Path, module: str) -> str:
    pattern = rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v[^\s/]+)"
    match = re.search(pattern, go_mod.read_text(), re.M)
    if not match:
        raise ControlPlaneBuildError(f"{go_mod}: no 'require {module} vX' line")
    return match.group(1)


def versions(wrapper_dir: Path = WRAPPER_DIR) -> tuple[str, str]:
    """The pinned (kube-apiserver, etcd) versions, read from the wrapper go.mod files."""
    kube = _required_version(wrapper_dir / "kube-apiserver" / "go.mod", "k8s.io/kubernetes")
    etcd = _required_version(wrapper_dir / "etcd" / "go.mod", "go.etcd.io/etcd/server/v3")
    return kube, etcd


def cache_root() -> Path:
    explicit = os.environ.get("LBCTL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lbctl"


def _wrapper_digest(wrapper_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(wrapper_dir.glob("*/go.*")):
        digest.update(path.relative_to(wrapper_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def install_dir(wrapper_dir: Path = WRAPPER_DIR) -> Path:
    kube, etcd = versions(wrapper_dir)
    name = f"kube-{kube}_etcd-{etcd}_{_wrapper_digest(wrapper_dir)}"
    return cache_root() / "controlplane" / name


def _binaries(directory: Path, wrapper_dir: Path) -> Binaries:
    kube, etcd = versions(wrapper_dir)
    return Binaries(directory / "kube-apiserver", directory / "etcd", kube, etcd)


def find_binaries(wrapper_dir: Path = WRAPPER_DIR) -> Binaries | None:
    """The cached binaries if a complete build is present, else None.  Never builds."""
    found = _binaries(install_dir(wrapper_dir), wrapper_dir)
    if found.kube_apiserver.is_file() and found.etcd.is_file():
        return found
    return None


@contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{directory.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _heartbeat(what: str, progress: Progress, done: threading.Event) -> None:
    started = time.monotonic()
    while not done.wait(30):
        progress(f"  still building {what} ({time.monotonic() - started:.0f} s so far)")


def _go_build(
    *, what: str, module_dir: Path, package: str, output: Path, ldflags: str, progress: Progress
) -> None:
    env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-mod=readonly")
    command = ["go", "build", "-trimpath", "-o", str(output), "-ldflags", ldflags, package]
    done = threading.Event()
    ticker = threading.Thread(target=_heartbeat, args=(what, progress, done), daemon=True)
    ticker.start()
    started = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=module_dir, env=env, capture_output=True, text=True, check=False
        )
    finally:
        done.set()
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise ControlPlaneBuildError(
            f"building {what} failed (go build exit {result.returncode} in {module_dir}):\n{tail}"
        )
    progress(f"  built {what} in {time.monotonic() - started:.0f} s")


def ensure_binaries(progress: Progress = _stderr, wrapper_dir: Path = WRAPPER_DIR) -> Binaries:
    """Return the cached binaries, building them first if this machine has none yet."""
    found = find_binaries(wrapper_dir)
    if found:
        return found
    if shutil.which("go") is None:
        raise ControlPlaneBuildError(
            "the Go toolchain ('go') is not on PATH; it is needed once to build "
            "kube-apiserver and etcd"
        )
    target = install_dir(wrapper_dir)
    with _build_lock(target):
        found = find_binaries(wrapper_dir)
        if found:
            return found
        kube, etcd = versions(wrapper_dir)
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        progress(
            f"building the local control plane (kube-apiserver {kube}, etcd {etcd}) from Go "
            f"modules into {target}; the first build takes several minutes"
        )
        _go_build(
            what=f"etcd {etcd}",
            module_dir=wrapper_dir / "etcd",
            package="go.etcd.io/etcd/server/v3",
            output=staging / "etcd",
            ldflags="-s -w",
            progress=progress,
        )
        minor = kube.split(".")[1]
        stamp = "k8s.io/component-base/version"
        _go_build(
            what=f"kube-apiserver {kube}",
            module_dir=wrapper_dir / "kube-apiserver",
            package="k8s.io/kubernetes/cmd/kube-apiserver",
            output=staging / "kube-apiserver",
            ldflags=(
                f"-s -w -X {stamp}.gitVersion={kube} -X {stamp}.gitMajor=1 "
                f"-X {stamp}.gitMinor={minor} -X {stamp}.gitTreeState=clean"
            ),
            progress=progress,
        )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        progress(f"control plane binaries ready in {target}")
    return _binaries(target, wrapper_dir)
