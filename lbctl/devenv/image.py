"""Build and run the container image with podman, without reaching a container registry.

The Dockerfile's base (``python:3.11-slim``) cannot be pulled where no registry is reachable,
so :func:`ensure_base_archive` builds a base of the same role with mmdebstrap from Debian
bookworm packages (python3 3.11, its venv module and the CA certificates, nothing else) and
keeps it as an OCI archive in the cache, keyed by a hash of the recipe: a second call finds it
and returns at once.  :func:`load_base` gives it the name the Dockerfile's ``FROM`` uses, so the
real Dockerfile is what gets built.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lbctl.devenv.build import Progress, build_lock, cache_root

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_NAME = "ghcr.io/lbctl/lbctl"
# The Dockerfile's default BASE_IMAGE, fully qualified as podman stores it.
UPSTREAM_BASE = "docker.io/library/python:3.11-slim"
UPSTREAM_BASE_REPOSITORY = "docker.io/library/python"
# The Dockerfile's build stage, kept as a layer cache.
BUILD_STAGE_TAG = "localhost/lbctl-build-stage:latest"

_SUITE = "bookworm"
_SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
_BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Documentation, manual pages and translations are left out; licences stay.
_PATH_FILTERS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)
_BASE_CONFIG = ('CMD ["python3"]', "ENV LANG=C.UTF-8")
# Container resource limits.  podman's defaults (about a million open files) cannot be set by
# a root without CAP_SYS_RESOURCE, as in sandboxed CI machines; these suit lbctl and pip.
CONTAINER_ULIMITS = ("nofile=4096:4096", "nproc=4096:4096")
# Build arguments the Dockerfile turns into OCI labels.
_LABEL_ARGS = {"VERSION": "version", "REVISION": "revision", "CREATED": "created"}
# Where the build's pip finds the CA bundle named by the caller's PIP_CERT (or SSL_CERT_FILE).
_BUILD_CA_PATH = "/run/lbctl-build-ca.pem"


class ImageBuildError(RuntimeError):
    """A base or image build step failed; the message names the step and ends with its output."""


def _stderr(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def base_recipe() -> list[str]:
    """The mmdebstrap arguments that build the base's root filesystem, without the output."""
    return [
        "mmdebstrap",
        "--quiet",
        "--variant=essential",
        f"--include={','.join(_BASE_PACKAGES)}",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        *(f"--dpkgopt={rule}" for rule in _PATH_FILTERS),
        "--format=tar",
        _SUITE,
    ]


def base_archive() -> Path:
    """Where the base's OCI archive is cached: ``~/.cache/lbctl/image/base-...-<hash>.oci.tar``."""
    digest = hashlib.sha256("\n".join([*base_recipe(), *_SOURCES, *_BASE_CONFIG]).encode())
    return cache_root() / "image" / f"base-{_SUITE}-python3.11_{digest.hexdigest()[:12]}.oci.tar"


def _run(argv: list[str], what: str, timeout: float = 1800) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise ImageBuildError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


