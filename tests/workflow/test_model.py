"""A state-level model test: random interleavings of every workflow step on a real Redis.

A Hypothesis ``RuleBasedStateMachine`` drives several deals at once through submit (with and
without an Idempotency-Key, sometimes reusing one), verify, hold, route, bank decisions (by the
holding bank and by a wrong one), withdrawal, the approving bank's cancellation, the deadline
and stranded-deal sweeps and clock moves. Invoice numbers come from a small pool and amounts
fill the buyer limit, so receivable collisions and limit exhaustion happen. Actors also act on
stale reads: old snapshots replayed straight into the store, and the real steps fed an old
read once. After every step the invariants of DESIGN.md are checked against Redis itself.

``XINBAO_MODEL_EXAMPLES`` / ``XINBAO_MODEL_STEPS`` run it longer (and randomised with
``XINBAO_MODEL_RANDOM=1``) than the deterministic run ``make test`` ships.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.conftest import DEMO_FILE, demo_text, dongfang_application, make_application
from tests.recompute import (
    event_log_problems,
    expected_arrears_index,
    expected_holdings,
    expected_portfolio,
    loan_problems,
    watched_for_arrears,
)
from workflow import intake, keys
from workflow.deal import Deal
from workflow.feed import read_bank_feed
from workflow.interest import accrue
from workflow.money import to_cents
from workflow.pipeline import (
    AlreadyApproved,
    DealNotFound,
    Decision,
    Deferral,
    DeferralRefused,
    Disbursement,
    IdempotencyKeyReused,
    MakerCheckerRefused,
    Repayment,
    Workflow,
    WorkflowError,
    WrongState,
)
from workflow.reference import parse_reference_json, store_reference
from workflow.reference.records import exposure_of
from workflow.states import TERMINAL, TRANSITIONS, WORKER_OWNED, State
from workflow.store import StoreError, VersionConflict, epoch_seconds
from workflow.visibility import as_seen_by_bank

pytestmark = pytest.mark.redis

S = State
EXAMPLES = int(os.environ.get("XINBAO_MODEL_EXAMPLES") or 100)
STEPS = int(os.environ.get("XINBAO_MODEL_STEPS") or 40)
RANDOM = os.environ.get("XINBAO_MODEL_RANDOM") == "1"

_DEMO = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
# Reservations count per buyer exposure (policy, buyer, currency): one per demo limit.
LIMIT_CENTS = {
    exposure_of(lim["policy_no"], lim["buyer_code"], lim["currency"]): to_cents(
        Decimal(lim["amount"]))
    for lim in _DEMO["limits"]
}
BANKS = sorted(b["bank_id"] for b in _DEMO["banks"])

# Haixin's invoices to DE-0001 (limit USD 500,000) and Dongfang's to GB-0007 (EUR 300,000):
# a small pool, so the same receivable is asked for again and the limits fill up. INV-HX-1099
# was never declared to the insurer: a deal with it is rejected (and lets its other invoice go).
HX_POOL = ("INV-HX-1001", "INV-HX-1002", "INV-HX-1003", "INV-HX-1004", "INV-HX-1099")
DF_POOL = ("INV-DF-3001", "INV-DF-3002")
AMOUNTS = ("100000.00", "150000.00", "250000.00")

NON_TERMINAL = [s for s in State if s not in TERMINAL]
# Where an approval may lead. Written out here, not taken from TRANSITIONS, so that a table
# that lets an approved deal slip out another way is caught.
AFTER_APPROVAL = frozenset({S.APPROVED, S.DISBURSED, S.REPAID, S.OVERDUE, S.CLAIM_FILED,
                            S.INDEMNIFIED, S.CLAIM_REJECTED})
EXPECTED = (WorkflowError, StoreError)
# Maker-checker: thresholds within the model's amounts (requests of 60,000), and officers of
# whom only one holds the checker role.
SECOND_APPROVAL_ABOVE = {"BOC-NB": "50000.00", "ICBC-NB": "70000.00"}
OFFICERS = {"officer-1": False, "officer-2": False, "checker-1": True}
# Hypothesis leans to a list's first element: makers are mostly plain officers, checks mostly
# made by the checker, and the rest still happens.
MAKERS_FIRST = ["officer-1", "checker-1", "officer-2"]
CHECKERS_FIRST = ["checker-1", "officer-1", "officer-2"]

# Filled by the machine: how many examples ran and the first that failed (reported on failure).
STATS: dict[str, Any] = {"examples": 0, "first_failure": None, "events": Counter()}
_labels: set[str] = set()  # what the current example has seen


def event(label: str) -> None:
    """Hypothesis's ``event``, also counted here: the examples that reached each situation
    (printed by the test, ``pytest -s``), to see the rules reach what they are meant to."""
    hypothesis_event(label)
    if label not in _labels:
        _labels.add(label)
        STATS["events"][label] += 1
_ids: Iterator[int] = itertools.count(1)


def model_deal_id() -> str:
    """Deterministic deal ids (the real ones are random): the same rules give the same run."""
    return f"m{next(_ids):04d}"


def receivables(fields: dict[str, str]) -> list[str]:
    buyer = json.loads(fields["buyer"])["code"]
    return [keys.receivable(fields["exporter_uscc"], buyer, inv["number"])
            for inv in json.loads(fields["invoices"])]


def fail(message: str) -> None:
    if STATS["first_failure"] is None:
        STATS["first_failure"] = STATS["examples"]
    raise AssertionError(message)


def check(condition: object, message: str | Callable[[], str]) -> None:
    if not condition:
        fail(message() if callable(message) else message)


class DealModel(RuleBasedStateMachine):
    """Deals on one private Redis, driven by random steps; its invariants are DESIGN.md's."""

    def __init__(self, client: redis.Redis, make_workflow: Callable[..., Workflow]):
        super().__init__()
        global _ids
        STATS["examples"] += 1
        _labels.clear()
        _ids = itertools.count(1)
        client.flushdb()
        self.r = client
        self.wf = make_workflow(client)
        self.set_thresholds()
        self.ids: list[str] = []  # every deal created, in order
        self.seen: dict[str, tuple[int, dict[str, str]]] = {}  # deal -> last version and hash
        self.snapshots: dict[str, dict[int, Deal]] = {}  # deal -> version -> the deal as read
        self.idem: dict[tuple[str, str], tuple[str, str]] = {}  # (uscc, key) -> (digest, deal)
        self.apps: dict[tuple[str, str], Any] = {}  # (uscc, key) -> the application sent
        self.ever_approved: dict[str, str] = {}  # deal -> approving bank
        self.cancelled_by_bank: set[str] = set()
        self.financed: dict[str, str] = {}  # receivable -> the approved deal financing it
        self.repayment_refs = 0

    def set_thresholds(self) -> None:
        for bank_id, threshold in SECOND_APPROVAL_ABOVE.items():
            record = json.loads(self.r.get(keys.bank(bank_id)))
            record["second_approval_above"] = threshold
            self.r.set(keys.bank(bank_id), json.dumps(record))

    def reload_reference(self) -> None:
        """The operator loads the same reference data again (a new reference version)."""
        store_reference(self.r, parse_reference_json(demo_text()))
        self.set_thresholds()

    def teardown(self) -> None:
        self.r.flushdb()

    # --- helpers -------------------------------------------------------------------------------

    def everything(self) -> dict[str, Any]:
        """Every key Xinbao writes outside reference data, with its value."""
        names = sorted(k for k in self.r.keys(f"{keys.P}*") if not k.startswith(f"{keys.P}ref:"))
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.type(name)
        kinds = pipe.execute()
        read = {
            "hash": lambda p, k: p.hgetall(k),
            "list": lambda p, k: p.lrange(k, 0, -1),
            "zset": lambda p, k: p.zrange(k, 0, -1, withscores=True),
            "string": lambda p, k: p.get(k),
            "set": lambda p, k: p.smembers(k),
            "stream": lambda p, k: p.xrange(k),
        }
        for name, kind in zip(names, kinds, strict=True):
            read[kind](pipe, name)
        return dict(zip(names, pipe.execute(), strict=True))

    def unchanged(self, before: dict[str, Any], what: str) -> None:
        after = self.everything()
        if after != before:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            fail(f"{what} changed {changed}")

    def feed_stale_read(self, deal_id: str, stale: Deal) -> None:
        """The next ``wf.store.get(deal_id)`` returns ``stale``, once (a page loaded earlier)."""
        store = self.wf.store
        real_get = type(store).get.__get__(store)

        def get(wanted: str) -> Deal | None:
            if wanted == deal_id:
                del store.get
                return Deal(dict(stale.fields))
            return real_get(wanted)

        store.get = get

    def stop_feeding(self) -> None:
        self.wf.store.__dict__.pop("get", None)

    def approved_now(self, deal: Deal) -> None:
        self.ever_approved.setdefault(deal.id, deal.bank_id or "")
        for recv in receivables(deal.fields):
            other = self.financed.get(recv)
            check(other in (None, deal.id),
                  f"{recv} financed twice: deal {deal.id} approved while {other}'s approval "
                  "was never cancelled by its bank")
            self.financed[recv] = deal.id

    # --- choosing deals ---------------------------------------------------------------------------

    def any_in(self, *states: State) -> bool:
        """Whether a deal is in one of ``states`` (a rule that acts on them has work)."""
        return any(d.state in states for d in self.wf.store.get_many(self.ids))

    def pay_out(self, deal: Deal, officer: str, reference: str) -> Deal:
        """The approving bank pays the whole approved amount out at once; a payout that needs
        a check is confirmed by the checker (unless the checker entered it)."""
        payout = Disbursement(officer, deal.decimal("approved_amount"), self.wf.today(), reference)
        moved = self.wf.disburse(deal.id, deal.bank_id, payout)
        entered = moved.get("pending_disbursement")
        if entered and entered["officer"] != "checker-1":
            moved = self.wf.confirm_disbursement(
                deal.id, deal.bank_id, "checker-1", True, entered["ref"]
            )
            event("pay out: entered, then checked")
        return moved

    def remember(self, deal: Deal) -> None:
        """Keep every version of a deal the model has read: the stale reads replayed later."""
        self.snapshots.setdefault(deal.id, {}).setdefault(deal.version, Deal(dict(deal.fields)))

    def choose(self, pick: int, states: frozenset[State] | None = None) -> Deal | None:
        """A deal in one of ``states`` if there is one (else any deal): steps mostly meet deals
        they can act on, and sometimes deals they must refuse."""
        deals = self.wf.store.get_many(self.ids)
        for deal in deals:
            self.remember(deal)
        wanted = [d for d in deals if states is None or d.state in states]
        pool = wanted or deals
        return pool[pick % len(pool)] if pool else None

    def choose_stale(
        self, pick: int, stale_pick: int, now_in: frozenset[State] | None = None,
        moved_on: bool = False,
    ) -> tuple[Deal, Deal] | None:
        """A deal (in one of ``now_in`` if there is one) and one of its earlier reads, older
        than it is now (with ``moved_on``, preferably read in another state)."""
        candidates = []
        for deal in self.wf.store.get_many(self.ids):
            old = [d for v, d in sorted(self.snapshots.get(deal.id, {}).items())
                   if v < deal.version]
            if old:
                candidates.append((deal, old))
        preferred = [(d, old) for d, old in candidates if now_in is None or d.state in now_in]
        candidates = preferred or candidates
        if not candidates:
            return None
        # Half the time prefer a read in the state the deal is in now again (an ABA: a deal
        # declined and offered again, say), where only the version tells the reads apart.
        aba = [(d, [o for o in old if o.state == d.state]) for d, old in candidates]
        aba = [(d, old) for d, old in aba if old]
        if moved_on:
            other = [(d, [o for o in old if o.state != d.state]) for d, old in candidates]
            candidates = [(d, old) for d, old in other if old] or candidates
        elif aba and stale_pick % 2 == 0:
            candidates = aba
        deal, old = candidates[pick % len(candidates)]
        return deal, Deal(dict(old[(stale_pick // 2) % len(old)].fields))

    def bank_for(self, deal: Deal, holder: bool, other: int) -> str:
        if holder and deal.bank_id:
            return deal.bank_id
        wrong = [b for b in BANKS if b != deal.bank_id]
        return wrong[other % len(wrong)]

    # --- submit -------------------------------------------------------------------------------

    def _submit(self, app: Any, key: str | None) -> None:
        uscc = app.exporter_uscc
        known = self.idem.get((uscc, key)) if key else None
        try:
            done = self.wf.submit(app, idempotency_key=key)
        except IdempotencyKeyReused:
            event("submit: Idempotency-Key reused")
            check(known and known[0] != app.fingerprint(),
                  f"key {key} refused as reused, but it was not used for another request")
            return
        except EXPECTED as exc:
            event(f"submit: {type(exc).__name__}")
            return
        deal = done.deal
        if known:
            event("submit: replayed")
            check(done.replayed and deal.id == known[1] and known[0] == app.fingerprint(),
                  f"key {key} (used by {known[1]}) gave {deal.id}, replayed={done.replayed}")
            return
        check(not done.replayed, f"a fresh key {key} replayed {deal.id}")
        self.ids.append(deal.id)
        self.remember(self.wf.store.get(deal.id))
        if key:
            self.idem[(uscc, key)] = (app.fingerprint(), deal.id)
            self.apps[(uscc, key)] = app

    @initialize(
        opening=st.lists(st.tuples(st.sampled_from(HX_POOL), st.sampled_from(AMOUNTS),
                                   st.sampled_from(["submitted", "placed", "approved",
                                                    "disbursed"])),
                         min_size=1, max_size=4)
    )
    def opening_deals(self, opening):
        """Every run starts with a few submissions, some already placed, approved (by two
        officers where the bank wants it) or paid out, so later steps meet every stage."""
        for number, amount, stage in opening:
            self._submit(make_application(number=number, amount=amount,
                                          requested_amount="60000.00"), None)
            if stage == "submitted" or not self.ids:
                continue
            with suppress(*EXPECTED):
                deal = self.wf.verify(self.ids[-1])
                if stage == "placed" or deal is None or deal.state != S.PENDING_BANK:
                    continue
                for officer in ("officer-1", "checker-1"):
                    deal = self.wf.decide(deal.id, deal.bank_id,
                                          Decision(True, officer, may_check=OFFICERS[officer]))
                    if deal.state == S.APPROVED:
                        break
                if deal.state != S.APPROVED:
                    continue
                self.approved_now(deal)
                if stage == "disbursed":
                    self.pay_out(deal, "officer-1", f"P-{deal.id}")

    @rule(
        who=st.sampled_from(["haixin", "haixin", "dongfang"]),
        picks=st.lists(st.integers(0, len(HX_POOL) - 1), min_size=1, max_size=2, unique=True),
        amount=st.sampled_from(AMOUNTS),
        key=st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"])),
    )
    def submit(self, who, picks, amount, key):
        if who == "haixin":
            invoices = [{"number": HX_POOL[p], "amount": amount} for p in picks]
            app = make_application(invoices=invoices, requested_amount="60000.00")
        else:
            app = dongfang_application(number=DF_POOL[picks[0] % len(DF_POOL)], amount=amount)
        self._submit(app, key)

    @rule(pick=st.integers(0, 100))
    def retry_submit(self, pick):
        """The client retries a submission with the same Idempotency-Key and body."""
        if self.apps:
            (_, key), app = sorted(self.apps.items())[pick % len(self.apps)]
            self._submit(app, key)

    # --- worker steps ---------------------------------------------------------------------------

    @rule(pick=st.integers(0, 100))
    def verify(self, pick):
        deal = self.choose(pick, frozenset({S.SUBMITTED, S.VERIFYING, S.ON_HOLD}))
        if deal:
            with suppress(*EXPECTED):
                self.wf.verify(deal.id)

    @rule(picks=st.lists(st.integers(0, 100), min_size=1, max_size=5),
          raced=st.integers(-1, 4), missing=st.booleans(),
          racer=st.sampled_from(["verify", "withdraw", "sweep", "reload", "noscript"]))
    def verify_batch(self, picks, raced, missing, racer):
        """A drain's batch: some deals (any state, repeats, an unknown id), one of them
        maybe verified by another worker between the batch's read and its commit (or
        withdrawn by its exporter, re-dispatched by the stranded sweep, the reference data
        reloaded, Redis's script cache emptied as by a restart)."""
        deals = self.wf.store.get_many(self.ids)
        ready = [d for d in deals if d.state == S.SUBMITTED]
        pool = ready or deals
        if not pool:
            return
        entries = [(pool[p % len(pool)].id, None) for p in picks]
        if missing:
            entries.append(("no-such-deal", None))
        store, other = self.wf.store, entries[raced % len(entries)][0] if raced >= 0 else None
        real = type(store).get_many_with.__get__(store)

        def read_then_race(ids, key):
            found = real(ids, key)
            del store.get_many_with
            with suppress(*EXPECTED):
                if racer == "verify":
                    self.wf.verify(other)  # another worker's verify lands now
                elif racer == "withdraw":
                    uscc = self.wf.store.get(other).fields["exporter_uscc"]
                    self.wf.withdraw(other, uscc)
                elif racer == "sweep":
                    self.wf.clock.advance(seconds=31)
                    self._redispatch(self.wf.stranded())
                elif racer == "reload":
                    self.reload_reference()
                else:
                    self.r.script_flush()
            return found

        if other and (racer != "withdraw" or self.wf.store.get(other) is not None):
            store.get_many_with = read_then_race
            event(f"batch: a concurrent {racer} between read and commit")
        try:
            left = self.wf.verify_many(entries)
        finally:
            store.__dict__.pop("get_many_with", None)
        check(set(left) <= set(entries), "verify_many left entries it was not given")
        for deal_id, _ in left:
            with suppress(*EXPECTED):
                self.wf.verify(deal_id)

    @rule(pick=st.integers(0, 100))
    def hold(self, pick):
        deal = self.choose(pick, frozenset({S.SUBMITTED, S.VERIFYING}))
        if deal:
            with suppress(*EXPECTED):
                self.wf.hold(deal.id)

    @rule(pick=st.integers(0, 100))
    def route(self, pick):
        deal = self.choose(pick, frozenset({S.ROUTING}))
        if deal:
            with suppress(*EXPECTED):
                self.wf.route(deal.id)

    @rule(delta=st.sampled_from([timedelta(seconds=31), timedelta(seconds=61),
                                 timedelta(hours=1), timedelta(hours=6), timedelta(hours=25),
                                 timedelta(days=50)]))
    def advance_clock(self, delta):
        self.wf.clock.advance(seconds=delta.total_seconds())

    @rule(jump=st.sampled_from([timedelta(days=47), timedelta(0), timedelta(days=62)]))
    def sweep_arrears(self, jump):
        """Beat's arrears sweep, mostly after the clock passed the invoices' due date:
        advances past due go overdue, missed deadlines are recorded."""
        self.wf.clock.advance(seconds=jump.total_seconds())
        for deal_id in self.wf.sweep_arrears():
            event(f"arrears: {self.wf.store.get(deal_id).state}")

    @rule()
    def lapse_approvals(self):
        """Beat's lapse sweep: approvals never paid out are cancelled."""
        for deal_id in self.wf.lapse_approvals():
            event("approval lapsed")
            self.cancelled_by_bank.add(deal_id)  # an approval may end so, as by its bank
            deal = self.wf.store.get(deal_id)
            for recv in receivables(deal.fields):
                if self.financed.get(recv) == deal_id:
                    del self.financed[recv]

    @rule(deliver=st.booleans())
    def sweep_deadlines(self, deliver):
        """Beat's deadline sweep; the route task it publishes runs at once, or is lost."""
        for deal_id in self.wf.expire_deadlines():
            if deliver:
                with suppress(*EXPECTED):
                    self.wf.route(deal_id)

    def _redispatch(self, found: list[tuple[str, State]]) -> None:
        for deal_id, state in found:  # as tasks.pipeline.sweep_stranded does
            with suppress(*EXPECTED):
                if state == S.ROUTING:
                    self.wf.route(deal_id)
                elif state == S.CLAIM_FILED:
                    self.wf.settle_claim(deal_id)
                else:
                    self.wf.verify(deal_id)

    @rule()
    def sweep_stranded(self):
        self._redispatch(self.wf.stranded())

    # --- people -----------------------------------------------------------------------------

    @rule(pick=st.integers(0, 100), approve=st.booleans(),
          holder=st.sampled_from([True, True, True, False]), other=st.integers(0, 2),
          deliver=st.booleans(), officer=st.sampled_from(MAKERS_FIRST))
    def decide(self, pick, approve, holder, other, deliver, officer):
        """A bank officer decides; after a decline the route task runs at once, or is lost."""
        deal = self.choose(pick, frozenset({S.PENDING_BANK}))
        if deal is None:
            return
        bank = self.bank_for(deal, holder, other)
        decision = Decision(approve, officer, reason=None if approve else "no appetite",
                            may_check=OFFICERS[officer])
        before = self.everything()
        try:
            moved = self.wf.decide(deal.id, bank, decision)
        except EXPECTED as exc:
            event(f"decide: {getattr(exc, 'code', type(exc).__name__)} "
                  f"({'holder' if bank == deal.bank_id else 'other'})")
            self.unchanged(before, f"a refused decision by {bank} on {deal.id}")
            return
        check(bank == deal.bank_id and deal.state == S.PENDING_BANK,
              f"{bank} decided {deal.id} it does not hold ({deal.state} at {deal.bank_id})")
        first = deal.get("first_approval")
        if approve and moved.state == S.PENDING_BANK:
            event("decide: first approval")
            check(first is None, f"{deal.id}: a second first approval over {first}")
        if moved.state == S.APPROVED:
            event(f"decide: approved{' after a check' if first else ''}")
            if first:
                check(first["officer"] != officer and OFFICERS[officer],
                      f"{officer} checked {deal.id}, first approved by {first['officer']}")
            self.approved_now(moved)
            if deliver:  # the bank pays out at once, and the buyer pays a part back
                try:
                    self.pay_out(moved, officer, f"P-{moved.id}")
                except EXPECTED as exc:
                    event(f"pay out at once: {getattr(exc, 'code', type(exc).__name__)}")
                else:
                    self.repay(pick, "some")
        else:
            event(f"decide: {moved.state}")
        if moved.state == S.PENDING_BANK:
            return
        elif deliver:
            with suppress(*EXPECTED):
                self.wf.route(deal.id)

    @rule(pick=st.integers(0, 100), officer=st.sampled_from(CHECKERS_FIRST))
    def second_approval(self, pick, officer):
        """An officer of the holding bank approves a deal that awaits its check."""
        awaiting = [d for d in self.wf.store.get_many(self.ids) if d.get("first_approval")]
        if not awaiting:
            return
        deal = awaiting[pick % len(awaiting)]
        first = deal.get("first_approval")
        before = self.everything()
        try:
            moved = self.wf.decide(deal.id, deal.bank_id,
                                   Decision(True, officer, may_check=OFFICERS[officer]))
        except EXPECTED as exc:
            event(f"second approval: {getattr(exc, 'code', type(exc).__name__)}")
            self.unchanged(before, f"a refused second approval by {officer} of {deal.id}")
            return
        check(moved.state == S.APPROVED and officer != first["officer"] and OFFICERS[officer],
              f"{officer} checked {deal.id} ({first}) into {moved.state}")
        event("second approval: approved")
        self.approved_now(moved)
        with suppress(*EXPECTED):
            self.pay_out(moved, officer, "P-2nd")

    @rule(pick=st.integers(0, 100), officer=st.sampled_from(sorted(OFFICERS)),
          holder=st.sampled_from([True, True, True, False]), other=st.integers(0, 2))
    def send_back(self, pick, officer, holder, other):
        """A checker sends a first approval back, or its maker recalls it."""
        deal = self.choose(pick, frozenset({S.PENDING_BANK}))
        if deal is None:
            return
        bank = self.bank_for(deal, holder, other)
        before = self.everything()
        try:
            self.wf.return_approval(deal.id, bank, officer, OFFICERS[officer], "try again")
        except EXPECTED as exc:
            event(f"send back: {getattr(exc, 'code', type(exc).__name__)}")
            self.unchanged(before, f"a refused send-back by {officer} of {deal.id}")
            return
        first = deal.get("first_approval")
        check(bank == deal.bank_id and first is not None
              and (OFFICERS[officer] or first["officer"] == officer),
              f"{officer} of {bank} sent back {deal.id} ({first})")
        event("approval sent back")

    @rule(
        pick=st.integers(0, 100),
        half=st.booleans(),
        same_ref=st.booleans(),
        then=st.sampled_from(["confirm", "send back", "leave"]),
    )
    def disburse(self, pick, half, same_ref, then):
        """The approving bank pays the advance out (or repeats it, or tries a second one)."""
        deal = self.choose(pick, frozenset({S.APPROVED, S.DISBURSED}))
        if deal is None or not deal.bank_id:
            return
        approved = deal.decimal("approved_amount") or Decimal("1.00")
        amount = (approved / 2).quantize(Decimal("0.01")) if half else approved
        loan = deal.get("loan")
        reference = (loan or {}).get("reference", "P-1") if same_ref else f"P-{deal.version}"
        payout = Disbursement("officer-1", Decimal(loan["principal"]) if loan and same_ref
                              else amount, self.wf.today(), reference)
        before = self.everything()
        try:
            moved = self.wf.disburse(deal.id, deal.bank_id, payout)
        except EXPECTED as exc:
            event(f"disburse: {getattr(exc, 'code', type(exc).__name__)}")
            self.unchanged(before, f"a refused disbursement of {deal.id}")
            return
        if deal.get("loan") or deal.get("pending_disbursement"):
            # Paid out already (and maybe overdue since), or entered for a check: the same one.
            check(moved.version == deal.version, f"a repeated disbursement moved {deal.id}")
            event("disburse: repeated")
        elif moved.state == S.APPROVED:
            entered = moved.get("pending_disbursement")
            threshold = Decimal(SECOND_APPROVAL_ABOVE[deal.bank_id])
            check(
                entered and payout.amount >= threshold,
                f"{deal.id}: a disbursement of {payout.amount} left it approved ({entered})",
            )
            event("disburse: entered for a check")
            # The maker cannot check it; a checker then confirms it, sends it back, or not yet.
            self.check_disbursement(pick, "officer-1", True, False)
            if then != "leave":
                self.check_disbursement(pick, "checker-1", then == "confirm", False)
        else:
            check(moved.state == S.DISBURSED, f"{deal.id} disbursed into {moved.state}")
            event("disburse: paid out")

    @rule(
        pick=st.integers(0, 100),
        officer=st.sampled_from(CHECKERS_FIRST),
        confirm=st.sampled_from([True, True, False]),
        stale=st.booleans(),
    )
    @precondition(
        lambda self: any(d.get("pending_disbursement") for d in self.wf.store.get_many(self.ids))
    )
    def check_disbursement(self, pick, officer, confirm, stale):
        """An officer confirms a disbursement entered for a check, or sends it back (its maker
        recalls it), sometimes from a page showing an older entry."""
        entered = [d for d in self.wf.store.get_many(self.ids) if d.get("pending_disbursement")]
        if not entered:
            return
        deal = entered[pick % len(entered)]
        pending = deal.get("pending_disbursement")
        ref = "0" * 16 if stale else pending["ref"]
        before = self.everything()
        try:
            if confirm:
                moved = self.wf.confirm_disbursement(
                    deal.id, deal.bank_id, officer, OFFICERS[officer], ref
                )
            else:
                moved = self.wf.return_disbursement(
                    deal.id, deal.bank_id, officer, OFFICERS[officer], "check the date", ref
                )
        except EXPECTED as exc:
            event(f"check disbursement: {getattr(exc, 'code', type(exc).__name__)}")
            self.unchanged(before, f"a refused check by {officer} of {deal.id}'s payout")
            return
        check(not stale, f"{officer} acted on a stale disbursement entry of {deal.id}")
        if confirm:
            loan = moved.get("loan")
            check(
                moved.state == S.DISBURSED
                and OFFICERS[officer]
                and loan["checker"] == officer != pending["officer"]
                and loan["reference"] == pending["reference"]
                and loan["principal"] == pending["amount"],
                f"{officer} confirmed {deal.id}'s payout ({pending}) into {moved.state}: {loan}",
            )
            event("check disbursement: paid out")
        else:
            check(
                moved.state == S.APPROVED
                and not moved.get("pending_disbursement")
                and (OFFICERS[officer] or pending["officer"] == officer),
                f"{officer} sent back {deal.id}'s payout ({pending})",
            )
            event("check disbursement: sent back")

    @rule(
        pick=st.integers(0, 100),
        days=st.sampled_from([30, 90, 400, 0]),
        repeat=st.booleans(),
    )
    @precondition(lambda self: self.any_in(S.DISBURSED, S.OVERDUE))
    def defer(self, pick, days, repeat):
        """The bank defers an advance's due date; the insurer agrees or refuses (a deferral
        too far, or asked too late); a repeat of the same request is the same answer."""
        deal = self.choose(pick, frozenset({S.DISBURSED, S.OVERDUE}))
        if deal is None or not deal.get("loan"):
            return
        loan = deal.get("loan")
        new_due = date.fromisoformat(loan["due_date"]) + timedelta(days=days)
        past = deal.get("deferrals", [])
        reference = past[-1]["reference"] if repeat and past else f"D-{deal.version}"
        if repeat and past:
            new_due = date.fromisoformat(past[-1]["new_due_date"])
        before = self.everything()
        try:
            moved = self.wf.defer(deal.id, deal.bank_id, Deferral("officer-1", new_due, reference))
        except DeferralRefused as exc:
            event(f"defer: refused {exc.reasons}")
            after = self.wf.store.get(deal.id)
            check(
                after.state == deal.state
                and after.get("loan") == loan
                and after.get("deferrals", [])[-1]["granted"] is False,
                f"a refused deferral of {deal.id} changed it: {after.fields}",
            )
            return
        except EXPECTED as exc:
            event(f"defer: {getattr(exc, 'code', type(exc).__name__)}")
            self.unchanged(before, f"a refused deferral of {deal.id}")
            return
        if repeat and past:
            check(moved.version == deal.version, f"a repeated deferral moved {deal.id}")
            event("defer: repeated")
            return
        check(
            moved.state == S.DISBURSED
            and moved.get("loan")["due_date"] == new_due.isoformat()
            and int(moved.fields["deferral_count"])
            == int(deal.fields.get("deferral_count") or 0) + 1
            and not moved.fields.get("overdue_since"),
            f"{deal.id} deferred to {new_due}: {moved.fields}",
        )
        event(f"defer: granted from {deal.state}")

    @rule(pick=st.integers(0, 100), settle=st.booleans())
    @precondition(lambda self: self.any_in(S.OVERDUE, S.CLAIM_FILED))
    def claim(self, pick, settle):
        """The bank sends the notice of possible loss and claims; the insurer decides."""
        deal = self.choose(pick, frozenset({S.OVERDUE, S.CLAIM_FILED}))
        if deal is None or deal.state not in (S.OVERDUE, S.CLAIM_FILED):
            return
        try:
            if deal.state == S.OVERDUE:
                self.wf.file_notice(deal.id, deal.bank_id, "officer-1")
                loss = Decimal(deal.get("loan")["outstanding"])
                self.wf.file_claim(deal.id, deal.bank_id, "officer-1", loss, ["invoice"])
            if settle:
                settled = self.wf.settle_claim(deal.id)
                event(f"claim: {settled.state}")
                if settled.state in TERMINAL:
                    for recv in receivables(deal.fields):
                        if self.financed.get(recv) == deal.id:
                            del self.financed[recv]
            else:
                event("claim: filed")
        except EXPECTED as exc:
            event(f"claim: {getattr(exc, 'code', type(exc).__name__)}")

    @rule(pick=st.integers(0, 100), part=st.sampled_from(["some", "all", "too much"]))
    def repay(self, pick, part):
        deal = self.choose(pick, frozenset({S.DISBURSED, S.OVERDUE}))
        if deal is None or not deal.get("loan"):
            return
        loan = deal.get("loan")
        today = self.wf.today()
        accrued_to = date.fromisoformat(loan["accrued_to"])
        owed = Decimal(loan["outstanding"]) + Decimal(loan["accrued_interest"]) + accrue(
            Decimal(loan["outstanding"]), Decimal(loan["annual_rate"]), accrued_to,
            max(today, accrued_to), loan["basis"])
        amount = {"some": min(owed, Decimal("1000.00")), "all": owed,
                  "too much": owed + Decimal("0.01")}[part]
        self.repayment_refs += 1
        payment = Repayment("officer-1", amount, today,
                            f"R-{self.repayment_refs}")
        before = self.everything()
        try:
            moved = self.wf.repay(deal.id, deal.bank_id or "", payment)
        except EXPECTED as exc:
            event(f"repay: {getattr(exc, 'code', type(exc).__name__)}")
            self.unchanged(before, f"a refused repayment of {deal.id}")
            check(
                part == "too much" or amount <= 0 or deal.state not in (S.DISBURSED, S.OVERDUE),
                f"a repayment of what is owed refused: {exc}",
            )
            return
        check(part != "too much", f"{deal.id} took more than it owed")
        event(f"repay: {moved.state}")
        if moved.state == S.REPAID:
            for recv in receivables(deal.fields):
                if self.financed.get(recv) == deal.id:
                    del self.financed[recv]

    @rule(pick=st.integers(0, 100), own=st.sampled_from([True, True, True, False]))
    def withdraw(self, pick, own):
        deal = self.choose(pick, frozenset(NON_TERMINAL))
        if deal is None:
            return
        uscc = deal.fields["exporter_uscc"] if own else "91110000MA00000000"
        before = self.everything()
        try:
            self.wf.withdraw(deal.id, uscc, note="changed our mind")
        except EXPECTED as exc:
            if isinstance(exc, AlreadyApproved):
                event("withdraw: ALREADY_APPROVED")
            self.unchanged(before, f"a refused withdrawal of {deal.id}")
            return
        check(own, f"another exporter withdrew {deal.id}")
        check(deal.state != S.APPROVED,
              f"the exporter withdrew {deal.id} after bank {deal.bank_id} approved it")

    @rule(pick=st.integers(0, 100), holder=st.sampled_from([True, True, True, False]),
          other=st.integers(0, 2))
    def cancel_approval(self, pick, holder, other):
        deal = self.choose(pick, frozenset({S.APPROVED}))
        if deal is None:
            return
        bank = self.bank_for(deal, holder, other)
        before = self.everything()
        try:
            moved = self.wf.cancel_approval(deal.id, bank, "officer-2", "client credit review")
        except EXPECTED:
            self.unchanged(before, f"a refused cancellation by {bank} of {deal.id}")
            return
        check(moved.state == S.CANCELLED and deal.state in (S.APPROVED, S.CANCELLED)
              and deal.bank_id == bank, f"{bank} cancelled {deal.id} ({deal.state})")
        if deal.state == S.APPROVED:
            event("approval cancelled by the bank")
            self.cancelled_by_bank.add(deal.id)
            for recv in receivables(deal.fields):
                if self.financed.get(recv) == deal.id:
                    del self.financed[recv]

    # --- stale reads ----------------------------------------------------------------------------

    @rule(pick=st.integers(0, 100), stale_pick=st.integers(0, 100),
          target_pick=st.integers(0, 10), through_move=st.booleans())
    def replay_stale_write(self, pick, stale_pick, target_pick, through_move):
        """An actor writes from an old read straight into the store: a conflict, no change."""
        chosen = self.choose_stale(pick, stale_pick)
        if chosen is None or not TRANSITIONS[chosen[1].state]:
            return
        deal, stale = chosen
        targets = sorted(TRANSITIONS[stale.state])
        new = targets[target_pick % len(targets)]
        before = self.everything()
        try:
            if through_move:
                self.wf._move(stale, new, actor="stale", event="stale_replay")
            else:
                self.wf.store.transition(stale, new, actor="stale", event="stale_replay",
                                         now=self.wf.clock())
        except VersionConflict:
            event(f"stale write refused ({'ABA' if deal.state == stale.state else 'moved on'})")
            self.unchanged(before, f"a refused stale write on {deal.id}")
            return
        fail(f"a write on {deal.id} (v{deal.version}, {deal.state}) from its v{stale.version} "
             f"read ({stale.state} -> {new}) was accepted")

    @rule(pick=st.integers(0, 100), stale_pick=st.integers(0, 100), step=st.sampled_from(
        ["approve", "decline", "cancel", "stranded sweep",
         "verify", "route", "hold", "withdraw"]))
    def act_on_stale_read(self, pick, stale_pick, step):
        """A step whose read of a deal is old: a bank officer's page loaded earlier, a sweep or
        a redelivered task that read the deal before others moved it. Fed through the real
        code path: ``wf.store.get`` returns the old read once."""
        # The deals each step acts on now, so that its old read is of consequence.
        now_in = {
            "approve": {S.PENDING_BANK, S.APPROVED, S.ROUTING},
            "decline": {S.PENDING_BANK, S.ROUTING},
            "cancel": {S.CANCELLED},
            "stranded sweep": WORKER_OWNED,
            "withdraw": {S.APPROVED, S.PENDING_BANK},
        }.get(step, WORKER_OWNED)
        chosen = self.choose_stale(pick, stale_pick, frozenset(now_in))
        if chosen is None:
            return
        deal, stale = chosen
        if step in ("approve", "decline"):
            self.decide_on_stale_page(deal, stale, step == "approve")
        elif step == "cancel":
            self.cancel_on_stale_page(deal, stale)
        elif step == "stranded sweep":
            self.stranded_sweep_on_stale_read(deal, stale)
        else:
            self.worker_step_on_stale_read(deal, stale, step)

    def decide_on_stale_page(self, deal: Deal, stale: Deal, approve: bool) -> None:
        """An officer decides from a page loaded earlier: refused, nothing changes."""
        bank = stale.bank_id or BANKS[0]
        before = self.everything()
        self.feed_stale_read(deal.id, stale)
        try:
            self.wf.decide(deal.id, bank, Decision(approve, "stale-officer", reason="old page"))
        except (WrongState, DealNotFound, VersionConflict, MakerCheckerRefused):
            # (An approval from a page showing a first approval is a check: refused to an
            # officer without the checker role before its staleness is even found.)
            if stale.state == S.PENDING_BANK:
                event("stale decision refused")
            self.unchanged(before, f"a refused stale decision on {deal.id}")
            return
        finally:
            self.stop_feeding()
        fail(f"{bank} decided {deal.id} (v{deal.version}, {deal.state}) from its "
             f"v{stale.version} read ({stale.state})")

    def cancel_on_stale_page(self, deal: Deal, stale: Deal) -> None:
        bank = stale.bank_id or BANKS[0]
        before = self.everything()
        self.feed_stale_read(deal.id, stale)
        try:
            self.wf.cancel_approval(deal.id, bank, "stale-officer", "old page")
        except (WrongState, DealNotFound, VersionConflict):
            pass
        finally:
            self.stop_feeding()
        self.unchanged(before, f"a cancellation of {deal.id} from its v{stale.version} read")

    @rule(pick=st.integers(0, 100), stale_pick=st.integers(0, 100))
    def deadline_sweep_on_stale_read(self, pick, stale_pick):
        """A deadline sweep whose read of a due deal is old (the deal between two offers, say)
        must not move it nor touch its entries."""
        chosen = self.choose_stale(pick, stale_pick, frozenset({S.PENDING_BANK}), moved_on=True)
        if chosen is None:
            return
        deal, stale = chosen
        if deal.state == S.PENDING_BANK:  # the sweep runs when the deal's deadline has come
            self.wf.clock.now = max(self.wf.clock(),
                                    datetime.fromisoformat(deal.fields["deadline"]))
        self.feed_stale_read(deal.id, stale)
        try:
            self.wf.expire_deadlines()
        finally:
            used = "get" not in self.wf.store.__dict__
            self.stop_feeding()
        if used:
            event("deadline sweep on a stale read")
        after = self.wf.store.get(deal.id)
        check(after.version == deal.version,
              f"a deadline sweep moved {deal.id} from its v{stale.version} read")

    def worker_step_on_stale_read(self, deal: Deal, stale: Deal, step: str) -> None:
        """A redelivered task or the exporter acting on an old read: re-read, carry on."""
        self.feed_stale_read(deal.id, stale)
        try:
            if step == "withdraw":
                self.wf.withdraw(deal.id, stale.fields["exporter_uscc"])
            else:
                getattr(self.wf, step)(deal.id)
        except EXPECTED:
            pass
        finally:
            self.stop_feeding()
        now = self.wf.store.get(deal.id)
        if step == "withdraw" and now.state == S.WITHDRAWN:
            check(deal.state != S.APPROVED,
                  f"the exporter withdrew {deal.id}, approved, through a stale read")

    def stranded_sweep_on_stale_read(self, deal: Deal, stale: Deal) -> None:
        """The stranded sweep read an old version: it must not claim the deal."""
        store = self.wf.store
        real_versions = type(store).versions.__get__(store)

        def versions(ids):
            return [stale.version if i == deal.id else v
                    for i, v in zip(ids, real_versions(ids), strict=True)]

        store.versions = versions
        try:
            found = self.wf.stranded()
        finally:
            del store.versions
        check(deal.id not in [d for d, _ in found],
              f"a stranded sweep claimed {deal.id} from its v{stale.version} read")
        self._redispatch(found)

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def consistent(self):
        r = self.r
        indexes = ([keys.by_state(s) for s in State] + [keys.deadlines()]
                   + [keys.bank_queue(b) for b in BANKS]
                   + [keys.awaiting_check(b) for b in BANKS]
                   + [keys.first_approvals_by(b, o) for b in BANKS for o in OFFICERS]
                   + [keys.bank_state(b, s) for b in BANKS for s in State]
                   + [keys.approval_lapses(), keys.due_dates()])
        pipe = r.pipeline(transaction=False)
        pipe.keys(keys.deal("*"))
        pipe.keys(keys.receivable("*", "*", "*"))
        pipe.keys(keys.idempotency("*", "*"))
        for index in indexes:
            pipe.zrange(index, 0, -1, withscores=True)
        for limit_id in LIMIT_CENTS:
            pipe.hgetall(keys.exposure_reservations(limit_id))
            pipe.get(keys.exposure_reserved_total(limit_id))
        first = pipe.execute()
        deal_keys = [k for k in first[0] if not k.endswith(":events")]
        recv_keys, idem_keys = first[1], first[2]
        indexed = {name: dict(entries)
                   for name, entries in zip(indexes, first[3:3 + len(indexes)], strict=True)}
        rest = first[3 + len(indexes):]
        limits = {lid: (rest[2 * i], int(rest[2 * i + 1] or 0))
                  for i, lid in enumerate(LIMIT_CENTS)}

        ids = sorted(k[len(keys.deal("")) - 1:-1] for k in deal_keys)
        pipe = r.pipeline(transaction=False)
        for deal_id in ids:
            pipe.hgetall(keys.deal(deal_id))
            pipe.lrange(keys.events(deal_id), 0, -1)
        for key in recv_keys + idem_keys:
            pipe.get(key)
        second = pipe.execute()
        deals = {deal_id: second[2 * i] for i, deal_id in enumerate(ids)}
        events = {deal_id: [json.loads(e) for e in second[2 * i + 1]]
                  for i, deal_id in enumerate(ids)}
        holders = dict(zip(recv_keys + idem_keys, second[2 * len(ids):], strict=True))

        expected_reservations = {lid: {} for lid in LIMIT_CENTS} | expected_holdings(deals)
        live_receivables: dict[str, str] = {}
        for deal_id, fields in deals.items():
            log = events[deal_id]
            version, state = int(fields["version"]), S(fields["state"])
            # The event log: versions 1..n, the current state its last `to`, the hash rebuilt.
            problems = event_log_problems(deal_id, fields, log) + loan_problems(deal_id, fields)
            check(not problems, lambda problems=problems: "; ".join(problems))
            # The version only grows, and nothing changes without it growing.
            last = self.seen.get(deal_id)
            if last:
                check(version > last[0] or (version == last[0] and fields == last[1]),
                      f"{deal_id}: v{last[0]} then v{version} with other fields")
            self.seen[deal_id] = (version, fields)
            self.remember(Deal(dict(fields)))
            event(f"reached {state}")
            for reason in json.loads(fields.get("reasons") or "[]"):
                event(f"reason {reason}")

            # Ownership: each non-terminal deal in exactly its own state's index.
            for index_state in State:
                inside = deal_id in indexed[keys.by_state(index_state)]
                should = index_state == state and state not in TERMINAL
                check(inside == should, f"{deal_id} ({state}) "
                      f"{'in' if inside else 'missing from'} the {index_state} index")
            deadline_score = indexed[keys.deadlines()].get(deal_id)
            queues = {b: indexed[keys.bank_queue(b)].get(deal_id) for b in BANKS}
            if state == S.PENDING_BANK:
                due = epoch_seconds(datetime.fromisoformat(fields["deadline"]))
                check(deadline_score == due,
                      f"{deal_id} pending at {fields.get('bank_id')}: deadline entry "
                      f"{deadline_score}, deadline {due}")
                check(queues == {b: (due if b == fields["bank_id"] else None) for b in BANKS},
                      f"{deal_id} pending at {fields['bank_id']}: bank queues {queues}")
            else:
                check(deadline_score is None and not any(queues.values()),
                      f"{deal_id} ({state}) left in the deadline schedule or a bank queue")
            if state in WORKER_OWNED:
                check(deal_id in indexed[keys.by_state(state)], f"{deal_id} ({state}) unowned")

            # Maker-checker: a first approval only while pending, a disbursement entered for a
            # check only while approved, each indexed exactly then; an approval or payout at or
            # above the threshold made by two officers, the second a checker.
            first = json.loads(fields.get("first_approval") or "null")
            entered = json.loads(fields.get("pending_disbursement") or "null")
            check(
                first is None or state == S.PENDING_BANK,
                f"{deal_id} ({state}) still carries a first approval {first}",
            )
            check(
                entered is None or state == S.APPROVED,
                f"{deal_id} ({state}) still carries a disbursement to check {entered}",
            )
            awaited = first or entered
            lapse = indexed[keys.approval_lapses()].get(deal_id)
            for bank in BANKS:
                awaiting = indexed[keys.awaiting_check(bank)].get(deal_id)
                should = awaited is not None and fields.get("bank_id") == bank
                check(
                    (awaiting is not None) == should
                    and (not should or awaiting == (due if first else lapse)),
                    f"{deal_id} ({state}, {awaited}) awaiting-check entry at {bank}: {awaiting}",
                )
                for officer in OFFICERS:
                    mine = indexed[keys.first_approvals_by(bank, officer)].get(deal_id)
                    check(
                        (mine is not None) == (should and awaited["officer"] == officer),
                        f"{deal_id} ({awaited}) in {officer}'s entries to check at {bank}",
                    )
            # The desk's filter by state: in its bank's index of its state, and no other.
            for bank in BANKS:
                for index_state in State:
                    inside = deal_id in indexed[keys.bank_state(bank, index_state)]
                    should = fields.get("bank_id") == bank and index_state == state
                    check(inside == should, f"{deal_id} ({state} at {fields.get('bank_id')}) "
                          f"{'in' if inside else 'missing from'} {bank}'s {index_state} index")
            decision = json.loads(fields.get("decision") or "null")
            threshold = SECOND_APPROVAL_ABOVE.get(fields.get("bank_id") or "")
            if (state in AFTER_APPROVAL and threshold and decision
                    and Decimal(fields["approved_amount"]) >= Decimal(threshold)):
                checker = decision.get("checker")
                check(checker and checker != decision["officer"] and OFFICERS[checker],
                      f"{deal_id} approved at {fields['approved_amount']} by "
                      f"{decision['officer']} with checker {checker}")

            # Maker-checker on large disbursements: paid out by two officers, the second a checker.
            loan = json.loads(fields.get("loan") or "null")
            if loan and threshold and Decimal(loan["principal"]) >= Decimal(threshold):
                check(
                    loan.get("checker")
                    and loan["checker"] != loan["officer"]
                    and OFFICERS[loan["checker"]],
                    f"{deal_id} paid out {loan['principal']} by {loan['officer']} with "
                    f"checker {loan.get('checker')}",
                )
            # The lapse schedule holds exactly the approvals; the due dates the advances out.
            check((deal_id in indexed[keys.approval_lapses()]) == (state == S.APPROVED),
                  f"{deal_id} ({state}) and the approval-lapse schedule")
            check((deal_id in indexed[keys.due_dates()]) == watched_for_arrears(fields),
                  f"{deal_id} ({state}) and the due-date schedule")
            if state not in TERMINAL:
                for recv in receivables(fields):
                    other = live_receivables.setdefault(recv, deal_id)
                    check(other == deal_id, f"{recv} in live deals {other} and {deal_id}")
                    check(holders.get(recv) == deal_id,
                          f"{recv} of live {deal_id} locked by {holders.get(recv)}")

            # An approval ends only in its bank's cancellation.
            if state in AFTER_APPROVAL and deal_id not in self.ever_approved:
                self.approved_now(Deal(dict(fields)))
            if deal_id in self.ever_approved:
                check(state in AFTER_APPROVAL
                      or (state == S.CANCELLED and deal_id in self.cancelled_by_bank),
                      f"{deal_id}, approved by {self.ever_approved[deal_id]}, is now {state} "
                      "without that bank cancelling it")

        # Each bank's portfolio counters equal a recomputation from its deals.
        for bank in BANKS:
            expected, borrowers = expected_portfolio(deals, bank)
            stored = {k: int(v) for k, v in r.hgetall(keys.portfolio(bank)).items()}
            check(stored == expected, f"{bank} portfolio {stored}, deals say {expected}")
            held_by = {k: int(v) for k, v in r.hgetall(keys.portfolio_borrowers(bank)).items()}
            check(held_by == dict(borrowers), f"{bank} borrowers {held_by}, deals {borrowers}")
            in_arrears = {k: int(v) for k, v in r.hgetall(keys.portfolio_arrears(bank)).items()}
            arrears = expected_arrears_index(deals, bank)
            check(in_arrears == arrears, f"{bank} arrears index {in_arrears}, deals {arrears}")

        for limit_id, (held, total) in limits.items():
            check(held == expected_reservations[limit_id],
                  f"{limit_id} reservations {held}, live reserving deals "
                  f"{expected_reservations[limit_id]}")
            check(total == sum(int(c) for c in held.values()),
                  f"{limit_id} total {total} != sum of reservations {held}")
            check(total <= LIMIT_CENTS[limit_id], f"{limit_id} over-committed: {total}")
            if total > LIMIT_CENTS[limit_id] - 100_000_00:
                event(f"{limit_id} nearly full")
        for key in recv_keys:
            check(key in live_receivables,
                  f"{key} locked by {holders[key]} ({deals.get(holders[key], {}).get('state')})")
        for key in idem_keys:
            check(holders[key] in deals, f"{key} names no deal ({holders[key]})")
        for index, entries in indexed.items():
            for member in entries:
                check(member in deals, f"{index} holds {member}, which does not exist")
        self.feeds_are_the_deal_api(deals, events)

    def feeds_are_the_deal_api(self, deals: dict, events: dict) -> None:
        """Each bank's feed: every event of its deals the deal API shows it, in order, once."""
        for bank in BANKS:
            feed, after = [], None
            while batch := read_bank_feed(self.r, bank, after, 1000):
                feed += batch
                after = batch[-1].cursor
            ids = [e.event_id for e in feed]
            check(len(ids) == len(set(ids)), f"{bank}'s feed repeats an event: {ids}")
            got: dict[str, list] = {}
            for entry in feed:
                got.setdefault(entry.deal_id, []).append(entry.event)
            for deal_id, fields in deals.items():
                deal = Deal(dict(fields))
                shown = (as_seen_by_bank(deal, events[deal_id], bank)[1]
                         if bank in deal.offered_banks else [])
                check(got.pop(deal_id, []) == shown,
                      f"{bank}'s feed of {deal_id} is not what the deal API shows it")
            check(not got, f"{bank}'s feed has deals it was never offered: {sorted(got)}")


def model_settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def test_the_workflow_keeps_its_invariants_under_random_interleavings(
    redis_server_url, make_workflow, monkeypatch
):
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    monkeypatch.setattr(intake, "new_deal_id", model_deal_id)
    STATS.update(examples=0, first_failure=None, events=Counter())
    try:
        run_state_machine_as_test(lambda: DealModel(client, make_workflow),
                                  settings=model_settings())
    except AssertionError as exc:
        exc.add_note(f"model: first failure in example {STATS['first_failure']} "
                     f"of {STATS['examples']} run (incl. shrinking)")
        raise
    finally:
        client.flushdb()
        client.close()
    print(f"model: {STATS['examples']} examples; examples reaching each situation:")
    for label, count in sorted(STATS["events"].items()):
        print(f"  {count:4d}  {label}")
