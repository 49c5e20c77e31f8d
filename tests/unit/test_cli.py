"""The command line: bad settings exit 2 naming the setting; --help documents everything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def lbctl(*args: str, vip_range: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VIP_RANGE"}
    if vip_range is not None:
        env["VIP_RANGE"] = vip_range
    return subprocess.run(
        [sys.executable, "-m", "lbctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("vip_range", "message"),
    [
        pytest.param('["10.0.0.0/33"]', "'10.0.0.0/33' is not a valid CIDR", id="bad-cidr"),
        pytest.param("not json", "VIP_RANGE is not valid JSON", id="bad-json"),
        pytest.param(
            '["10.0.0.0/24", "10.0.0.7"]', "'10.0.0.7' (pool 'default') overlaps", id="overlap"
        ),
    ],
)
def test_bad_vip_range_exits_2_naming_the_element(vip_range: str, message: str) -> None:
    """Start-up stops before touching the cluster, with exit code 2 and the offending element."""
    result = lbctl("--kubeconfig", "/nonexistent", vip_range=vip_range)
    assert result.returncode == 2
    assert message in result.stderr


def test_vip_range_can_come_from_a_file(tmp_path: Path) -> None:
    """A mounted ConfigMap key works like the variable, errors included."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text('["10.0.0.0/24"]\n')
    bad.write_text('["10.0.0.0/24", "10.0.0.0/25"]')
    assert "--vip-range-file" in lbctl("--help").stdout
    result = lbctl("--vip-range-file", str(bad))
    assert result.returncode == 2
    assert "overlaps" in result.stderr
    missing = lbctl("--vip-range-file", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "No such file" in missing.stderr
    both = lbctl("--vip-range-file", str(good), vip_range='["10.1.0.0/24"]')
    assert both.returncode == 2
    assert "given twice" in both.stderr


def test_missing_vip_range_exits_2() -> None:
    """No pools at all is a configuration error, not an idle controller."""
    result = lbctl("--kubeconfig", "/nonexistent")
    assert result.returncode == 2
    assert "VIP_RANGE is not set" in result.stderr


def test_vip_range_flag_is_checked_like_the_variable() -> None:
    """--vip-range goes through the same validation as VIP_RANGE."""
    result = lbctl("--vip-range", '["10.0.0.9 - 10.0.0.1"]')
    assert result.returncode == 2
    assert "is reversed" in result.stderr


def test_help_lists_every_setting_with_its_variable() -> None:
    """--help names each flag and its environment variable."""
    result = lbctl("--help")
    assert result.returncode == 0
    for flag, env in [
        ("--kubeconfig", "KUBECONFIG"),
        ("--vip-range", "VIP_RANGE"),
        ("--workers", "LBCTL_WORKERS"),
        ("--load-balancer-class", "LBCTL_LOAD_BALANCER_CLASS"),
        ("--metrics-bind-address", "LBCTL_METRICS_BIND_ADDRESS"),
        ("--log-level", "LBCTL_LOG_LEVEL"),
    ]:
        assert flag in result.stdout
        assert env in result.stdout
