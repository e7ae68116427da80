"""`make bench`, capacity part: per-core deal rates, Redis commands, CPU and memory per deal, and
what one Redis primary carries on the pipeline's real command mix (replayed with redis-benchmark).

Runs the stack `make bench` runs (``bench.pipeline_stack``: a private redis-server with AOF,
gunicorn, a Celery worker and beat) and, without MONITOR:

1. ``--deals`` deals from POST to pending_bank (16 concurrent clients), then ``--closed`` of
   them approved, disbursed and repaid through the API: each stage's CPU per deal per process
   (so deals/s per web and per worker core), Redis's own accounting (``INFO commandstats`` and
   ``INFO cpu`` deltas: calls and time per deal by command, CPU per deal of the main thread)
   and ``INFO used_memory_dataset`` deltas (bytes per pending and per repaid deal, with every
   index; used_memory less client and AOF buffers).

Then ``--monitored`` more deals take the same whole life while ``redis-cli monitor`` records
every command. Each command a client sent (not those run inside a script) joins a group: one per
transition of the Lua script (by event type), one per other command. On a second private
redis-server with the same settings, each group's median instance is replayed by
redis-benchmark (``-c`` clients, ``-P`` pipelined; the deal id, invoice number and idempotency
key of the recorded deal become ``__rand_int__``). Transitions are replayed as a deal's first
write (expected version 0) on fresh keys, so the compare-and-set passes and every write runs
(checked once before timing); reads hit copies of a real repaid deal. One primary is single
threaded, so its time per deal is the sum over groups of (commands per deal / that group's
ops/s), and what it carries is the inverse. ``1e6 / (Redis CPU us per deal)`` from the real run
is the other estimate; the lower one is the bound. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha1
from pathlib import Path

import redis
import requests

from tests.stress import bench, dataset
from tests.support import ROOT, RedisServer, wait_until
from workflow import keys
from workflow.states import State
from workflow.tokens import token_digest

DEALS, CLOSED, MONITORED = 2000, 300, 50
CLIENTS, PIPELINES, REQUESTS = 50, (16, 1), 20000
READ_KEYS = 5000  # copies of a repaid deal that replayed reads hit
WRITE_SPACE = 2_000_000_000  # fresh keys for replayed transitions (redis-benchmark -r is an int)
TRANSITION_SHA = sha1((ROOT / "workflow/lua/transition.lua").read_bytes()).hexdigest()
# Connection set-up, transactions, subscriptions and blocking pops cannot be replayed one
# command at a time: they are counted, and cost what a PING costs.
AS_PING = {"PING", "HELLO", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT", "CLIENT",
           "SCRIPT", "PSUBSCRIBE", "SUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "INFO", "BLPOP",
           "BZPOPMIN", "BZPOPMAX", "BLMOVE", "XREAD", "XREADGROUP", "WAIT", "COMMAND"}
BENCH_COMMANDS = {"info", "config|resetstat", "monitor", "zcard"}  # this bench's own polling


@dataclass
class Snapshot:
    """Redis's and the processes' counters at one moment."""

    stats: dict[str, tuple[int, int]]  # command -> (calls, usec)
    cpu_main: float  # seconds, Redis main thread (user + sys)
    memory: int  # used_memory_dataset
    processes: dict[str, float]

    @classmethod
    def take(cls, r: redis.Redis, roots: dict[str, int]) -> Snapshot:
        info = r.info("everything")
        stats = {k.removeprefix("cmdstat_"): (v["calls"], v["usec"])
                 for k, v in info.items() if k.startswith("cmdstat_")}
        main = info.get("used_cpu_user_main_thread", info["used_cpu_user"]) + info.get(
            "used_cpu_sys_main_thread", info["used_cpu_sys"])
        # The data set alone: used_memory less client buffers, the AOF buffer and the like.
        return cls(stats, main, info["used_memory_dataset"], bench.cpu_seconds(roots))


@dataclass
class Stage:
    """What one stage of a deal's life cost, per deal."""

    name: str
    deals: int
    seconds: float
    before: Snapshot
    after: Snapshot

    def cpu_ms(self, process: str) -> float:
        return (self.after.processes[process] - self.before.processes[process]) * 1000 / self.deals

    @property
    def redis_us(self) -> float:
        return (self.after.cpu_main - self.before.cpu_main) * 1e6 / self.deals

    @property
    def bytes(self) -> float:
        return (self.after.memory - self.before.memory) / self.deals

    def calls(self) -> dict[str, tuple[float, float]]:
        """Command -> (calls, usec) per deal, commands run inside scripts included."""
        out = {}
        for name, (calls, usec) in self.after.stats.items():
            c0, u0 = self.before.stats.get(name, (0, 0))
            if calls > c0 and name not in BENCH_COMMANDS:
                out[name] = ((calls - c0) / self.deals, (usec - u0) / self.deals)
        return out

    def line(self) -> str:
        top = sorted(self.calls().items(), key=lambda kv: -kv[1][1])[:8]
        mix = ", ".join(f"{name} {calls:.2f} ({usec:.0f} us)" for name, (calls, usec) in top)
        procs = " ".join(f"{p}={self.cpu_ms(p):.2f}" for p in ("web", "worker", "beat", "client"))
        return (f"capacity: {self.name}, {self.deals} deals in {self.seconds:.1f} s = "
                f"{self.deals / self.seconds:.0f} deals/s; cpu ms per deal: {procs} "
                f"redis(main thread)={self.redis_us / 1000:.2f}; redis used_memory_dataset "
                f"{self.bytes:+.0f} B per deal; commands per deal by time (in scripts too): {mix}")


