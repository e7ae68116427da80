"""Request ids: taken from a sane ``X-Request-ID`` or made up, put in the log context for the
request (and so into the tasks it publishes), and returned in the response's header."""

from __future__ import annotations

from flask import Flask, Response, g, request

from workflow.logs import bind, new_request_id, sane_request_id, unbind

HEADER = "X-Request-ID"


def init_app(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        request_id = sane_request_id(request.headers.get(HEADER)) or new_request_id()
        g.request_id = request_id
        g.log_token = bind(request_id=request_id)

    @app.after_request
    def _answer(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[HEADER] = request_id
        return response

    @app.teardown_request
    def _end(_exc: BaseException | None) -> None:
        token = g.pop("log_token", None)
        if token is not None:
            unbind(token)
