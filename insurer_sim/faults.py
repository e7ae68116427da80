"""Fault injection for the insurer simulator: latency, 5xx, dropped connections, short tokens,
duplicate and late callbacks, and a buyer limit cut after a notice period; seeded."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any


class FaultError(ValueError):
    """A fault setting the simulator refuses; the message names it."""


@dataclass(frozen=True)
class LimitCut:
    buyer: str
    amount: Decimal
    after_s: float


@dataclass
class Faults:
    """The faults in force. Rates are shares of the /v1 requests (0 to 1)."""

    latency_ms: int = 0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    token_ttl_s: float | None = None
    duplicate_callbacks: bool = False
    late_callbacks_ms: int = 0
    limit_cut: LimitCut | None = None
    # When the limit cut was set (monotonic seconds): it takes effect after_s later.
    limit_cut_set_at: float = field(default=0.0, repr=False)

    def to_wire(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        if self.limit_cut is not None:
            cut = asdict(self.limit_cut)
            out["limit_cut"] = {**cut, "amount": str(cut["amount"])}
        return out


_NUMBERS = {"latency_ms": int, "late_callbacks_ms": int, "error_rate": float, "drop_rate": float}


def apply_faults(faults: Faults, changes: dict[str, Any], now: float) -> None:
    """Apply the settings in ``changes`` (others stay); FaultError names a bad one."""
    if not isinstance(changes, dict):
        raise FaultError("faults must be a JSON object")
    known = {f.name for f in fields(Faults) if f.repr} | {"seed", "expire_tokens"}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise FaultError(f"unknown fault(s): {', '.join(unknown)}")
    for name, kind in _NUMBERS.items():
        if name in changes:
            value = changes[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise FaultError(f"{name}: a number of 0 or more")
            if name.endswith("_rate") and value > 1:
                raise FaultError(f"{name}: a share from 0 to 1")
            setattr(faults, name, kind(value))
    if "token_ttl_s" in changes:
        ttl = changes["token_ttl_s"]
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 0
        ):
            raise FaultError("token_ttl_s: seconds (0 or more), or null for the default")
        faults.token_ttl_s = ttl
    if "duplicate_callbacks" in changes:
        faults.duplicate_callbacks = bool(changes["duplicate_callbacks"])
    if "limit_cut" in changes:
        faults.limit_cut = _limit_cut(changes["limit_cut"])
        faults.limit_cut_set_at = now


def _limit_cut(raw: Any) -> LimitCut | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"buyer", "amount", "after_s"}:
        raise FaultError("limit_cut: {buyer, amount, after_s}")
    try:
        amount = Decimal(str(raw["amount"]))
        after = float(raw.get("after_s", 0))
        buyer = str(raw["buyer"])
    except (KeyError, InvalidOperation, TypeError, ValueError):
        raise FaultError("limit_cut: buyer (code), amount (decimal) and after_s") from None
    if not amount.is_finite() or amount < 0 or after < 0:
        raise FaultError("limit_cut: amount and after_s must be 0 or more")
    return LimitCut(buyer, amount, after)


def parse_faults_json(text: str | None) -> dict[str, Any]:
    """Faults given as JSON text (CLI or XINBAO_SIM_FAULTS); empty means none."""
    if not text or not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FaultError(f"faults are not JSON: {exc}") from None


class Dice:
    """Seeded draws shared by the request threads: the same seed and the same sequence of
    requests give the same faults, so tests reproduce."""

    def __init__(self, seed: int):
        self._lock = threading.Lock()
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        with self._lock:
            self.seed = seed
            self._rng = random.Random(seed)

    def roll(self, share: float) -> bool:
        if share <= 0:
            return False
        with self._lock:
            return self._rng.random() < share


def monotonic() -> float:
    return time.monotonic()
