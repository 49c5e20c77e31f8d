"""Build the development tools that no registry ships as binaries from pinned Go modules.

kube-apiserver and etcd (the local control plane), helm and kubectl (the tests' clients) are
compiled from the wrapper modules in ``hack/<tool>/`` into a per-user cache.  A finished build is
keyed by the versions and a hash of the wrapper files, so a second call finds it and returns at
once; a file lock lets parallel callers share one build.
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

HACK_DIR = Path(__file__).resolve().parents[2] / "hack"
WRAPPER_DIR = HACK_DIR / "controlplane"
HELM_WRAPPER_DIR = HACK_DIR / "helm"
KUBECTL_WRAPPER_DIR = HACK_DIR / "kubectl"

Progress = Callable[[str], None]


class GoBuildError(RuntimeError):
    """A tool could not be built; the message says which step failed."""


ControlPlaneBuildError = GoBuildError


class MissingWrapperError(GoBuildError):
    """The wrapper modules are absent: an installed wheel carries no ``hack/`` folder."""


@dataclass(frozen=True)
class GoBinary:
    """One binary of a tool: ``go build <package>`` inside ``wrapper_dir / module_dir``."""

    name: str
    module_dir: str
    package: str
    version_module: str
    """The module whose required version is this binary's version."""
    ldflags: Callable[[str, Path], str]
    """(version, wrapper go.mod) -> the linker flags."""
    release: Callable[[str], str] = str
    """The version of ``version_module`` -> the version the binary reports."""


@dataclass(frozen=True)
class GoTool:
    """A set of binaries built together into ``<cache>/<name>/<label>_<hash>/``."""

    name: str
    wrapper_dir: Path
    binaries: tuple[GoBinary, ...]
    label: Callable[[dict[str, str]], str]
    """binary name -> version, to the cache folder's name (without the hash)."""

    def go_mod(self, binary: GoBinary) -> Path:
        return self.wrapper_dir / binary.module_dir / "go.mod"

    def check_wrappers(self) -> None:
        """Raise MissingWrapperError naming the first absent go.mod."""
        for binary in self.binaries:
            if not self.go_mod(binary).is_file():
                raise MissingWrapperError(
                    f"the Go wrapper module for {binary.name} ({self.go_mod(binary)}) is not "
                    "in this installation; build from a clone of the lbctl repository"
                )

    def versions(self) -> dict[str, str]:
        self.check_wrappers()
        return {
            b.name: b.release(required_version(self.go_mod(b), b.version_module))
            for b in self.binaries
        }

    def install_dir(self) -> Path:
        name = f"{self.label(self.versions())}_{_wrapper_digest(self.wrapper_dir)}"
        return cache_root() / self.name / name

    def find(self) -> dict[str, Path] | None:
        """The cached binaries (name -> path) if a complete build is present.  Never builds."""
        directory = self.install_dir()
        found = {b.name: directory / b.name for b in self.binaries}
        return found if all(path.is_file() for path in found.values()) else None

    def ensure(self, progress: Progress) -> dict[str, Path]:
        """The cached binaries, built first if this machine has none yet."""
        found = self.find()
        if found:
            return found
        if shutil.which("go") is None:
            raise GoBuildError(
                f"the Go toolchain ('go') is not on PATH; it is needed once to build "
                f"{', '.join(b.name for b in self.binaries)}"
            )
        target = self.install_dir()
        versions = self.versions()
        with build_lock(target):
            found = self.find()
            if found:
                return found
            staging = target.with_name(target.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            what = ", ".join(f"{name} {version}" for name, version in versions.items())
            progress(
                f"building {what} from Go modules into {target}; the first build takes "
                "several minutes"
            )
            for binary in self.binaries:
                version = versions[binary.name]
                _go_build(
                    what=f"{binary.name} {version}",
                    module_dir=self.wrapper_dir / binary.module_dir,
                    package=binary.package,
                    output=staging / binary.name,
                    ldflags=binary.ldflags(version, self.go_mod(binary)),
                    progress=progress,
                )
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            progress(f"{self.name} binaries ready in {target}")
        return {b.name: target / b.name for b in self.binaries}


def _stderr(message: str) -> None:
    print(f"[build] {message}", file=sys.stderr, flush=True)


def required_version(go_mod: Path, module: str) -> str:
    """The version that ``go_mod`` requires of ``module``; GoBuildError if it requires none."""
    pattern = rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v[^\s/]+)"
    match = re.search(pattern, go_mod.read_text(), re.M)
    if not match:
        raise GoBuildError(f"{go_mod}: no 'require {module} vX' line")
    return match.group(1)


