"""The Helm chart without an apiserver: lint, the schema's refusals, the objects rendered for
several value sets, and no drift from the kustomize manifests."""

from __future__ import annotations

import dataclasses
import inspect
import json
import tomllib
from typing import Any

import pytest
import yaml

from lbctl.config import AdcSettings
from lbctl.devenv.build import HELM_WRAPPER_DIR, ensure_helm, required_version
from lbctl.reconcile.controller import Controller
from tests.chart import (
    CHART,
    MANIFESTS,
    CommandFailed,
    by_key,
    helm,
    kustomized,
    one,
    render,
    without_helm_labels,
)

VERSION = tomllib.loads((CHART.parents[1] / "pyproject.toml").read_text())["project"]["version"]
DIGEST = "sha256:" + "ab" * 32


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    return dict(only)


def test_helm_is_the_pinned_release_and_built_once() -> None:
    """A second call finds the cached binary without building; it reports the pinned version."""
    messages: list[str] = []
    ensure_helm(progress=messages.append)
    assert messages == []
    pinned = required_version(HELM_WRAPPER_DIR / "go.mod", "helm.sh/helm/v3")
    assert helm("version", "--template", "{{.Version}}") == pinned


def test_chart_and_app_versions_are_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["apiVersion"], chart["version"], chart["appVersion"]) == ("v2", VERSION, VERSION)
    assert container(render())["image"] == f"ghcr.io/lbctl/lbctl:{VERSION}"


def test_crds_are_the_manifests_crds() -> None:
    """The chart's crds/ holds byte-for-byte the files of manifests/crds/."""
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").iterdir()}
    manifests = {p.name: p.read_bytes() for p in (MANIFESTS / "crds").iterdir()}
    assert chart == manifests
    assert len(chart) == 3


def test_lint_passes_also_strict() -> None:
    assert "0 chart(s) failed" in helm("lint", str(CHART))
    assert "0 chart(s) failed" in helm("lint", "--strict", str(CHART))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicas": 0}, "at '/replicas': minimum: got 0, want 1"),
        ({"replica": 1}, "additional properties 'replica' not allowed"),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        ({"netscaler": {"appsNamePrefix": "lbctl-prod"}}, "at '/netscaler/appsNamePrefix'"),
        ({"logLevel": "verbose"}, "at '/logLevel'"),
        ({"vipRange": "10.0.0.0/24"}, "at '/vipRange': got string, want array"),
        ({"vipPools": [{"name": "web"}]}, "missing property 'spec'"),
    ],
)
def test_values_against_the_schema_fail_lint_and_template(
    values: dict[str, Any], message: str
) -> None:
    for command in (["lint", str(CHART)], ["template", "lbctl", str(CHART)]):
        with pytest.raises(CommandFailed) as caught:
            helm(*command, values=values)
        assert message in caught.value.output, caught.value.output


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"leaderElection": {"enabled": False}}, "replicas > 1 needs leaderElection.enabled"),
        ({"netscaler": {"existingSecret": "s", "username": "u", "password": "p"}}, "not both"),
        ({"netscaler": {"username": "u"}}, "username and password are set together"),
    ],
)
def test_inconsistent_values_fail_template_and_install(
    values: dict[str, Any], message: str
) -> None:
    """Checks across values fail rendering (``helm lint`` only reports a template's ``fail``)."""
    with pytest.raises(CommandFailed) as caught:
        helm("template", "lbctl", str(CHART), values=values)
    assert message in caught.value.output, caught.value.output


def test_default_rendering_is_the_kustomize_manifests() -> None:
    """Release lbctl in lbctl-system renders exactly the kustomize objects but the Namespace
    (``helm install --create-namespace`` makes it), up to Helm's own labels."""
    manifests = by_key(kustomized())
    chart = by_key(without_helm_labels(render(crds=True)))
    assert set(manifests) - set(chart) == {("Namespace", "", "lbctl-system")}
    assert set(chart) - set(manifests) == set()
    for key, rendered in chart.items():
        assert rendered == manifests[key], key