def _bank_post(base: str, deal_id: str, bank_id: str, what: str, body: dict) -> dict:
    response = requests.post(f"{base}/api/v1/deals/{deal_id}/{what}", json=body, timeout=30,
                             headers=dataset.auth(dataset.BANK_TOKENS[bank_id]))
    assert response.status_code == 200, (what, response.text)
    return response.json()


def close_deal(base: str, deal_id: str, bank_id: str) -> None:
    """Approve, disburse and repay one pending deal, as its bank does through the API."""
    today = datetime.now(UTC).date().isoformat()
    view = _bank_post(base, deal_id, bank_id, "decision", {"decision": "approve"})
    amount = view["amounts"]["approved"]
    view = _bank_post(base, deal_id, bank_id, "disbursement",
                      {"amount": amount, "value_date": today, "reference": f"D{deal_id}"})
    view = _bank_post(base, deal_id, bank_id, "repayments",
                      {"amount": view["loan"]["outstanding"], "value_date": today,
                       "reference": f"R{deal_id}"})
    assert view["state"] == State.REPAID, view["state"]


def submit(stack: bench.Stack, poll: redis.Redis, indexes: range) -> list[str]:
    """POST one deal per index (16 concurrent clients) and wait until all are pending_bank,
    polling one counter (not every deal) so the bench adds nothing per deal to the mix."""
    pending = poll.zcard(keys.by_state(State.PENDING_BANK))
    sent = bench.closed_loop(stack.client, indexes, 16)
    ids = [s.deal_id for s in sent if s.deal_id]
    assert len(ids) == len(indexes), "some deals were refused"
    wait_until(lambda: poll.zcard(keys.by_state(State.PENDING_BANK)) >= pending + len(ids), 600,
               interval=0.25, what=f"{len(ids)} deals pending_bank")
    return ids


def close_all(stack: bench.Stack, poll: redis.Redis, ids: list[str]) -> None:
    pipe = poll.pipeline(transaction=False)
    for deal_id in ids:
        pipe.hget(keys.deal(deal_id), "bank_id")
    banks = [b.decode() for b in pipe.execute()]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda pair: close_deal(stack.client.base, *pair), zip(ids, banks,
                                                                             strict=True)))


def measure(stack: bench.Stack, poll: redis.Redis, deals: int, closed: int) -> list[Stage]:
    roots = stack.roots()
    poll.config_resetstat()
    before = Snapshot.take(poll, roots)
    t0 = time.perf_counter()
    ids = submit(stack, poll, range(deals))
    intake = Stage("POST -> pending_bank", deals, time.perf_counter() - t0, before,
                   Snapshot.take(poll, roots))
    t0 = time.perf_counter()
    close_all(stack, poll, ids[:closed])
    servicing = Stage("pending_bank -> approved -> disbursed -> repaid", closed,
                      time.perf_counter() - t0, intake.after, Snapshot.take(poll, roots))
    return [intake, servicing]


# --- recording the mix with MONITOR ---------------------------------------------------------

_LINE = re.compile(r"^\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$")
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b", '"': b'"', "\\": b"\\"}


def unescape(text: str) -> bytes:
    """One MONITOR argument (sdscatrepr: backslash escapes and \\xHH) back to its bytes."""
    out, i = bytearray(), 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            out += _ESCAPES.get(nxt, nxt.encode())
            i += 2
            continue
        out += ch.encode()
        i += 1
    return bytes(out)


