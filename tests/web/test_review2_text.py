"""Review 2 (adversarial): text that validate_text lets through."""

from __future__ import annotations

import pytest

from tests.web.conftest import auth, deal_body, error_of


@pytest.mark.parametrize("name", ["\u200b", "\ufeff", "\u200b\u200c\u2060", "\u00ad"])
def test_a_buyer_name_of_invisible_format_characters_is_blank(client, name):
    """LOW. validate_text refuses "blank" with value.strip(), and refuses Cc/Cs/Cn/Zl/Zp, but
    not format characters (Cf): a name made only of zero-width spaces, a BOM or a soft hyphen
    is accepted (202) and shown to bank officers as an empty name. (Cf also lets bidi
    overrides such as U+202E reorder what the officer reads.)"""
    body = deal_body(buyer={"code": "DE-0001", "name": name, "country": "DE"})
    rv = client.post("/api/v1/deals", json=body, headers=auth("haixin"))
    error = error_of(rv, 422, "VALIDATION_FAILED")
    assert "buyer" in error["fields"] or "buyer.name" in error["fields"], error
