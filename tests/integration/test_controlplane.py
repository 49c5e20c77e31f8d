"""The local control plane itself: versions, the build cache, failures, and no orphans."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from lbctl.devenv.build import WRAPPER_DIR, ControlPlaneBuildError, ensure_binaries, versions
from lbctl.devenv.controlplane import LocalControlPlane
from tests.waiting import eventually


def test_apiserver_reports_the_pinned_version(control_plane: LocalControlPlane) -> None:
    """/version carries the stamped release, not v0.0.0-master."""
    context = ssl.create_default_context(cafile=str(control_plane.workdir / "certs/apiserver.crt"))
    request = urllib.request.Request(
        f"{control_plane.url}/version",
        headers={"Authorization": f"Bearer {control_plane.token}"},
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        reported = json.load(response)
    kube_version, _ = versions()
    assert reported["gitVersion"] == kube_version


def test_second_call_finds_the_cached_binaries_without_building() -> None:
    """Once built, ensure_binaries() reports nothing and runs no build."""
    messages: list[str] = []
    binaries = ensure_binaries(progress=messages.append)
    assert messages == []
    assert os.access(binaries.kube_apiserver, os.X_OK)
    assert os.access(binaries.etcd, os.X_OK)


def test_a_failed_build_says_what_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken wrapper module fails with the step and Go's own error, not a silent skip."""
    wrapper = tmp_path / "controlplane"
    shutil.copytree(WRAPPER_DIR, wrapper)
    go_sum = wrapper / "etcd" / "go.sum"
    go_sum.write_text("")
    monkeypatch.setenv("LBCTL_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ControlPlaneBuildError) as caught:
        ensure_binaries(progress=lambda _: None, wrapper_dir=wrapper)
    message = str(caught.value)
    assert "building etcd" in message
    assert "go.sum" in message


async def test_servers_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    """SIGKILL of the owner (as when a test run is killed) leaves no etcd or apiserver behind."""
    script = textwrap.dedent(
        """
        import json
        import signal
        from lbctl.devenv.controlplane import LocalControlPlane
        plane = LocalControlPlane()
        plane.start()
        print(json.dumps(plane.pids()), flush=True)
        signal.pause()  # until the test kills this process
        """
    )
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=subprocess.PIPE
    )
    assert owner.stdout is not None
    by_name = json.loads(await owner.stdout.readline())
    assert set(by_name) == {"etcd", "kube-apiserver"}
    pids = list(by_name.values())
    owner.send_signal(signal.SIGKILL)
    await owner.wait()

    def all_gone() -> bool:
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            # A zombie is gone in all but name; it only waits for init to reap it.
            if "zombie" not in Path(f"/proc/{pid}/status").read_text().lower():
                return False
        return True

    await eventually(all_gone, within=20, what="servers exit after their owner")
