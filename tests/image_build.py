"""The container image built once per test session from the working tree, for the tests that
run it (tests/packaging/test_image.py, tests/integration/test_image_cluster.py).

The base is the locally built Debian one (lbctl.devenv.image), loaded under the Dockerfile's
default base name and pinned by its digest, as a release pins python:3.11-slim's.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from lbctl.devenv.image import (
    CONTAINER_ULIMITS,
    IMAGE_NAME,
    UPSTREAM_BASE_REPOSITORY,
    Podman,
    build_image,
    cached_podman,
    ensure_base_archive,
    load_base,
)

ROOT = Path(__file__).resolve().parents[1]
VERSION = version("lbctl")
TAG = f"{IMAGE_NAME}:{VERSION}"


@dataclass(frozen=True)
class BuiltImage:
    podman: Podman
    image_id: str
    base_digest: str
    revision: str
    created: str

    def run(self, *args: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """Run the image with a read-only root filesystem and no network (unless ``options``
        say otherwise); ``args`` go to the entrypoint."""
        return self.podman.run(
            "run",
            "--rm",
            "--read-only",
            *(f"--ulimit={limit}" for limit in CONTAINER_ULIMITS),
            *(options or ("--network=none",)),
            self.image_id,
            *args,
        )


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def build_from_tree() -> BuiltImage:
    """Build ``ghcr.io/lbctl/lbctl:<version>`` from this tree on the digest-pinned local base."""
    podman = cached_podman()
    digest = load_base(podman, ensure_base_archive())
    revision, created = _git("rev-parse", "HEAD"), _git("log", "-1", "--format=%cI")
    image_id = build_image(
        podman,
        ROOT,
        TAG,
        {
            "BASE_IMAGE": f"{UPSTREAM_BASE_REPOSITORY}@{digest}",
            "VERSION": VERSION,
            "REVISION": revision,
            "CREATED": created,
        },
    )
    return BuiltImage(podman, image_id, digest, revision, created)
