"""Review of the exporter portal's application form: tampered line indexes and buttons."""

from __future__ import annotations

from tests.web.test_portal import Form, exporter, exporter_deals, line


def test_a_non_ascii_digit_line_index_is_a_form_error_not_a_500(app, users_clock):
    """WTForms' FieldList takes any key whose index passes str.isdigit() and then calls int()
    on it: "invoices-²-number" (a superscript two is a digit to isdigit, not to int) crashes
    the form before the view can answer. A tampered field name must never be a 500."""
    client = exporter(app, "haixin")
    data = Form(client).data([line("INV-HX-1001")])
    data["invoices-\u00b2-number"] = "INV-HX-1002"
    rv = client.post("/exporter/deals/new", data=data)
    assert rv.status_code < 500, rv.status_code
    assert rv.mimetype == "text/html"


def test_a_malformed_remove_button_does_not_submit_the_application(app, users_clock):
    """The "Remove" buttons post remove=<line index>. A value that is not an integer
    ("abc", "1e3") is read as no remove at all, and the request falls through to submitting
    the application: a request that asked to remove a line creates a deal."""
    client = exporter(app, "haixin")
    rv = Form(client).post([line("INV-HX-1001"), line("INV-HX-1002")],
                           requested_amount="80000.00", remove="abc")
    assert rv.status_code != 302, rv.headers.get("Location")
    assert exporter_deals(app) == []


def test_a_head_request_of_the_form_answers_like_its_get(app, users_clock):
    """The view tells GET from POST by ``request.method == "GET"``; a HEAD (link checkers,
    monitors, some browsers' prefetch) is neither, so it takes the submit path with an empty
    form and answers 422 "Nothing was submitted" instead of the 200 of the page."""
    client = exporter(app, "haixin")
    assert client.get("/exporter/deals/new").status_code == 200
    rv = client.head("/exporter/deals/new")
    assert rv.status_code == 200, rv.status_code