@dataclass(frozen=True)
class Podman:
    """podman on a storage of its own (``root``, state in ``runroot``), set up to work as root
    on machines without systemd or cgroup v2: cgroupfs, runc, file events, lower ulimits."""

    root: Path
    runroot: Path

    def argv(self, *args: str) -> list[str]:
        return [
            "podman",
            f"--root={self.root}",
            f"--runroot={self.runroot}",
            f"--tmpdir={self.runroot / 'libpod'}",
            "--storage-driver=overlay",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
            "--runtime=runc",
            *args,
        ]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``podman args``; the caller judges the exit code."""
        return subprocess.run(
            self.argv(*args), capture_output=True, text=True, timeout=timeout, check=False
        )

    def check(self, *args: str, timeout: float = 1800) -> str:
        """Run ``podman args`` and return its stdout; ImageBuildError if it fails."""
        return _run(self.argv(*args), f"podman {' '.join(args[:2])}", timeout)


def cached_podman() -> Podman:
    """podman on the cache's storage (``~/.cache/lbctl/image/storage``), so a later run reuses
    the loaded base and the build's layers.  Its run state lives beside it (``run``): podman
    refuses a storage whose run state directory has moved."""
    return Podman(root=cache_root() / "image" / "storage", runroot=cache_root() / "image" / "run")


def ensure_base_archive(progress: Progress = _stderr) -> Path:
    """The cached base archive, building it first (about 1.5 min) if this machine has none."""
    target = base_archive()
    if target.is_file():
        return target
    with build_lock(target):
        if target.is_file():
            return target
        for tool in ("mmdebstrap", "podman"):
            if shutil.which(tool) is None:
                raise ImageBuildError(f"'{tool}' is not on PATH (./hack/install-debian-packages)")
        progress(f"building the local Python base from Debian {_SUITE} into {target}")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="lbctl-base-") as scratch:
            work = Path(scratch)
            rootfs = work / "rootfs.tar"
            _run([*base_recipe(), str(rootfs), *_SOURCES], "mmdebstrap (the base's packages)")
            podman = Podman(root=work / "storage", runroot=work / "run")
            changes = [f"--change={line}" for line in _BASE_CONFIG]
            podman.check("import", "--quiet", *changes, str(rootfs), "localhost/lbctl-base")
            staging = target.with_name(target.name + ".partial")
            staging.unlink(missing_ok=True)
            podman.check("save", "--quiet", "--format=oci-archive", "-o", str(staging),
                         "localhost/lbctl-base")  # fmt: skip
        staging.rename(target)
        progress(f"base ready in {time.monotonic() - started:.0f} s")
    return target


def load_base(podman: Podman, archive: Path) -> str:
    """Load the base archive into ``podman``'s storage under the Dockerfile's default base name;
    return its manifest digest (``sha256:...``), by which a build can pin it."""
    podman.check("load", "--quiet", "--input", str(archive))
    podman.check("tag", "localhost/lbctl-base", UPSTREAM_BASE)
    digest = podman.check("image", "inspect", "--format={{.Digest}}", UPSTREAM_BASE).strip()
    if not digest.startswith("sha256:"):
        raise ImageBuildError(f"the loaded base has no manifest digest: {digest!r}")
    return digest


def host_build_options() -> list[str]:
    """Build options that pass this machine's pip settings to the build stage: its package
    index, and its CA bundle (mounted read-only) where TLS to the index is inspected."""
    options = []
    index = os.environ.get("PIP_INDEX_URL")
    if index:
        options.append(f"--build-arg=PIP_INDEX_URL={index}")
    ca_file = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if ca_file and Path(ca_file).is_file():
        options += [
            f"--volume={Path(ca_file).resolve()}:{_BUILD_CA_PATH}:ro",
            f"--build-arg=PIP_CERT={_BUILD_CA_PATH}",
        ]
    return options


def build_image(
    podman: Podman, context: Path, tag: str, build_args: dict[str, str], timeout: float = 1800
) -> str:
    """Build ``context``'s Dockerfile as ``tag`` (never pulling: the base must be loaded) and
    return the image ID.  The build stage reaches the package index over the host network and
    is tagged too (:data:`BUILD_STAGE_TAG`), so pruning unused images keeps its layers, the
    pinned dependencies' above all, for the next build."""
    options = [
        "--pull=never",
        "--layers",
        "--network=host",
        *(f"--ulimit={limit}" for limit in CONTAINER_ULIMITS),
        *host_build_options(),
        *(f"--build-arg={name}={value}" for name, value in sorted(build_args.items())),
        # podman 4.3 (buildah 1.28) leaves build arguments out of its layer cache key, so a
        # cached LABEL step would keep an older build's values; labels given here count.
        *(
            f"--label=org.opencontainers.image.{label}={build_args[name]}"
            for name, label in _LABEL_ARGS.items()
            if name in build_args
        ),
    ]
    podman.check("build", *options, "--target=build", f"--tag={BUILD_STAGE_TAG}", str(context),
                 timeout=timeout)  # fmt: skip
    podman.check("build", *options, f"--tag={tag}", str(context), timeout=timeout)
    return podman.check("image", "inspect", "--format={{.Id}}", tag).strip()


def _git(root: Path, *args: str) -> str:
    found = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() if found.returncode == 0 else "unknown"


@dataclass(frozen=True)
class TreeImage:
    """An image built from a source tree: its tag, image ID and the build arguments used
    (BASE_IMAGE with the base's digest, VERSION, REVISION, CREATED)."""

    tag: str
    image_id: str
    build_args: dict[str, str]


def build_tree(podman: Podman, root: Path = REPO_ROOT) -> TreeImage:
    """Build ``ghcr.io/lbctl/lbctl:<version>`` from the tree at ``root`` on the local base,
    pinned by digest; the labels take the tree's last commit (hash and commit time)."""
    from lbctl import __version__

    digest = load_base(podman, ensure_base_archive())
    tag = f"{IMAGE_NAME}:{__version__}"
    build_args = {
        "BASE_IMAGE": f"{UPSTREAM_BASE_REPOSITORY}@{digest}",
        "VERSION": __version__,
        "REVISION": _git(root, "rev-parse", "HEAD"),
        "CREATED": _git(root, "log", "-1", "--format=%cI"),
    }
    return TreeImage(tag, build_image(podman, root, tag, build_args), build_args)


def main() -> int:
    """``python -m lbctl.devenv.image``: build the image from this tree into the cache's podman
    storage and say how to run it."""
    podman = cached_podman()
    try:
        built = build_tree(podman)
    except ImageBuildError as err:
        print(f"lbctl image: {err}", file=sys.stderr)
        return 1
    size = podman.check("image", "inspect", "--format={{.Size}}", built.image_id).strip()
    base = built.build_args["BASE_IMAGE"]
    print(f"{built.tag} {built.image_id[:12]} ({int(size) / 1e6:.0f} MB) on {base}")
    limits = [f"--ulimit={limit}" for limit in CONTAINER_ULIMITS]
    print(f"run it: {' '.join(podman.argv('run', '--rm', *limits, built.tag, '--help'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