def cache_root() -> Path:
    explicit = os.environ.get("LBCTL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lbctl"


def _wrapper_digest(wrapper_dir: Path) -> str:
    """The module files and any Go source of the wrapper's own (a main package)."""
    digest = hashlib.sha256()
    for path in sorted({*wrapper_dir.rglob("go.*"), *wrapper_dir.rglob("*.go")}):
        digest.update(path.relative_to(wrapper_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock for building ``directory``, so concurrent builds wait, not race."""
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
        raise GoBuildError(
            f"building {what} failed (go build exit {result.returncode} in {module_dir}):\n{tail}"
        )
    progress(f"  built {what} in {time.monotonic() - started:.0f} s")


# The local control plane --------------------------------------------------------------------


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    kube_version: str
    etcd_version: str


def _kube_stamp(package: str, version: str) -> str:
    """Linker flags setting the version variables of a Kubernetes ``version`` package."""
    return (
        f"-X {package}.gitVersion={version} -X {package}.gitMajor=1 "
        f"-X {package}.gitMinor={version.split('.')[1]} -X {package}.gitTreeState=clean"
    )


def _kube_ldflags(version: str, _go_mod: Path) -> str:
    return f"-s -w {_kube_stamp('k8s.io/component-base/version', version)}"


def control_plane_tool(wrapper_dir: Path = WRAPPER_DIR) -> GoTool:
    """etcd first, then kube-apiserver (stamped so that /version reports the release)."""
    return GoTool(
        name="controlplane",
        wrapper_dir=wrapper_dir,
        binaries=(
            GoBinary(
                name="etcd",
                module_dir="etcd",
                package="go.etcd.io/etcd/server/v3",
                version_module="go.etcd.io/etcd/server/v3",
                ldflags=lambda _version, _go_mod: "-s -w",
            ),
            GoBinary(
                name="kube-apiserver",
                module_dir="kube-apiserver",
                package="k8s.io/kubernetes/cmd/kube-apiserver",
                version_module="k8s.io/kubernetes",
                ldflags=_kube_ldflags,
            ),
        ),
        label=lambda v: f"kube-{v['kube-apiserver']}_etcd-{v['etcd']}",
    )


def versions(wrapper_dir: Path = WRAPPER_DIR) -> tuple[str, str]:
    """The pinned (kube-apiserver, etcd) versions, read from the wrapper go.mod files."""
    found = control_plane_tool(wrapper_dir).versions()
    return found["kube-apiserver"], found["etcd"]


def install_dir(wrapper_dir: Path = WRAPPER_DIR) -> Path:
    return control_plane_tool(wrapper_dir).install_dir()


def _binaries(paths: dict[str, Path], wrapper_dir: Path) -> Binaries:
    kube, etcd = versions(wrapper_dir)
    return Binaries(paths["kube-apiserver"], paths["etcd"], kube, etcd)


def find_binaries(wrapper_dir: Path = WRAPPER_DIR) -> Binaries | None:
    """The cached binaries if a complete build is present, else None.  Never builds."""
    found = control_plane_tool(wrapper_dir).find()
    return _binaries(found, wrapper_dir) if found else None


def ensure_binaries(progress: Progress = _stderr, wrapper_dir: Path = WRAPPER_DIR) -> Binaries:
    """Return the cached binaries, building them first if this machine has none yet."""
    return _binaries(control_plane_tool(wrapper_dir).ensure(progress), wrapper_dir)


# helm ---------------------------------------------------------------------------------------


def _helm_ldflags(version: str, go_mod: Path) -> str:
    """As helm's own Makefile: the release, and the Kubernetes version of its client-go
    (v0.Y.Z is Kubernetes 1.Y) as the default for ``.Capabilities`` and lint."""
    minor = required_version(go_mod, "k8s.io/client-go").split(".")[1]
    flags = ["-s -w", f"-X helm.sh/helm/v3/internal/version.version={version}"]
    flags.append("-X helm.sh/helm/v3/internal/version.gitTreeState=clean")
    for package in ("pkg/lint/rules", "pkg/chartutil"):
        flags.append(f"-X helm.sh/helm/v3/{package}.k8sVersionMajor=1")
        flags.append(f"-X helm.sh/helm/v3/{package}.k8sVersionMinor={minor}")
    return " ".join(flags)


def helm_tool(wrapper_dir: Path = HELM_WRAPPER_DIR) -> GoTool:
    return GoTool(
        name="helm",
        wrapper_dir=wrapper_dir,
        binaries=(
            GoBinary(
                name="helm",
                module_dir=".",
                package="helm.sh/helm/v3/cmd/helm",
                version_module="helm.sh/helm/v3",
                ldflags=_helm_ldflags,
            ),
        ),
        label=lambda v: f"helm-{v['helm']}",
    )


def ensure_helm(progress: Progress = _stderr, wrapper_dir: Path = HELM_WRAPPER_DIR) -> Path:
    """The cached helm binary, built first if this machine has none yet."""
    return helm_tool(wrapper_dir).ensure(progress)["helm"]


# kubectl ------------------------------------------------------------------------------------


def kube_release(staging_version: str) -> str:
    """A staging module's ``v0.Y.Z`` tag -> the Kubernetes release ``v1.Y.Z`` it is cut from."""
    major, rest = staging_version.split(".", 1)
    if major != "v0":
        raise GoBuildError(f"{staging_version!r} is not a Kubernetes staging module version")
    return f"v1.{rest}"


def _kubectl_ldflags(version: str, _go_mod: Path) -> str:
    """As Kubernetes' own build: ``kubectl version`` reads component-base's version, the
    User-Agent client-go's."""
    packages = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    return "-s -w " + " ".join(_kube_stamp(package, version) for package in packages)


def kubectl_tool(wrapper_dir: Path = KUBECTL_WRAPPER_DIR) -> GoTool:
    """kubectl from its staging module, at the release of the control plane's kube-apiserver."""
    return GoTool(
        name="kubectl",
        wrapper_dir=wrapper_dir,
        binaries=(
            GoBinary(
                name="kubectl",
                module_dir=".",
                package=".",
                version_module="k8s.io/kubectl",
                ldflags=_kubectl_ldflags,
                release=kube_release,
            ),
        ),
        label=lambda v: f"kubectl-{v['kubectl']}",
    )


def ensure_kubectl(progress: Progress = _stderr, wrapper_dir: Path = KUBECTL_WRAPPER_DIR) -> Path:
    """The cached kubectl binary, built first if this machine has none yet."""
    return kubectl_tool(wrapper_dir).ensure(progress)["kubectl"]
