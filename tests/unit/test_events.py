"""Event aggregation: repeats raise the count of one Event instead of creating new ones."""

from __future__ import annotations

from typing import Any, cast

import pytest

from lbctl.kube import events
from lbctl.kube.client import JSON, KubeClient, Resource
from lbctl.kube.errors import KubeUnavailable


class RecordingClient:
    """Stands in for the apiserver's Event endpoint (create and patch only)."""

    def __init__(self) -> None:
        self.created: list[JSON] = []
        self.patched: list[tuple[str, JSON]] = []
        self.fail = False

    async def create(self, resource: Resource, namespace: str | None, body: JSON) -> JSON:
        if self.fail:
            raise KubeUnavailable("down")
        self.created.append(body)
        return {"metadata": {"name": f"svc.{len(self.created)}"}}

    async def patch(self, resource: Resource, namespace: str | None, name: str, patch: Any) -> JSON:
        self.patched.append((name, patch))
        return {}


SERVICE: JSON = {"metadata": {"name": "svc", "namespace": "ns", "uid": "u1"}}


@pytest.fixture
def client() -> RecordingClient:
    return RecordingClient()


async def test_repeats_bump_the_count_at_most_once_per_period(client: RecordingClient) -> None:
    """Ten identical warnings: one Event; its count is raised when the period has passed."""
    clock = [1000.0]
    recorder = events.EventRecorder(cast(KubeClient, client), clock=lambda: clock[0])
    for _ in range(10):
        await recorder.record(SERVICE, "Warning", "AllocationFailed", "pool is full")
    assert len(client.created) == 1
    assert client.patched == []

    clock[0] += events.UPDATE_EVERY
    await recorder.record(SERVICE, "Warning", "AllocationFailed", "pool is full")
    assert len(client.created) == 1
    ((name, patch),) = client.patched
    assert name == client.created[0]["metadata"]["name"]
    assert patch["count"] == 11


async def test_a_different_message_is_a_different_event(client: RecordingClient) -> None:
    """Aggregation keys on object, type, reason and message."""
    recorder = events.EventRecorder(cast(KubeClient, client))
    await recorder.record(SERVICE, "Warning", "AllocationFailed", "pool A is full")
    await recorder.record(SERVICE, "Warning", "AllocationFailed", "pool B is full")
    assert [e["message"] for e in client.created] == ["pool A is full", "pool B is full"]
    assert client.created[0]["involvedObject"]["uid"] == "u1"


def test_the_name_is_the_same_for_the_same_report_and_a_valid_name() -> None:
    """A restarted lbctl derives the name of the Event it posted before; another report (or
    another object) gets another name; long object names stay within the apiserver's limit."""
    signature = ("u1", "Warning", "AllocationFailed", "pool is full")
    name = events.event_name("svc", signature)
    assert name == events.event_name("svc", signature)
    assert name.startswith("svc.")
    assert name != events.event_name("svc", (*signature[:3], "pool B is full"))
    assert name != events.event_name("svc", ("u2", *signature[1:]))
    assert len(events.event_name("s" * 253, signature)) <= 253


async def test_recording_never_raises(client: RecordingClient) -> None:
    """An unreachable apiserver loses the Event, not the reconcile."""
    client.fail = True
    recorder = events.EventRecorder(cast(KubeClient, client))
    await recorder.record(SERVICE, "Normal", "EnsuredLoadBalancer", "ok")
    assert client.created == []
