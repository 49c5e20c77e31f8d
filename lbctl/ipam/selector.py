"""Kubernetes label selectors (``metav1.LabelSelector``), parsed once and matched purely.

Semantics follow ``LabelSelectorAsSelector`` in apimachinery: ``matchLabels`` and every
``matchExpressions`` entry must all hold; an empty selector matches everything; operators are
``In``, ``NotIn``, ``Exists`` and ``DoesNotExist`` (``NotIn`` and ``DoesNotExist`` match an
object without the key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class SelectorError(ValueError):
    """A selector that apimachinery would refuse; the message names the bad part."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @classmethod
    def parse(cls, raw: Any, where: str) -> LabelSelector:
        """``raw`` is the selector's JSON; ``where`` names it in errors (e.g. a field path).

        Raises ``SelectorError`` for a shape apimachinery would refuse."""
        if not isinstance(raw, dict):
            raise SelectorError(f"{where} must be an object, got {raw!r}")
        requirements = []
        match_labels = raw.get("matchLabels") or {}
        if not isinstance(match_labels, dict):
            raise SelectorError(f"{where}.matchLabels must be an object")
        for key, value in sorted(match_labels.items()):
            if not isinstance(value, str):
                raise SelectorError(f"{where}.matchLabels[{key!r}] must be a string")
            requirements.append(Requirement(key, "In", frozenset({value})))
        expressions = raw.get("matchExpressions") or []
        if not isinstance(expressions, list):
            raise SelectorError(f"{where}.matchExpressions must be a list")
        for index, item in enumerate(expressions):
            requirements.append(_requirement(item, f"{where}.matchExpressions[{index}]"))
        return cls(tuple(requirements))


def _requirement(item: Any, where: str) -> Requirement:
    if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not item["key"]:
        raise SelectorError(f"{where} needs a key")
    operator = item.get("operator")
    if operator not in OPERATORS:
        raise SelectorError(f"{where}.operator {operator!r} is not one of {', '.join(OPERATORS)}")
    values = item.get("values") or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise SelectorError(f"{where}.values must be a list of strings")
    if operator in ("In", "NotIn") and not values:
        raise SelectorError(f"{where}: operator {operator} needs values")
    if operator in ("Exists", "DoesNotExist") and values:
        raise SelectorError(f"{where}: operator {operator} takes no values")
    return Requirement(item["key"], operator, frozenset(values))
