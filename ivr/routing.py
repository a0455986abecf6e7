"""What the IVR tells the ACD about a caller: the skills a seat needs and the caller's
priority, from the queue node and the call's tags; and the caller-list node (blocklist and
priority lists by number), with an audit of every match."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import structlog

from calls.model import CallOutcome
from common.privacy import mask_number
from ivr.dialplan.caller_lists import ListMatch
from ivr.dialplan.schema import ROUTING_TAGS, CallerListAction, CallerListNode, QueueNode

if TYPE_CHECKING:
    from ivr.interpreter import IvrRun

log = structlog.get_logger(__name__)


def queue_skills(node: QueueNode, tags: Mapping[str, str]) -> tuple[str, ...]:
    """The skills a seat needs for this caller: a ``skills`` entry naming a tag (``language``)
    stands for the caller's value of it (``dialect``; nothing when untagged), any other entry
    is a skill as written."""
    needed: list[str] = []
    for entry in node.skills:
        skill = tags.get(entry, "") if entry in ROUTING_TAGS else entry
        if skill and skill not in needed:
            needed.append(skill)
    return tuple(needed)


def queue_priority(node: QueueNode, tags: Mapping[str, str]) -> int:
    """The higher of the node's priority and the call's ``priority`` tag (a set node, a
    caller list); higher is served first."""
    tagged = tags.get("priority", "")
    return max(node.priority, int(tagged) if tagged.isdigit() and len(tagged) == 1 else 0)


def list_tags(matches: Iterable[ListMatch], tags: Mapping[str, str]) -> dict[str, str]:
    """The tags a caller's list matches put on the call: the lists (by id) and, for priority
    lists, a ``priority`` that only ever rises."""
    found = list(matches)
    changes = {"caller_list": ",".join(m.list_id for m in found)}
    best = max((m.priority for m in found if m.action is CallerListAction.PRIORITY), default=0)
    current = tags.get("priority", "0")
    if best > (int(current) if current.isdigit() else 0):
        changes["priority"] = str(best)
    return changes


async def caller_list_step(run: IvrRun, node_id: str, node: CallerListNode) -> str | None:
    """Look the caller up; every match is audited (log with the masked number, tags on the
    record). A blocked caller hears ``blocked_prompt`` and the call ends (outcome ``blocked``)."""
    tracker = run.ctx.tracker
    record = tracker.get_live(run.call_id)
    lists = run.plan.caller_lists
    if record is None or lists is None:
        return node.next
    matches = lists.matches(record.caller, node.lists)
    if not matches:
        return node.next
    for match in matches:
        log.info(
            "ivr.caller_list_match", node=node_id, caller=mask_number(record.caller), list=match.list_id,
            list_name=match.name, action=match.action.value,
        )  # fmt: skip
    changes = list_tags(matches, record.tags)
    blocked = [m for m in matches if m.action is CallerListAction.BLOCK]
    if not blocked:
        await tracker.amend(run.call_id, {"tags": changes})
        return node.next
    await tracker.amend(run.call_id, {"tags": {**changes, "blocked_by": blocked[0].list_id}})
    await tracker.set_outcome(run.call_id, CallOutcome.BLOCKED)
    await run.session.stream_file(run.prompt_path(node.blocked_prompt))
    await run.release()
    return None
