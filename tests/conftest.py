"""Shared test configuration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.image_build import BuiltImage, build_from_tree


@pytest.fixture(scope="session")
def lbctl_image() -> Iterator[BuiltImage]:
    """The container image, built once per session from the working tree."""
    built = build_from_tree()
    yield built
    # Old builds' images that nothing uses any more; the layers this build used stay cached.
    built.podman.run("image", "prune", "--force")
