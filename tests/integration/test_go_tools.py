"""Go tools built from a pinned wrapper module besides the control plane: the tests' kubectl,
and bench/metallb."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.peer_controllers import METALLB_WRAPPER, metallb_tool
from lbctl.devenv.build import (
    KUBECTL_WRAPPER_DIR,
    WRAPPER_DIR,
    GoBuildError,
    ensure_kubectl,
    kube_release,
    kubectl_tool,
    required_version,
)
from tests.chart import kubectl_binary

CONTROL_PLANE_RELEASE = required_version(
    WRAPPER_DIR / "kube-apiserver" / "go.mod", "k8s.io/kubernetes"
)


def test_kubectl_wrapper_pins_the_control_planes_release() -> None:
    """kubectl and the staging modules it is run with are cut from the kube-apiserver's release."""
    go_mod = KUBECTL_WRAPPER_DIR / "go.mod"
    for module in (
        "k8s.io/kubectl",
        "k8s.io/cli-runtime",
        "k8s.io/component-base",
        "k8s.io/client-go",
    ):
        assert kube_release(required_version(go_mod, module)) == CONTROL_PLANE_RELEASE, module


def test_kubectl_reports_the_pinned_release_and_is_built_once() -> None:
    """After the first call, a second finds the cached binary without building anything."""
    built = kubectl_binary()
    messages: list[str] = []
    assert ensure_kubectl(progress=messages.append) == built
    assert messages == []
    result = subprocess.run(
        [built, "version", "--client", "-o", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    client = json.loads(result.stdout)["clientVersion"]
    assert (client["gitVersion"], client["major"], client["minor"]) == (
        CONTROL_PLANE_RELEASE,
        "1",
        CONTROL_PLANE_RELEASE.split(".")[1],
    )


def test_a_changed_wrapper_main_package_is_a_new_build(tmp_path: Path) -> None:
    """The cache key covers the wrapper's own Go source, not only go.mod and go.sum."""
    wrapper = tmp_path / "kubectl"
    shutil.copytree(KUBECTL_WRAPPER_DIR, wrapper)
    before = kubectl_tool(wrapper).install_dir()
    assert before == kubectl_tool().install_dir()
    main = wrapper / "main.go"
    main.write_text(main.read_text() + "\n// changed\n")
    assert kubectl_tool(wrapper).install_dir() != before


def test_a_staging_version_maps_to_its_kubernetes_release() -> None:
    assert kube_release("v0.35.4") == "v1.35.4"
    with pytest.raises(GoBuildError):
        kube_release("v1.35.4")


def test_a_failed_tool_build_says_what_failed_and_caches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrapper whose go.sum lost its hashes fails with the tool's name and Go's own error,
    and leaves no binary in the cache for the next call to find."""
    wrapper = tmp_path / "metallb"
    shutil.copytree(METALLB_WRAPPER, wrapper)
    (wrapper / "go.sum").write_text("")
    cache = tmp_path / "cache"
    monkeypatch.setenv("LBCTL_CACHE_DIR", str(cache))
    with pytest.raises(GoBuildError) as caught:
        metallb_tool(wrapper).ensure(lambda _: None)
    message = str(caught.value)
    assert "metallb v0.15.3" in message
    assert "go.sum" in message
    assert not [p for p in cache.rglob("metallb") if p.is_file()]
