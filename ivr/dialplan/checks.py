"""Graph checks on a parsed dialplan (pure): targets, reachability, exits, humans, prompts."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass

from common.yamlsource import KeyPath
from ivr.dialplan.schema import (
    CallerListNode,
    Destination,
    DialplanSpec,
    HangupNode,
    HoursNode,
    MenuNode,
    Node,
    PlayNode,
    QueueNode,
    SetNode,
    TransferNode,
    VoicemailNode,
)

MAX_MENU_DEPTH = 2


@dataclass(frozen=True)
class Finding:
    """One problem found by a check, located by key path."""

    path: KeyPath
    message: str
    severity: str = "error"  # or "warning"


def targets(node: Node) -> Iterator[tuple[str, str]]:
    """(field, target node id) for every edge out of ``node``."""
    if isinstance(node, MenuNode):
        for digit, target in node.options.items():
            yield f"options.{digit}", target
        yield "default", node.default
    elif isinstance(node, HoursNode):
        yield "open", node.open
        yield "closed", node.closed
        if node.holiday:
            yield "holiday", node.holiday
    elif not isinstance(node, HangupNode):
        yield "next", node.next
        if isinstance(node, VoicemailNode) and node.failed:
            yield "failed", node.failed


_PROMPT_FIELDS = (
    "prompt",
    "invalid_prompt",
    "timeout_prompt",
    "review_prompt",
    "confirm_prompt",
    "failed_prompt",
    "thanks_prompt",
    "blocked_prompt",
)


def prompts_of(node: Node) -> Iterator[tuple[str, str]]:
    """(field, prompt name) for every prompt ``node`` plays."""
    if isinstance(node, PlayNode):
        for index, name in enumerate(node.prompts):
            yield f"prompts.{index}", name
    for field in _PROMPT_FIELDS:
        value = getattr(node, field, None)
        if isinstance(value, str) and value:
            yield field, value


def _path(node_id: str, field: str) -> KeyPath:
    parts: list[str | int] = ["nodes", node_id]
    for part in field.split("."):
        parts.append(int(part) if part.isdigit() and field.startswith("prompts.") else part)
    return tuple(parts)


def _reachable(spec: DialplanSpec, start: str, follow: Callable[[Node], Iterator[tuple[str, str]]]) -> set[str]:
    seen = {start}
    todo = deque([start])
    while todo:
        node = spec.nodes.get(todo.popleft())
        if node is None:
            continue
        for _, target in follow(node):
            if target in spec.nodes and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _check_references(
    spec: DialplanSpec, prompt_exists: Callable[[str], bool], destinations: Mapping[str, Destination]
) -> Iterator[Finding]:
    """Targets, prompts and destinations that point at nothing."""
    for field, entry in _entries(spec):
        if entry not in spec.nodes:
            yield Finding((field,), f"{field} node {entry!r} does not exist (nodes: {', '.join(spec.nodes)})")
    for node_id, node in spec.nodes.items():
        for field, target in targets(node):
            if target not in spec.nodes:
                expected = ", ".join(spec.nodes)
                yield Finding(_path(node_id, field), f"target {target!r} is not a node (expected one of: {expected})")
        for field, prompt in prompts_of(node):
            if prompt not in spec.prompts and not prompt_exists(prompt):
                yield Finding(
                    _path(node_id, field), f"prompt {prompt!r} has no text under prompts: and no recorded file"
                )
        if isinstance(node, TransferNode) and node.to not in destinations:
            known = ", ".join(destinations) or "none defined"
            yield Finding(
                _path(node_id, "to"),
                f"destination {node.to!r} is neither under destinations: nor in the directory ({known})",
            )


def _entries(spec: DialplanSpec) -> Iterator[tuple[str, str]]:
    """Where calls enter the graph: start, and the optional hand-off, failed-transfer and
    after-seat entries."""
    yield "start", spec.start
    if spec.handoff_start:
        yield "handoff_start", spec.handoff_start
    if spec.transfer_failed:
        yield "transfer_failed", spec.transfer_failed
    if spec.after_seat:
        yield "after_seat", spec.after_seat


def _check_flow(spec: DialplanSpec) -> Iterator[Finding]:
    """Unreachable nodes, loops with no way out, menus with no way to a human."""
    reachable = set().union(*(_reachable(spec, entry, targets) for _, entry in _entries(spec)))
    for node_id in spec.nodes:
        if node_id not in reachable:
            yield Finding(("nodes", node_id), f"node {node_id!r} cannot be reached from start {spec.start!r}")
    exits = {node_id for node_id, node in spec.nodes.items() if isinstance(node, HangupNode)}
    for node_id in sorted(reachable):
        if not _reachable(spec, node_id, targets) & exits:
            yield Finding(
                ("nodes", node_id), f"node {node_id!r} is in a loop with no exit: no hangup node can follow it"
            )
    humans = {node_id for node_id, node in spec.nodes.items() if isinstance(node, QueueNode)}
    for node_id, node in spec.nodes.items():
        if not isinstance(node, MenuNode):
            continue
        via_options = set().union(*(_reachable(spec, t, targets) for t in node.options.values()))
        if not via_options & humans:
            yield Finding(("nodes", node_id, "options"), f"menu {node_id!r} has no way to a human (no queue node)")
        elif "0" not in node.options or not (_reachable(spec, node.options["0"], targets) & humans):
            yield Finding(("nodes", node_id, "options"), f"menu {node_id!r}: key 0 should reach a human", "warning")


def _check_caller_lists(spec: DialplanSpec, caller_lists: Collection[str]) -> Iterator[Finding]:
    """A caller_list node names lists that exist (dialplans/caller_lists.yaml, this platform)."""
    for node_id, node in spec.nodes.items():
        if not isinstance(node, CallerListNode):
            continue
        if not caller_lists:
            message = "no caller lists for this platform (dialplans/caller_lists.yaml): it matches nobody"
            yield Finding(("nodes", node_id), message, "warning")
        for index, name in enumerate(node.lists):
            if name not in caller_lists:
                known = ", ".join(sorted(caller_lists)) or "none for this platform"
                yield Finding(("nodes", node_id, "lists", index), f"caller list {name!r} does not exist ({known})")


def _check_tags_read(spec: DialplanSpec) -> Iterator[Finding]:
    """Warn about a tag a set node gives that nothing reads: ``category`` goes on the ticket,
    ``priority`` is read by every queue node, other tags only by a queue naming them in ``skills``."""
    queues = [node for node in spec.nodes.values() if isinstance(node, QueueNode)]
    read = {"category"} | ({"priority"} if queues else set()) | {s for q in queues for s in q.skills}
    for node_id, node in spec.nodes.items():
        if not isinstance(node, SetNode):
            continue
        for tag in node.tags:
            if tag not in read:
                yield Finding(
                    ("nodes", node_id, "tags", tag),
                    f"tag {tag!r} is read by nothing (name it in a queue node's skills to route on it)",
                    "warning",
                )


def check_graph(
    spec: DialplanSpec,
    prompt_exists: Callable[[str], bool],
    destinations: Mapping[str, Destination] | None = None,
    caller_lists: Collection[str] = (),
) -> list[Finding]:
    """Every graph problem of ``spec``; ``prompt_exists`` says whether a recording exists;
    ``destinations``: what transfer nodes may name (default: the dialplan's own);
    ``caller_lists``: the caller lists its caller_list nodes may name."""
    known = spec.destinations if destinations is None else destinations
    findings = list(_check_references(spec, prompt_exists, known))
    findings.extend(_check_caller_lists(spec, caller_lists))
    findings.extend(_check_tags_read(spec))
    if all(entry in spec.nodes for _, entry in _entries(spec)):
        findings.extend(_check_flow(spec))
        findings.extend(_menu_depth(spec))
        findings.extend(_after_seat(spec))
    return findings


def _after_seat(spec: DialplanSpec) -> list[Finding]:
    """The caller has just talked with a seat: queueing them again from after_seat is likely a
    mistake (they would wait for a second seat instead of answering the survey and leaving)."""
    if not spec.after_seat:
        return []
    queues = sorted(
        node_id for node_id in _reachable(spec, spec.after_seat, targets) if isinstance(spec.nodes[node_id], QueueNode)
    )
    if not queues:
        return []
    return [
        Finding(
            ("after_seat",),
            f"after_seat {spec.after_seat!r} leads to queue node(s) {', '.join(queues)}: "
            "the caller would wait for a seat again after talking with one",
            "warning",
        )
    ]


def _menu_depth(spec: DialplanSpec) -> list[Finding]:
    """Warn where a caller must pass more than MAX_MENU_DEPTH menus (GB/T 33358: keep it flat)."""
    depth: dict[str, int] = {}
    todo = deque([(spec.start, 0)])
    while todo:
        node_id, menus_before = todo.popleft()
        node = spec.nodes.get(node_id)
        if node is None:
            continue
        here = menus_before + (1 if isinstance(node, MenuNode) else 0)
        if (node_id in depth and depth[node_id] <= here) or here > MAX_MENU_DEPTH + 1:
            continue  # keep the fewest menus a caller must pass to get here
        depth[node_id] = here
        for _, target in targets(node):
            todo.append((target, here))
    return [
        Finding(("nodes", node_id), f"menu {node_id!r} is {level} menus deep (more than {MAX_MENU_DEPTH})", "warning")
        for node_id, level in depth.items()
        if level > MAX_MENU_DEPTH and isinstance(spec.nodes[node_id], MenuNode)
    ]
