"""Threshold alerts (pure): each push, every rule is checked against every queue's figures; an
alert is active while its figure is past the threshold, and raised / cleared when that changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from wallboard.config import AlertRule


@dataclass(frozen=True)
class Alert:
    """One active alert: a rule that a queue's figure crosses."""

    rule: str
    queue: str
    figure: str
    value: float
    threshold: float
    direction: str  # "below" | "above"
    since: datetime

    def view(self) -> dict[str, object]:
        return {
            "alert": self.rule,
            "queue": self.queue,
            "figure": self.figure,
            "value": round(self.value, 4),
            "threshold": self.threshold,
            "direction": self.direction,
            "since": self.since.isoformat(),
        }


def crossed(rule: AlertRule, value: float | None) -> bool:
    """Whether ``value`` is past ``rule``'s threshold; an unknown figure (None) never is."""
    if value is None:
        return False
    if rule.below is not None:
        return value < rule.below
    return rule.above is not None and value > rule.above


@dataclass(frozen=True)
class Change:
    raised: tuple[Alert, ...]
    cleared: tuple[Alert, ...]


class AlertBook:
    """The active alerts, keyed (rule, queue); ``evaluate`` each push."""

    def __init__(self, rules: Iterable[AlertRule]) -> None:
        self.rules = tuple(rules)
        self._active: dict[tuple[str, str], Alert] = {}

    @property
    def active(self) -> list[Alert]:
        return sorted(self._active.values(), key=lambda a: (a.rule, a.queue))

    def applies(self, rule: AlertRule, queue: str) -> bool:
        return not rule.queues or queue in rule.queues

    def evaluate(self, figures: Mapping[tuple[str, str], float | None], now: datetime) -> Change:
        """``figures``: (rule name, queue) → the value the rule watches. Keys not given clear."""
        raised, cleared = [], []
        rules = {rule.name: rule for rule in self.rules}
        seen = set()
        for (name, queue), value in figures.items():
            rule = rules.get(name)
            if rule is None or not self.applies(rule, queue):
                continue
            key = (name, queue)
            seen.add(key)
            if crossed(rule, value) and value is not None:
                old = self._active.get(key)
                direction = "below" if rule.below is not None else "above"
                alert = Alert(name, queue, rule.figure, value, rule.threshold, direction, old.since if old else now)
                self._active[key] = alert
                if old is None:
                    raised.append(alert)
            elif key in self._active:
                cleared.append(self._active.pop(key))
        for key in [k for k in self._active if k not in seen]:  # a queue that went away
            cleared.append(self._active.pop(key))
        return Change(tuple(raised), tuple(cleared))

    def states(self, queues: Iterable[str]) -> list[tuple[str, str, bool]]:
        """(rule, queue, active) of every rule on every queue it applies to (for /metrics: 0 too)."""
        return [
            (rule.name, queue, (rule.name, queue) in self._active)
            for rule in self.rules
            for queue in queues
            if self.applies(rule, queue)
        ]