def parse_monitor(lines: list[str], skip_addr: str) -> tuple[list[list[bytes]], dict[str, bytes]]:
    """The commands clients sent (not the bench's own, not those inside scripts), and the
    scripts loaded meanwhile by SHA1."""
    commands, scripts = [], {}
    for line in lines:
        match = _LINE.match(line)
        if not match or match[1] == "lua" or match[1] == skip_addr:
            continue
        args = [unescape(a) for a in _ARG.findall(match[2])]
        if not args:
            continue
        if args[0].upper() == b"SCRIPT" and len(args) == 3 and args[1].upper() == b"LOAD":
            scripts[sha1(args[2]).hexdigest()] = args[2]
        commands.append(args)
    return commands, scripts


@dataclass
class Group:
    """Commands replayed as one redis-benchmark run."""

    name: str
    instances: list[list[bytes]] = field(default_factory=list)
    template: list[bytes] = field(default_factory=list)
    space: int = 0  # redis-benchmark -r (0: the template has no random part)
    ops_per_s: dict[int, float] = field(default_factory=dict)  # by pipeline depth

    def per_deal(self, deals: int) -> float:
        return len(self.instances) / deals


def group_of(args: list[bytes], scripts: dict[str, bytes]) -> str:
    name = args[0].upper().decode()
    if name in AS_PING:
        return "PING"
    if name == "EVALSHA":
        sha = args[1].decode()
        if sha == TRANSITION_SHA:
            first = 3 + int(args[2]) + 3  # after sha, nkeys, the keys and ARGV[1..3]
            events = args[first:first + int(args[first - 1])]
            return "transition:" + "+".join(json.loads(e)["type"] for e in events)
        return f"EVALSHA:{sha[:8]}" if sha in scripts else "PING"
    return name


def templated(args: list[bytes], deals: dict[str, int]) -> tuple[list[bytes], bool]:
    """``args`` with the recorded deal's id, invoice number and idempotency key as
    ``__rand_int__``; and whether anything was replaced."""
    joined = b"\0".join(args)
    for deal_id, index in deals.items():
        if deal_id.encode() not in joined:
            continue
        subs = {deal_id.encode(): b"__rand_int__",
                dataset.invoice_number(index).encode(): b"ST-__rand_int__",
                f"{dataset.EXPORTER}:b{index}".encode(): f"{dataset.EXPORTER}:b__rand_int__"
                .encode()}
        out = []
        for arg in args:
            for old, new in subs.items():
                arg = arg.replace(old, new)
            out.append(arg)
        return out, True
    return args, False


