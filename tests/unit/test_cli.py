"""The command line: bad settings exit 2 naming the setting; --help documents everything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lbctl.cli import settings_from


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


def test_without_vip_range_pools_come_from_vippool_objects_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No VIP_RANGE is no error: VipPool objects define the pools (as MetalLB's do)."""
    for name in ("VIP_RANGE", "VIP_RANGE_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings, _ = settings_from(["--kubeconfig", "/nonexistent"])
    assert settings.pools == ()
    blank, _ = settings_from(["--vip-range", "  "])
    assert blank.pools == ()


def test_vip_range_flag_is_checked_like_the_variable() -> None:
    """--vip-range goes through the same validation as VIP_RANGE."""
    result = lbctl("--vip-range", '["10.0.0.9 - 10.0.0.1"]')
    assert result.returncode == 2
    assert "is reversed" in result.stderr


def test_version_is_the_installed_distributions() -> None:
    """--version prints the version of the installed package, without needing any setting."""
    from importlib.metadata import version

    result = lbctl("--version", vip_range="not json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"lbctl {version('lbctl')}"


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
        ("--netscaler-url", "NS_URL"),
        ("--netscaler-username", "NS_USER"),
        ("--netscaler-password-file", "NS_PASSWORD_FILE"),
        ("--netscaler-ca-file", "NS_CA_FILE"),
        ("--netscaler-insecure", "NS_INSECURE"),
        ("--adc-prefix", "NS_APPS_NAME_PREFIX"),
        ("--adc-resync-period", "LBCTL_ADC_RESYNC_PERIOD"),
        ("--adc-workers", "LBCTL_ADC_WORKERS"),
    ]:
        assert flag in result.stdout
        assert env in result.stdout


NS_ENV = ("NS_URL", "NS_IP", "NS_PORT", "NS_PROTOCOL", "NS_USER", "NS_USER_FILE",
          "NS_PASSWORD", "NS_PASSWORD_FILE", "NS_CA_FILE", "NS_INSECURE", "NS_APPS_NAME_PREFIX")  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in NS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIP_RANGE", '["10.0.0.0/24"]')
    return monkeypatch


def test_netscaler_settings_from_files_and_env(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from lbctl.cli import settings_from

    (tmp_path / "user").write_text("svc-lbctl\n")
    (tmp_path / "password").write_text("pa55-from-secret\n")
    clean_env.setenv("NS_URL", "https://10.0.0.5")
    clean_env.setenv("NS_USER_FILE", str(tmp_path / "user"))
    clean_env.setenv("NS_PASSWORD_FILE", str(tmp_path / "password"))
    settings, _ = settings_from(["--adc-prefix", "prod1", "--adc-resync-period", "60"])
    adc = settings.adc
    assert adc is not None
    assert (adc.url, adc.username, adc.password) == (
        "https://10.0.0.5",
        "svc-lbctl",
        "pa55-from-secret",
    )
    assert (adc.prefix, adc.resync_period, adc.insecure) == ("prod1", 60.0, False)
    assert "pa55-from-secret" not in repr(settings)


def test_netscaler_ingress_controller_style_variables(clean_env: pytest.MonkeyPatch) -> None:
    from lbctl.cli import settings_from

    clean_env.setenv("NS_IP", "10.0.0.6")
    clean_env.setenv("NS_PORT", "8443")
    clean_env.setenv("NS_USER", "nsroot")
    clean_env.setenv("NS_PASSWORD", "x")
    settings, _ = settings_from([])
    assert settings.adc is not None
    assert settings.adc.url == "https://10.0.0.6:8443"


def test_without_a_netscaler_url_the_adc_is_off(clean_env: pytest.MonkeyPatch) -> None:
    from lbctl.cli import settings_from

    assert settings_from([])[0].adc is None


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        (
            {"NS_URL": "10.0.0.5"},
            [],
            "--netscaler-url must be http(s)://host[:port], got '10.0.0.5'",
        ),
        ({"NS_URL": "https://a"}, [], "no NITRO user"),
        ({"NS_URL": "https://a", "NS_USER": "u"}, [], "no NITRO password"),
        (
            {"NS_URL": "https://a", "NS_USER": "u", "NS_PASSWORD_FILE": "/nonexistent/pw"},
            [],
            "--netscaler-password-file '/nonexistent/pw': No such file",
        ),
        (
            {"NS_URL": "https://a", "NS_USER": "u", "NS_PASSWORD": "pw-Xy9"},
            ["--adc-prefix", "k8s-prod"],
            "--adc-prefix: ADC name prefix 'k8s-prod' must be 1-8 letters and digits",
        ),
        (
            {"NS_URL": "https://a", "NS_USER": "u", "NS_PASSWORD": "pw-Xy9"},
            ["--adc-resync-period", "0"],
            "--adc-resync-period must be at least 1 s",
        ),
        (
            {"NS_URL": "https://a", "NS_USER": "u", "NS_PASSWORD": "pw-Xy9"},
            ["--netscaler-ca-file", "/nonexistent/ca"],
            "--netscaler-ca-file '/nonexistent/ca' is not a file",
        ),
        (
            {"NS_URL": "https://a", "NS_USER": "u", "NS_PASSWORD": "pw-Xy9"},
            ["--netscaler-timeout", "0"],
            "--netscaler-timeout must be positive",
        ),
        (
            {"NS_URL": "https://a", "NS_USER": "u", "NS_PASSWORD": "pw-Xy9"},
            ["--adc-workers", "0"],
            "--adc-workers must be at least 1, got 0",
        ),
    ],
)
def test_bad_netscaler_settings_exit_2_naming_the_setting(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    from lbctl.cli import settings_from

    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(SystemExit) as caught:
        settings_from(args)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert env.get("NS_PASSWORD", "\0") not in err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("LBCTL_WORKERS", "argument --workers: invalid int value: 'many'"),
        ("LBCTL_ADC_WORKERS", "argument --adc-workers: invalid int value: 'many'"),
        ("NS_TIMEOUT", "argument --netscaler-timeout: invalid float value: 'many'"),
        (
            "LBCTL_LEADER_ELECT_RETRY_PERIOD",
            "argument --leader-elect-retry-period: invalid float value: 'many'",
        ),
    ],
)
def test_a_number_setting_from_the_environment_that_is_no_number_exits_2_naming_it(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: str, message: str
) -> None:
    """Not a traceback from building the parser (which every command, --help too, did)."""
    clean_env.setenv("VIP_RANGE", '["10.0.0.1"]')
    clean_env.setenv(env, "many")
    with pytest.raises(SystemExit) as caught:
        settings_from([])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err
