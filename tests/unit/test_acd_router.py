"""Routing decisions: priority, arrival order, skills and their relaxation, strategies."""

from __future__ import annotations

from acd.router import CallerIndex, IdleSeat, Strategy, WaitingCaller, seats_to_offer

NONE: frozenset[str] = frozenset()
YI = frozenset({"yi"})


def caller(
    call_id: str, at: float, priority: int = 0, skills: frozenset[str] = NONE, queue: str = "general"
) -> WaitingCaller:
    return WaitingCaller(call_id, queue, skills, priority, at)


def seat(seat_id: str, idle_since: float, calls: int = 0, skills: frozenset[str] = NONE) -> IdleSeat:
    return IdleSeat(seat_id, frozenset({"general"}), skills, idle_since, calls)


def test_a_seat_takes_the_longest_waiting_caller_priority_first() -> None:
    index = CallerIndex()
    for c in (caller("a", 1), caller("b", 2), caller("elder", 3, priority=1), caller("c", 4)):
        index.add(c)
    order = []
    while (best := index.best_for(frozenset({"general"}), NONE, now=10, relax_after_s=60)) is not None:
        order.append(best.call_id)
        index.remove(best.call_id)
    assert order == ["elder", "a", "b", "c"]


def test_a_caller_who_left_is_never_bound() -> None:
    index = CallerIndex()
    index.add(caller("a", 1))
    index.add(caller("b", 2))
    index.remove("a")  # hung up while a seat was ringing
    best = index.best_for(frozenset({"general"}), NONE, now=5, relax_after_s=60)
    assert best is not None and best.call_id == "b"
    assert len(index) == 1


def test_skills_until_relaxation() -> None:
    index = CallerIndex()
    index.add(caller("yi-speaker", 0, skills=YI))
    index.add(caller("mandarin", 5))
    mandarin_seat = (frozenset({"general"}), NONE)
    chosen = index.best_for(*mandarin_seat, now=10, relax_after_s=60)
    assert chosen is not None and chosen.call_id == "mandarin"  # the Yi speaker waits for a Yi seat
    yi_seat = index.best_for(frozenset({"general"}), YI, now=10, relax_after_s=60)
    assert yi_seat is not None and yi_seat.call_id == "yi-speaker"
    relaxed = index.best_for(*mandarin_seat, now=61, relax_after_s=60)
    assert relaxed is not None and relaxed.call_id == "yi-speaker"  # waited long enough: anyone


def test_other_queues_are_not_seen() -> None:
    index = CallerIndex()
    index.add(caller("p", 0, queue="province"))
    assert index.best_for(frozenset({"general"}), NONE, now=1, relax_after_s=60) is None


def test_strategies() -> None:
    idle = [
        seat("1001", idle_since=50, calls=3),
        seat("1002", idle_since=10, calls=5),
        seat("1003", idle_since=30, calls=1),
    ]
    new = caller("x", 100)
    assert seats_to_offer(new, idle, Strategy.LONGEST_IDLE, 100, 60) == ["1002"]
    assert seats_to_offer(new, idle, Strategy.FEWEST_CALLS, 100, 60) == ["1003"]
    assert seats_to_offer(new, idle, Strategy.ROUND_ROBIN, 100, 60, round_robin_after="1001") == ["1002"]
    assert seats_to_offer(new, idle, Strategy.ROUND_ROBIN, 100, 60, round_robin_after="1003") == ["1001"]
    assert seats_to_offer(new, idle, Strategy.RING_ALL, 100, 60) == ["1001", "1002", "1003"]
    yi_only = caller("y", 100, skills=YI)
    assert seats_to_offer(yi_only, idle, Strategy.LONGEST_IDLE, 100, 60) == []
    assert seats_to_offer(yi_only, [*idle, seat("1004", 90, skills=YI)], Strategy.LONGEST_IDLE, 100, 60) == ["1004"]


def test_a_relaxed_caller_behind_a_priority_caller_is_found() -> None:
    index = CallerIndex()
    index.add(caller("old", 0, skills=YI))  # waited long: relaxed
    index.add(caller("urgent", 50, priority=1, skills=YI))  # ranks first, but not relaxed yet
    best = index.best_for(frozenset({"general"}), NONE, now=61, relax_after_s=60)
    assert best is not None and best.call_id == "old"