def build_groups(commands: list[list[bytes]], scripts: dict[str, bytes],
                 deals: dict[str, int]) -> list[Group]:
    groups: dict[str, Group] = {}
    for args in commands:
        name = group_of(args, scripts)
        groups.setdefault(name, Group(name)).instances.append(args)
    for group in groups.values():
        if group.name == "PING":
            group.template = [b"PING"]
        elif group.name == "BRPOP":  # a pop of a broker message from a filled list
            group.template = [b"RPOP", b"capacity:broker"]
        else:
            by_size = sorted(group.instances, key=lambda a: sum(map(len, a)))
            group.template, random_part = templated(by_size[len(by_size) // 2], deals)
            if group.name.startswith("transition:"):
                nkeys = int(group.template[2])
                group.template[3 + nkeys] = b"0"  # expected version: a first write
                group.template[3 + nkeys + 1] = b""
                group.space = WRITE_SPACE
            elif random_part:
                group.space = READ_KEYS
    return sorted(groups.values(), key=lambda g: -len(g.instances))


def record(stack: bench.Stack, poll: redis.Redis, indexes: range, work: Path) -> tuple[
        list[Group], dict[str, bytes], str]:
    """Take ``indexes`` deals through their whole life under MONITOR; the groups, the scripts
    loaded meanwhile, and the id of one repaid deal (what replayed reads find)."""
    out = work / "monitor.txt"
    with out.open("w") as sink:
        monitor = subprocess.Popen(["redis-cli", "-p", str(stack.server.port), "monitor"],
                                   stdout=sink, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        try:
            ids = submit(stack, poll, indexes)
            close_all(stack, poll, ids)
            time.sleep(0.3)
        finally:
            monitor.terminate()
            monitor.wait(10)
    me = poll.client_info()["addr"]
    commands, scripts = parse_monitor(out.read_text(errors="replace").splitlines(), me)
    deals = dict(zip(ids, indexes, strict=True))
    return build_groups(commands, scripts, deals), scripts, ids[0]


# --- replaying it with redis-benchmark --------------------------------------------------------

def _random_fill(args: list[bytes], space: int) -> list[bytes]:
    return [re.sub(rb"__rand_int__", lambda _: b"%012d" % random.randrange(space or 1), a)
            for a in args]


def prepare_replay(target: redis.Redis, source: redis.Redis, template_deal: str,
                   groups: list[Group], scripts: dict[str, bytes]) -> None:
    """Copies of a real repaid deal for the reads, the scripts loaded, broker messages to pop;
    then every template run once, refusing a transition that does not take its write path."""
    deal, events = source.dump(keys.deal(template_deal)), source.dump(keys.events(template_deal))
    for start in range(0, READ_KEYS, 1000):
        pipe = target.pipeline(transaction=False)
        for n in range(start, min(start + 1000, READ_KEYS)):
            pipe.restore(keys.deal(f"{n:012d}"), 0, deal, replace=True)
            pipe.restore(keys.events(f"{n:012d}"), 0, events, replace=True)
        pipe.execute()
    # The API token's record: a submission's create script checks it (the op "expect").
    token = keys.token(token_digest(dataset.EXPORTER_TOKEN))
    target.restore(token, 0, source.dump(token), replace=True)
    for body in [*scripts.values(), (ROOT / "workflow/lua/transition.lua").read_bytes()]:
        target.script_load(body)
    for group in groups:
        try:
            reply = target.execute_command(*_random_fill(group.template, group.space))
        except redis.ResponseError as exc:
            raise AssertionError(f"replaying {group.name} fails: {exc}") from exc
        if group.name.startswith("transition:"):
            status = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
            assert status == "OK", f"replayed {group.name} took no write path: {reply}"


_CSV_TAIL = re.compile(rb'"([0-9.]+|inf)"(?:,"[0-9.]+"){6}\s*\Z')


def redis_benchmark(port: int, args: list[bytes], requests_: int, space: int,
                    pipeline: int = PIPELINES[0]) -> float:
    """Operations per second of one command under CLIENTS clients, ``pipeline`` deep."""
    for _ in range(4):
        cmd = [b"redis-benchmark", b"-p", str(port).encode(), b"-c", str(CLIENTS).encode(),
               b"-P", str(pipeline).encode(), b"-n", str(requests_).encode(), b"--csv"]
        if space:
            cmd += [b"-r", str(space).encode()]
        done = subprocess.run(cmd + args, capture_output=True, check=True, timeout=300)
        # The test's name is the command, unquoted in its CSV field: read the numbers at the end.
        figures = _CSV_TAIL.search(done.stdout)
        assert figures, done.stdout[-500:]
        if figures[1] != b"inf":
            return float(figures[1])
        # Done within redis-benchmark's clock tick (tiny runs, fast commands): ten times more.
        requests_ *= 10
    raise AssertionError(f"redis-benchmark too fast to time: {done.stdout[-300:]!r}")


def replay(groups: list[Group], scripts: dict[str, bytes], source: redis.Redis,
           template_deal: str, appendfsync: str, work: Path, requests_: int) -> None:
    server = RedisServer(work / "replay-redis", appendonly=True, fsync=appendfsync).start()
    try:
        target = redis.Redis(port=server.port)
        prepare_replay(target, source, template_deal, groups, scripts)
        if any(g.name == "BRPOP" for g in groups):
            message = max((g for g in groups if g.name == "LPUSH"), default=None,
                          key=lambda g: len(g.instances))
            payload = message.template[-1] if message else b"x" * 1500
            redis_benchmark(server.port, [b"LPUSH", b"capacity:broker", payload],
                            requests_ * len(PIPELINES), 0)
        for pipeline in PIPELINES:
            for group in groups:
                group.ops_per_s[pipeline] = redis_benchmark(server.port, group.template,
                                                            requests_, group.space, pipeline)
    finally:
        server.stop()


def primary_time_per_deal(groups: list[Group], deals: int, pipeline: int) -> float:
    """Seconds of the primary per deal: one thread, so the groups' times add up."""
    return sum(g.per_deal(deals) / g.ops_per_s[pipeline] for g in groups)


# --- the run ------------------------------------------------------------------------------------

def run(deals: int, closed: int, monitored: int, requests_: int, appendfsync: str,
        work: Path, emit=print) -> dict[str, float]:
    """Measure, record, replay; print the lines and return the figures."""
    closed = min(closed, deals)
    with bench.pipeline_stack(work / "capacity", appendfsync, deals + monitored) as stack:
        poll = redis.Redis(port=stack.server.port, single_connection_client=True)
        stages = measure(stack, poll, deals, closed)
        for stage in stages:
            emit(stage.line())
        groups, scripts, template_deal = record(stack, poll, range(deals, deals + monitored),
                                                work)
        replay(groups, scripts, poll, template_deal, appendfsync, work, requests_)
    intake, servicing = stages
    deep, flat = PIPELINES
    per_deal = sum(g.per_deal(monitored) for g in groups)
    seconds = {p: primary_time_per_deal(groups, monitored, p) for p in PIPELINES}
    top = sorted(groups, key=lambda g: -g.per_deal(monitored) / g.ops_per_s[deep])[:10]
    emit(f"capacity: the mix a whole deal sends Redis (MONITOR over {monitored} deals, POST to "
         f"repaid): {per_deal:.1f} commands per deal in {len(groups)} groups; replayed with "
         f"redis-benchmark -c {CLIENTS}, ops/s at -P {deep} / -P {flat}, by share of time: "
         + ", ".join(f"{g.name} x{g.per_deal(monitored):.2f} at {g.ops_per_s[deep]:,.0f} / "
                     f"{g.ops_per_s[flat]:,.0f}" for g in top))
    redis_us = intake.redis_us + servicing.redis_us  # each per deal of its stage
    web_ms = intake.cpu_ms("web")
    figures = {
        "web_deals_per_core": 1000 / web_ms,
        "web_lifecycle_per_core": 1000 / (web_ms + servicing.cpu_ms("web")),
        "worker_deals_per_core": 1000 / max(intake.cpu_ms("worker"), 1e-3),
        "end_to_end_per_s": intake.deals / intake.seconds,
        "redis_us_per_deal": redis_us,
        "redis_cpu_bound_per_s": 1e6 / redis_us,
        "commands_per_deal": per_deal,
        "replay_ops_per_s": per_deal / seconds[deep],
        "replay_deals_per_s": 1 / seconds[deep],
        "replay_unpipelined_deals_per_s": 1 / seconds[flat],
        "bytes_pending": intake.bytes,
        "bytes_repaid": intake.bytes + servicing.bytes,
    }
    bound = min(figures["replay_deals_per_s"], figures["redis_cpu_bound_per_s"])
    figures["primary_deals_per_s"] = bound
    which = ("its CPU as the real clients use it"
             if bound == figures["redis_cpu_bound_per_s"] else "the replayed mix")
    emit(f"capacity: per core: {figures['web_deals_per_core']:.0f} deals/s per web core "
         f"(POST; {figures['web_lifecycle_per_core']:.0f} with the bank's three calls), "
         f"{figures['worker_deals_per_core']:.0f} deals/s per worker core")
    emit(f"capacity: one Redis primary: replayed mix at -P {deep} "
         f"{figures['replay_ops_per_s']:,.0f} ops/s = {figures['replay_deals_per_s']:,.0f} whole "
         f"deals/s (-P {flat}: {figures['replay_unpipelined_deals_per_s']:,.0f}); CPU of the "
         f"real run {redis_us:.0f} us per whole deal = {figures['redis_cpu_bound_per_s']:,.0f} "
         f"deals/s; bound {bound:,.0f} deals/s ({which}); end to end here "
         f"{figures['end_to_end_per_s']:.0f} deals/s to pending_bank")
    emit(f"capacity: memory {figures['bytes_pending']:,.0f} B per pending deal, "
         f"{figures['bytes_repaid']:,.0f} B per repaid deal (INFO used_memory_dataset deltas, "
         "event log and every index included)")
    emit("capacity: " + " ".join(f"{k}={v:.1f}" for k, v in figures.items()))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=DEALS, help="deals POSTed to pending_bank")
    parser.add_argument("--closed", type=int, default=CLOSED,
                        help="of them approved, disbursed and repaid")
    parser.add_argument("--monitored", type=int, default=MONITORED,
                        help="deals recorded with MONITOR, POST to repaid")
    parser.add_argument("--requests", type=int, default=REQUESTS,
                        help="redis-benchmark requests per replayed command")
    parser.add_argument("--appendfsync", choices=("always", "everysec"),
                        default=os.environ.get("APPENDFSYNC", "always"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("redis-benchmark"):
        print("capacity: no redis-benchmark on PATH (Debian: redis-tools)")
        return 1
    print(f"machine: {bench.machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="xinbao-capacity-") as tmp:
        run(args.deals, args.closed, args.monitored, args.requests, args.appendfsync,
            Path(tmp), emit=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
