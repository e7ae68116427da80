"""Bank officers as the maker-checker rule compares them: who made a step and who may check it."""

from __future__ import annotations

from workflow.errors import CHECKER_ROLE_REQUIRED, SAME_OFFICER, MakerCheckerRefused
from workflow.users import normalize_username


def officer_id(name: str) -> str:
    """How an officer is compared and indexed: a username in its stored form (as logins
    and the checker-role lookup read it), any other name trimmed and case-folded."""
    return normalize_username(name) or " ".join(name.split()).casefold()


def check_officers(maker: str, checker: str, may_check: bool, deal_id: str) -> None:
    """Refuse a check by the maker (under any spelling of the name) or by an officer
    without the checker role."""
    if officer_id(checker) == maker:
        raise MakerCheckerRefused(
            SAME_OFFICER,
            f"you made this step on deal {deal_id}; a different officer with the checker "
            "role must check it",
        )
    if not may_check:
        raise MakerCheckerRefused(
            CHECKER_ROLE_REQUIRED,
            f"deal {deal_id} awaits a check, which only an officer with the checker role can give",
        )


__all__ = ["check_officers", "officer_id"]