def test_termination_grace_outlasts_lbctl_shutdown() -> None:
    """Drain (Controller.run's grace) + Lease release (2 x 2 s) + NITRO logout (its timeout)."""
    drain = inspect.signature(Controller.run).parameters["grace"].default
    timeout = next(f for f in dataclasses.fields(AdcSettings) if f.name == "timeout").default
    shutdown = drain + 2 * 2.0 + timeout
    pod = one(kustomized(), "Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= shutdown + 10


def test_field_refs_name_their_api_version() -> None:
    """Server-side apply after a client-side one conflicts on a defaulted fieldRef.apiVersion."""
    for objects in (kustomized(), render()):
        sources = [e["valueFrom"] for e in container(objects)["env"] if "valueFrom" in e]
        refs = [source["fieldRef"] for source in sources if "fieldRef" in source]
        assert [ref["fieldPath"] for ref in refs] == ["metadata.name", "metadata.namespace"]
        assert all(ref["apiVersion"] == "v1" for ref in refs)


def test_existing_secret_is_mounted_and_none_is_created() -> None:
    objects = render({"netscaler": {"url": "https://10.0.0.5", "existingSecret": "adc-login"}})
    assert not [o for o in objects if o["kind"] == "Secret"]
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "netscaler", "secret": {"secretName": "adc-login", "optional": True}} in volumes
    assert one(objects, "ConfigMap", "lbctl-config")["data"]["NS_URL"] == "https://10.0.0.5"


def test_secret_created_from_values() -> None:
    objects = render({"netscaler": {"username": "nsroot", "password": "s3cret"}}, release="edge")
    secret = one(objects, "Secret")
    assert secret["metadata"]["name"] == "edge-lbctl-netscaler"
    assert secret["stringData"] == {"username": "nsroot", "password": "s3cret"}
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert volumes[1]["secret"]["secretName"] == "edge-lbctl-netscaler"


def test_class_namespace_scope_logging_and_extra_args() -> None:
    objects = render(
        {
            "loadBalancerClass": "example.com/lbctl",
            "watchNamespace": "shop",
            "logFormat": "console",
            "logLevel": "debug",
            "extraArgs": ["--workers", "8"],
            "extraEnv": [{"name": "NS_TIMEOUT", "value": "20"}],
            "netscaler": {"appsNamePrefix": "prod"},
        }
    )
    args = container(objects)["args"]
    assert args == [
        "--metrics-bind-address", ":8080", "--log-format", "console", "--log-level", "debug",
        "--leader-elect-lease-name", "lbctl", "--load-balancer-class", "example.com/lbctl", "--namespace", "shop", "--workers", "8",
    ]  # fmt: skip
    assert {"name": "NS_TIMEOUT", "value": "20"} in container(objects)["env"]
    assert one(objects, "ConfigMap")["data"]["NS_APPS_NAME_PREFIX"] == "prod"


def test_one_replica_without_leader_election() -> None:
    """No Lease RBAC, no PodDisruptionBudget (it would block every drain), --no-leader-elect."""
    objects = render({"replicas": 1, "leaderElection": {"enabled": False}})
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"Role", "RoleBinding", "PodDisruptionBudget"}
    assert one(objects, "Deployment")["spec"]["replicas"] == 1
    assert "--no-leader-elect" in container(objects)["args"]
    assert "--no-leader-elect" not in container(render())["args"]
    assert "--leader-elect-lease-name" not in container(objects)["args"]


def test_each_release_elects_on_its_own_lease() -> None:
    args = container(render(release="edge"))["args"]
    assert args[args.index("--leader-elect-lease-name") + 1] == "edge-lbctl"


def test_digest_wins_over_tag() -> None:
    image = {"repository": "registry.example/lbctl", "tag": "9.9.9", "digest": DIGEST}
    objects = render({"image": {**image, "pullPolicy": "Always"}})
    assert container(objects)["image"] == f"registry.example/lbctl@{DIGEST}"
    assert container(objects)["imagePullPolicy"] == "Always"
    tagged = render({"image": {"repository": "registry.example/lbctl", "tag": "9.9.9"}})
    assert container(tagged)["image"] == "registry.example/lbctl:9.9.9"


