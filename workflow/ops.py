"""The side effects that commit with a deal's transition, as arguments of transition.lua."""

from __future__ import annotations

from dataclasses import dataclass, field

from workflow import keys


@dataclass
class Ops:
    """The side effects that must commit atomically with one transition."""

    keys: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    count: int = 0
    # Set by the store once the transition committed: whether a ``flag`` op set its flag.
    flagged: bool = False

    def _key(self, key: str) -> str:
        # Key indexes are 1-based and KEYS[1], KEYS[2] are the deal and its events.
        if key not in self.keys:
            self.keys.append(key)
        return str(self.keys.index(key) + 3)

    def _add(self, name: str, *args: str) -> Ops:
        self.args += [name, *args]
        self.count += 1
        return self

    def zadd(self, key: str, score: float, member: str) -> Ops:
        return self._add("zadd", self._key(key), repr(float(score)), member)

    def zrem(self, key: str, member: str) -> Ops:
        return self._add("zrem", self._key(key), member)

    def reserve(self, exposure: str, deal_id: str, cents: int, cap_cents: int) -> Ops:
        """Reserve ``cents`` for the deal on a buyer exposure unless its total would pass
        ``cap_cents`` (then the transition fails with LimitExhausted)."""
        return self._add(
            "reserve",
            self._key(keys.exposure_reservations(exposure)),
            self._key(keys.exposure_reserved_total(exposure)),
            deal_id,
            str(cents),
            str(cap_cents),
        )

    def release(self, exposure: str, deal_id: str) -> Ops:
        return self._add(
            "release",
            self._key(keys.exposure_reservations(exposure)),
            self._key(keys.exposure_reserved_total(exposure)),
            deal_id,
        )

    def shrink(self, exposure: str, deal_id: str, cents: int) -> Ops:
        """Bring what the deal holds on a buyer exposure down to ``cents`` (never up): its
        reservation becoming the smaller disbursed use, or principal coming back."""
        return self._add(
            "shrink",
            self._key(keys.exposure_reservations(exposure)),
            self._key(keys.exposure_reserved_total(exposure)),
            deal_id,
            str(cents),
        )

    def hincr(self, key: str, field: str, delta: int) -> Ops:
        """Add ``delta`` to a counter in a hash (a field back at 0 is removed)."""
        return self._add("hincr", self._key(key), field, str(delta))

    def sadd_count(self, key: str, member: str, counter_key: str, field: str) -> Ops:
        """Add ``member`` to a set; the first time ever, count it in ``counter_key.field``."""
        return self._add("sadd_count", self._key(key), member, self._key(counter_key), field)

    def lock(self, key: str, holder: str, ttl_seconds: int = 0) -> Ops:
        """Take ``key`` for ``holder``; fails the transition if another holder has it."""
        return self._add("lock", self._key(key), holder, str(ttl_seconds))

    def expect(self, key: str, value: str) -> Ops:
        """Refuse the transition (ExpectationFailed) unless ``key`` still holds ``value``: what
        the caller acted on, read earlier or remembered, is checked in the same atomic step."""
        return self._add("expect", self._key(key), value)

    def flag(self, key: str, ttl_seconds: int) -> Ops:
        """Set ``key`` if it is not set (SET NX EX); ``flagged`` then says whether this did.
        Never refuses the transition: one round trip fewer than a SET of its own."""
        return self._add("flag", self._key(key), str(ttl_seconds))

    def rpush(self, key: str, value: str) -> Ops:
        return self._add("rpush", self._key(key), value)

    def unlock(self, key: str, holder: str) -> Ops:
        return self._add("unlock", self._key(key), holder)

    def feed(
        self,
        bank_id: str,
        deal_id: str,
        event_json: str,
        backfill: bool,
        retention_ms: int,
        later_events: int = 0,
    ) -> Ops:
        """Append the event to the bank's feed (after the deal's earlier events if
        ``backfill``), trimming what is older than ``retention_ms``; see workflow/feed.py.
        ``later_events``: how many events the same script appends after this one (a chain)."""
        return self._add(
            "feed",
            self._key(keys.bank_feed(bank_id)),
            self._key(keys.bank_feed_trimmed(bank_id)),
            deal_id,
            event_json,
            str(1 + later_events) if backfill else "0",
            str(retention_ms),
        )

    def copy(self) -> Ops:
        return Ops(list(self.keys), list(self.args), self.count)

    def touched(self) -> list[tuple[str, str]]:
        """Each operation's name with each key it touches, in order."""
        out, pos = [], 0
        for _ in range(self.count):
            name = self.args[pos]
            args = self.args[pos + 1 : pos + 1 + _ARITY[name]]
            for at in _KEY_ARGS.get(name, (0,)):
                out.append((name, self.keys[int(args[at]) - 3]))
            pos += 1 + _ARITY[name]
        return out

    def extend(self, other: Ops) -> Ops:
        """Append ``other``'s operations, its key indexes renumbered into this one's keys."""
        pos = 0
        for _ in range(other.count):
            name = other.args[pos]
            args = other.args[pos + 1 : pos + 1 + _ARITY[name]]
            for at in _KEY_ARGS.get(name, (0,)):
                args[at] = self._key(other.keys[int(args[at]) - 3])
            self._add(name, *args)
            pos += 1 + _ARITY[name]
        return self


# The arity of each op and which of its arguments are key indexes (transition.lua's ARITY).
_ARITY = {"zadd": 3, "zrem": 2, "reserve": 5, "release": 3, "shrink": 4, "lock": 3,
          "unlock": 2, "rpush": 2, "hincr": 3, "sadd_count": 4, "feed": 6, "flag": 2,
          "expect": 2}
# The operations that can refuse a transition: transition.lua checks them against Redis as it
# is before the script, so in a chain no other move may touch their keys (DealStore.transitions).
REFUSING = frozenset({"lock", "reserve", "expect"})
_KEY_ARGS = {"reserve": (0, 1), "release": (0, 1), "shrink": (0, 1), "sadd_count": (0, 2),
             "feed": (0, 1)}
