"""`make bench`, whitelist import: 100,000 members from CSV and XLSX through `xinbao whitelist
import` into a private redis-server (AOF, ``appendfsync`` as the main bench), then a second
import of the same programme with 1% of the members changed.

Each import is the real command in its own process, timed from start to exit (Python start-up
included), then the same import in process, split into reading and validating the file and
writing the set and swapping it in. Alone:
``python -m tests.stress.bench_whitelist [--members N] [--appendfsync everysec]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import redis

from tests.support import BIN, RedisServer
from workflow import keys
from workflow.identifiers import uscc_check_character

MEMBERS = 100_000
PROGRAMME = "BENCH-TONGBAO"
_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def uscc_for(number: int, region: str = "330200") -> str:
    """A valid USCC, different for every ``number`` below 31**9: an enterprise (91) of
    ``region`` whose 9 organisation-code characters spell ``number`` in the USCC alphabet."""
    body = ""
    for _ in range(9):
        number, digit = divmod(number, len(_ALPHABET))
        body = _ALPHABET[digit] + body
    first17 = f"91{region}{body}"
    return first17 + uscc_check_character(first17)


def write_members_csv(path: Path, count: int, *, start: int = 0, encoding: str = "utf-8") -> None:
    """A member list as programmes publish it: Chinese header, USCC, name, a region column."""
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["序号", "统一社会信用代码", "企业名称", "所属区域"])
        for i in range(start, start + count):
            writer.writerow([i + 1, uscc_for(i), f"宁波测试贸易有限公司{i}", "宁波"])


def write_members_xlsx(path: Path, count: int, *, start: int = 0) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("名单")
    sheet.append(["序号", "统一社会信用代码", "企业名称", "所属区域"])
    for i in range(start, start + count):
        sheet.append([i + 1, uscc_for(i), f"宁波测试贸易有限公司{i}", "宁波"])
    book.save(path)


def _import(url: str, path: Path) -> tuple[float, str]:
    command = [
        str(BIN / "xinbao"),
        "whitelist",
        "import",
        str(path),
        "--programme",
        PROGRAMME,
        "--region",
        "Ningbo",
        "--valid-from",
        "2026-01-01",
        "--valid-to",
        "2026-12-31",
    ]
    started = time.perf_counter()
    done = subprocess.run(
        command, env={**os.environ, "REDIS_URL": url}, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - started, done.stdout


def _in_process(r: redis.Redis, path: Path) -> tuple[float, float]:
    """(reading and validating, writing and swapping) seconds of one import in this process."""
    from workflow.reference.whitelist_file import MemberFile
    from workflow.reference.whitelist_import import ProgrammeSpec, import_whitelist

    started = time.perf_counter()
    members = MemberFile(path).read().members
    read = time.perf_counter() - started
    spec = ProgrammeSpec(PROGRAMME + "-INPROC", "Ningbo", date(2026, 1, 1), date(2026, 12, 31))
    r.delete(keys.whitelist_members(spec.programme))
    started = time.perf_counter()
    import_whitelist(r, spec, members, now=datetime.now(UTC))
    return read, time.perf_counter() - started


def run(members: int, appendfsync: str, work: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    server = RedisServer(work / "redis-whitelist", appendonly=True, fsync=appendfsync).start()
    try:
        r = redis.Redis.from_url(server.url, decode_responses=True)
        files = {
            "csv": work / "members.csv",
            "xlsx": work / "members.xlsx",
        }
        write_members_csv(files["csv"], members)
        write_members_xlsx(files["xlsx"], members)
        changed = work / "members-changed.csv"
        # The next version: the first 1% gone, as many new ones at the end.
        write_members_csv(changed, members, start=members // 100)
        for kind, path in files.items():
            r.delete(keys.whitelist_members(PROGRAMME))
            total, _ = _import(server.url, path)
            read, write = _in_process(r, path)
            out[f"{kind}_import_s"] = total
            out[f"{kind}_read_s"] = read
            out[f"{kind}_write_s"] = write
            size = path.stat().st_size / 1e6
            print(
                f"whitelist import, {members:,} members from {kind.upper()} ({size:.1f} MB):"
                f" {total:.2f} s for the command; in process, reading and validating"
                f" {read:.2f} s, writing and swapping {write:.2f} s",
                flush=True,
            )
        total, stdout = _import(server.url, changed)
        out["reimport_s"] = total
        assert r.scard(keys.whitelist_members(PROGRAMME)) == members
        summary = " / ".join(line.strip().split(":")[0] for line in stdout.splitlines()[-3:])
        print(f"re-import with 1% changed: {total:.2f} s ({summary})", flush=True)
        memory = r.memory_usage(keys.whitelist_members(PROGRAMME)) or 0
        print(f"member set in Redis: {memory / 1e6:.1f} MB", flush=True)
    finally:
        server.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=MEMBERS)
    parser.add_argument(
        "--appendfsync",
        choices=("always", "everysec"),
        default=os.environ.get("APPENDFSYNC", "always"),
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xinbao-bench-whitelist-") as tmp:
        run(args.members, args.appendfsync, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