def test_scheduling_values() -> None:
    toleration = {"key": "infra", "operator": "Exists", "effect": "NoSchedule"}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "infra", "operator": "Exists"}]}]}}}  # fmt: skip
    zone = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "lbctl"}}}  # fmt: skip
    objects = render(
        {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [toleration],
            "affinity": affinity,
            "topologySpreadConstraints": [zone],
            "priorityClassName": "system-cluster-critical",
            "resources": {"requests": {"cpu": "100m"}},
            "podSecurityContext": {"runAsUser": 65532},
            "securityContext": {"privileged": False},
            "replicas": 3,
            "podDisruptionBudget": {"minAvailable": 2},
        }
    )
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [toleration]
    assert pod["affinity"] == affinity
    spread = pod["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    assert pod["priorityClassName"] == "system-cluster-critical"
    # Helm merges a map given in values into the default one.
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container(objects)["securityContext"]["privileged"] is False
    assert container(objects)["resources"]["requests"] == {"cpu": "100m", "memory": "64Mi"}
    assert one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


def test_monitoring_objects_select_the_metrics_service() -> None:
    objects = render(
        {
            "metrics": {
                "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                "prometheusRule": {"enabled": True},
            },
            "grafanaDashboard": {"enabled": True, "namespace": "grafana"},
        }
    )
    service = one(objects, "Service", "lbctl-metrics")
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http-metrics"]
    rules = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert one(objects, "PrometheusRule")["spec"]["groups"] == rules["groups"]
    dashboard = one(objects, "ConfigMap", "lbctl-dashboard")
    assert dashboard["metadata"]["namespace"] == "grafana"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    expected = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["lbctl.json"]) == expected
    kinds = {o["kind"] for o in render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}


def test_vip_range_and_vip_pools() -> None:
    named = [{"Prod": ["10.1.2.0/24"]}, ["10.1.6.0/24"], "10.1.7.1-10.1.7.9"]
    pools = [
        {"name": "web", "spec": {"addresses": ["10.1.8.0/28"], "autoAssign": False}},
        {"name": "db", "spec": {"addresses": ["10.1.9.0/28"]}},
    ]
    objects = render({"vipRange": named, "vipPools": pools})
    assert json.loads(one(objects, "ConfigMap")["data"]["VIP_RANGE"]) == named
    rendered = [o for o in objects if o["kind"] == "VipPool"]
    assert [(o["apiVersion"], o["metadata"]["name"], o["spec"]) for o in rendered] == [
        ("ipam.citrix.com/v1", p["name"], p["spec"]) for p in pools
    ]
    assert all("namespace" not in o["metadata"] for o in rendered)
    assert json.loads(one(render({"vipRange": []}), "ConfigMap")["data"]["VIP_RANGE"]) == []


NAMESPACED = {"services", "services/status", "endpointslices", "events", "vips"}
"""The namespaced resources lbctl reads and writes: with --namespace, only in that namespace."""


def rule_pairs(role: dict[str, Any]) -> set[tuple[str, str]]:
    return {(res, verb) for rule in role["rules"] for res in rule["resources"]
            for verb in rule["verbs"]}  # fmt: skip


def test_namespace_scope_grants_namespaced_resources_in_that_namespace_only() -> None:
    """watchNamespace: Services, their status, EndpointSlices, Events and Vips of that
    namespace only (a Role there); the ClusterRole keeps the cluster-scoped resources (Nodes,
    Namespaces, VipPools, VipAddress records). Without it, everything stays cluster-wide."""
    everywhere = rule_pairs(one(render(), "ClusterRole"))
    objects = render({"watchNamespace": "shop"}, release="lbctl-shop", namespace="lbctl-system")
    cluster = rule_pairs(one(objects, "ClusterRole"))
    assert not {res for res, _ in cluster} & NAMESPACED
    role = one(objects, "Role", "lbctl-shop")
    assert role["metadata"]["namespace"] == "shop"
    assert cluster | rule_pairs(role) == everywhere
    binding = one(objects, "RoleBinding", "lbctl-shop")
    assert binding["metadata"]["namespace"] == "shop"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lbctl-shop",
    }  # fmt: skip
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "lbctl-shop", "namespace": "lbctl-system"}
    ]


def pod_template(values: dict[str, Any]) -> dict[str, Any]:
    return dict(one(render(values), "Deployment")["spec"]["template"])


def test_upgrading_the_netscaler_settings_rolls_the_pods_and_pools_do_not() -> None:
    """lbctl reads NS_URL and NS_APPS_NAME_PREFIX (env from the ConfigMap) and the credentials
    Secret's name once, at start: `helm upgrade` of any of them must change the pod template
    (a rollout), or the running pods keep the old NetScaler. Pools are re-read from the
    mounted VIP_RANGE file: changing them must not restart lbctl."""
    base = pod_template({})
    for changed in (
        {"netscaler": {"url": "https://10.0.0.6"}},
        {"netscaler": {"appsNamePrefix": "prod"}},
        {"netscaler": {"existingSecret": "other"}},
    ):
        assert pod_template(changed) != base, changed
    assert pod_template({"vipRange": ["10.1.0.0/24"]}) == base
