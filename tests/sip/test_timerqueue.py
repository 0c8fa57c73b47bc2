"""TimerQueues against a plain model, on random schedules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from webims.sip.timerqueue import TimerQueues


class Item:
    def __init__(self, n: int, deadline: float) -> None:
        self.n = n
        self.deadline = deadline
        self.alive = True


def alive(item: Item) -> bool:
    return item.alive


ops = st.lists(
    st.tuples(
        st.sampled_from(["push", "kill", "advance"]),
        st.sampled_from([0.5, 1.0, 2.0, 4.0, 5.0, 32.0]),
        st.floats(0, 3),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.booleans())
def test_fires_every_due_live_item_in_deadline_order(
    script: list[tuple[str, float, float]], backwards: bool
) -> None:
    q: TimerQueues[Item] = TimerQueues()
    items: list[Item] = []
    now = 0.0
    for op, delay, step in script:
        if op == "push":
            # Time may even go backwards (a test forcing states): order must hold.
            t = now - step if backwards and len(items) % 3 == 0 else now
            item = Item(len(items), t + delay)
            q.push(delay, t, item)
            items.append(item)
        elif op == "kill" and items:
            items[int(step * 100) % len(items)].alive = False
        else:
            now += step
            fired = []
            while (item := q.pop_due(now, alive)) is not None:
                assert item.alive and item.deadline <= now
                item.alive = False
                fired.append(item)
            keys = [(i.deadline, i.n) for i in fired]
            assert keys == sorted(keys)
            assert not [i for i in items if i.alive and i.deadline <= now]
        live = [i.deadline for i in items if i.alive]
        assert q.first(alive) == (min(live) if live else None)
