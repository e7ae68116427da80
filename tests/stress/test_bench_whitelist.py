"""The whitelist bench run small so it cannot rot: the real command imports both files and
the re-import replaces 1% of the members."""

from __future__ import annotations

import pytest

from tests.stress import bench_whitelist as bw
from workflow.identifiers import uscc_fault


def test_generated_usccs_are_valid_and_distinct():
    codes = [bw.uscc_for(n) for n in range(0, 31**3, 7)]
    assert len(set(codes)) == len(codes)
    assert [c for c in codes if uscc_fault(c)] == []


@pytest.mark.redis
def test_bench_runs_small(tmp_path, capsys):
    out = bw.run(300, "everysec", tmp_path)
    assert set(out) == {
        f"{kind}_{step}_s" for kind in ("csv", "xlsx") for step in ("import", "read", "write")
    } | {"reimport_s"}
    printed = capsys.readouterr().out
    assert "300 members from CSV" in printed and "300 members from XLSX" in printed
    assert "re-import with 1% changed" in printed
    assert "added 3 / removed 3 / unchanged 297" in printed
