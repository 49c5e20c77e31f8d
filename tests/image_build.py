"""The container image built once per test session from the working tree, for the tests that
run it (tests/packaging/test_image.py, tests/integration/test_image_cluster.py).

The base is the locally built Debian one (lbctl.devenv.image), loaded under the Dockerfile's
default base name and pinned by its digest, as a release pins python:3.11-slim's.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from importlib.metadata import version

from lbctl.devenv.image import CONTAINER_ULIMITS, Podman, build_tree, cached_podman

VERSION = version("lbctl")


@dataclass(frozen=True)
class BuiltImage:
    podman: Podman
    tag: str
    image_id: str
    build_args: dict[str, str]

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


def build_from_tree() -> BuiltImage:
    """Build ``ghcr.io/lbctl/lbctl:<version>`` from this tree on the digest-pinned local base."""
    podman = cached_podman()
    built = build_tree(podman)
    return BuiltImage(podman, built.tag, built.image_id, built.build_args)
