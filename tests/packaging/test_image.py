"""The container image, built from the real Dockerfile with podman and run.

The base is the locally built Debian one (lbctl.devenv.image), loaded under the Dockerfile's
default base name and pinned by its digest, as a release pins python:3.11-slim's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

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

ROOT = Path(__file__).resolve().parents[2]
VERSION = version("lbctl")
TAG = f"{IMAGE_NAME}:{VERSION}"
SIZE_LIMIT = 400 * 1000 * 1000  # bytes, as podman counts them (decimal MB)


@dataclass(frozen=True)
class Built:
    podman: Podman
    image_id: str
    base_digest: str
    revision: str
    created: str


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def built() -> Iterator[Built]:
    """The image, built once for this module from the working tree with a digest-pinned base."""
    podman = cached_podman()
    digest = load_base(podman, ensure_base_archive())
    revision, created = git("rev-parse", "HEAD"), git("log", "-1", "--format=%cI")
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
    yield Built(podman, image_id, digest, revision, created)
    # Old builds' images that nothing uses any more; the layers this build used stay cached.
    podman.run("image", "prune", "--force")


def run(built: Built, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the image with a read-only root filesystem and no network; ``args`` go after the
    image (the entrypoint's arguments) unless they start with ``--entrypoint=``."""
    options = [arg for arg in args if arg.startswith("--entrypoint=")]
    rest = [arg for arg in args if not arg.startswith("--entrypoint=")]
    return built.podman.run(
        "run",
        "--rm",
        "--read-only",
        "--network=none",
        *(f"--ulimit={limit}" for limit in CONTAINER_ULIMITS),
        *([f"--user={user}"] if user else []),
        *options,
        built.image_id,
        *rest,
    )


def test_lbctl_runs_as_uid_65532_and_reports_the_package_version(built: Built) -> None:
    uid = run(built, "--entrypoint=id", "-u")
    assert (uid.returncode, uid.stdout.strip()) == (0, "65532"), uid.stderr
    reported = run(built, "--version")
    assert (reported.returncode, reported.stdout.strip()) == (0, f"lbctl {VERSION}"), reported
    help_text = run(built, "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "--vip-range" in help_text.stdout


def test_whole_cli_path_runs_on_a_read_only_root(built: Built) -> None:
    """lbctl imports its whole application and parses its settings without writing a file;
    a bad VIP_RANGE stops it with exit code 2 and a message naming the bad element."""
    imported = run(built, "--entrypoint=python", "-c", "import lbctl.app, lbctl.cli")
    assert imported.returncode == 0, imported.stderr
    refused = run(built, "--vip-range", '["10.0.0.300/24"]')
    assert refused.returncode == 2, refused
    assert "VIP_RANGE: '10.0.0.300/24' is not a valid CIDR" in refused.stderr


def test_image_has_no_compiler_installer_or_build_leftovers(built: Built) -> None:
    script = (
        "for tool in gcc cc c++ pip pip3; do command -v $tool; done;"
        "for path in /root/.cache /wheels /tmp/wheels /src /opt/lbctl/bin/pip; do"
        " [ -e $path ] && echo $path; done;"
        "find / -xdev -path /proc -prune -o -type d -name pip -path '*cache*' -print;"
        "/opt/lbctl/bin/python -c 'import pip' 2>/dev/null && echo 'pip in /opt/lbctl';"
        "true"
    )
    found = run(built, "--entrypoint=sh", "-c", script, user="0")
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == []


def test_image_is_labelled_and_small(built: Built, tmp_path: Path) -> None:
    (inspected,) = json.loads(built.podman.check("image", "inspect", built.image_id))
    labels = inspected["Labels"]
    expected = {
        "title": "lbctl",
        "source": "https://github.com/lbctl/lbctl",
        "licenses": "Apache-2.0",
        "version": VERSION,
        "revision": built.revision,
        "created": built.created,
    }
    for key, value in expected.items():
        assert labels[f"org.opencontainers.image.{key}"] == value, key
    assert labels["org.opencontainers.image.description"]
    assert inspected["Config"]["User"] == "65532:65532"
    size = int(inspected["Size"])
    report = tmp_path / "image-size.txt"
    report.write_text(f"{TAG} {size / 1e6:.1f} MB on the local Debian base\n")
    print(report.read_text(), end="")
    assert size < SIZE_LIMIT, report.read_text()


def test_dockerfile_default_base_name_builds_the_same_image(built: Built) -> None:
    """The Dockerfile's default base (python:3.11-slim by name, no digest) resolves to the
    same base as the digest pin: the build is the same image, every layer from the cache."""
    by_name = build_image(
        built.podman,
        ROOT,
        f"{IMAGE_NAME}:by-name",
        {"VERSION": VERSION, "REVISION": built.revision, "CREATED": built.created},
    )
    try:
        assert by_name == built.image_id
    finally:
        built.podman.run("untag", by_name, f"{IMAGE_NAME}:by-name")
