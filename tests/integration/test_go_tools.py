"""Go tools built from a pinned wrapper module besides the control plane (bench/metallb)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.peer_controllers import METALLB_WRAPPER, metallb_tool
from lbctl.devenv.build import GoBuildError


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
