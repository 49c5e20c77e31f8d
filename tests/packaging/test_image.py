"""The container image, built from the real Dockerfile with podman (tests/image_build.py), run
as it ships: non-root, read-only root filesystem, no network."""

from __future__ import annotations

import json
from pathlib import Path

from lbctl.devenv.image import IMAGE_NAME, REPO_ROOT, build_image
from tests.image_build import VERSION, BuiltImage

SIZE_LIMIT = 400 * 1000 * 1000  # bytes, as podman counts them (decimal MB)


def test_lbctl_runs_as_uid_65532_and_reports_the_package_version(lbctl_image: BuiltImage) -> None:
    uid = lbctl_image.run("-u", options=("--network=none", "--entrypoint=id"))
    assert (uid.returncode, uid.stdout.strip()) == (0, "65532"), uid.stderr
    reported = lbctl_image.run("--version")
    assert (reported.returncode, reported.stdout.strip()) == (0, f"lbctl {VERSION}"), reported
    help_text = lbctl_image.run("--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "--vip-range" in help_text.stdout


def test_whole_cli_path_runs_on_a_read_only_root(lbctl_image: BuiltImage) -> None:
    """lbctl imports its whole application and parses its settings without writing a file;
    a bad VIP_RANGE stops it with exit code 2 and a message naming the bad element."""
    imported = lbctl_image.run(
        "-c", "import lbctl.app, lbctl.cli", options=("--network=none", "--entrypoint=python")
    )
    assert imported.returncode == 0, imported.stderr
    refused = lbctl_image.run("--vip-range", '["10.0.0.300/24"]')
    assert refused.returncode == 2, refused
    assert "VIP_RANGE: '10.0.0.300/24' is not a valid CIDR" in refused.stderr


def test_image_has_no_compiler_installer_or_build_leftovers(lbctl_image: BuiltImage) -> None:
    script = (
        "for tool in gcc cc c++ pip pip3; do command -v $tool; done;"
        "for path in /root/.cache /wheels /tmp/wheels /src /opt/lbctl/bin/pip; do"
        " [ -e $path ] && echo $path; done;"
        "find / -xdev -path /proc -prune -o -type d -name pip -path '*cache*' -print;"
        "/opt/lbctl/bin/python -c 'import pip' 2>/dev/null && echo 'pip in /opt/lbctl';"
        "true"
    )
    found = lbctl_image.run("-c", script, options=("--network=none", "--user=0", "--entrypoint=sh"))
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == []


def test_image_is_labelled_and_small(lbctl_image: BuiltImage, tmp_path: Path) -> None:
    (inspected,) = json.loads(lbctl_image.podman.check("image", "inspect", lbctl_image.image_id))
    labels = inspected["Labels"]
    expected = {
        "title": "lbctl",
        "source": "https://github.com/lbctl/lbctl",
        "licenses": "Apache-2.0",
        "version": VERSION,
        "revision": lbctl_image.build_args["REVISION"],
        "created": lbctl_image.build_args["CREATED"],
    }
    for key, value in expected.items():
        assert labels[f"org.opencontainers.image.{key}"] == value, key
    assert labels["org.opencontainers.image.description"]
    assert inspected["Config"]["User"] == "65532:65532"
    size = int(inspected["Size"])
    report = tmp_path / "image-size.txt"
    report.write_text(f"{lbctl_image.tag} {size / 1e6:.1f} MB on the local Debian base\n")
    print(report.read_text(), end="")
    assert size < SIZE_LIMIT, report.read_text()


def test_dockerfile_default_base_name_builds_the_same_image(lbctl_image: BuiltImage) -> None:
    """The Dockerfile's default base (python:3.11-slim by name, no digest) resolves to the
    same base as the digest pin: the build is the same image, every layer from the cache."""
    by_name = build_image(
        lbctl_image.podman,
        REPO_ROOT,
        f"{IMAGE_NAME}:by-name",
        {name: value for name, value in lbctl_image.build_args.items() if name != "BASE_IMAGE"},
    )
    try:
        assert by_name == lbctl_image.image_id
    finally:
        lbctl_image.podman.run("untag", by_name, f"{IMAGE_NAME}:by-name")
