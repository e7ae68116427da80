"""Page languages (Chinese, English): which one a request gets, and the switch that sets it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    has_request_context,
    redirect,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import Babel, get_locale
from flask_login import current_user
from werkzeug.exceptions import BadRequest

from web.auth.session import safe_next
from workflow.users import LANGUAGES, OFFICER, User

ZH, EN = LANGUAGES
# Pages are for people in China: times in Shanghai; storage and the API stay in UTC.
TIMEZONE = "Asia/Shanghai"
# The browser's choice, for the login page and users who have not saved one.
COOKIE = "xinbao_lang"
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest a browser keeps a cookie (RFC 6265bis)
# A language picked before signing in, saved to the user's record at login.
CHOSEN = "lang_chosen"
# The lang attribute of the pages (BCP 47): Simplified Chinese as written in mainland China.
HTML_LANG = {ZH: "zh-CN", EN: "en"}

babel = Babel()
i18n = Blueprint("i18n", __name__)


def _cookie_language() -> str | None:
    value = request.cookies.get(COOKIE)
    return value if value in LANGUAGES else None


def role_default(role: str) -> str:
    """Bank officers read English unless they choose; exporters Chinese."""
    return EN if role == OFFICER else ZH


def select_locale() -> str:
    """The signed-in user's saved choice, else this browser's, else the role's default; before
    signing in the browser's choice, else its Accept-Language, else Chinese."""
    if not has_request_context():
        return ZH
    chosen = _cookie_language()
    if current_user.is_authenticated:
        return current_user.user.language or chosen or role_default(current_user.role)
    return chosen or request.accept_languages.best_match(LANGUAGES) or ZH


def language() -> str:
    """The language of the page being rendered ("zh" or "en")."""
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES else ZH


def remember(response: Any, lang: str) -> Any:
    """Keep ``lang`` as this browser's choice."""
    settings = current_app.extensions["xinbao_settings"]
    response.set_cookie(
        COOKIE,
        lang,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=settings.production,
    )
    return response


def on_login(user: User, chosen: Any) -> str | None:
    """At sign-in: a language picked on the sign-in page becomes the user's saved choice.
    Returns the language this browser should remember (None: keep what it has)."""
    if chosen in LANGUAGES and chosen != user.language:
        current_app.extensions["xinbao_users"].set_language(user.username, chosen)
        return chosen
    return user.language


def _back_to() -> str:
    """Where a language switch returns: the page it was made on, if it is on this site."""
    target = safe_next(request.form.get("next"))
    return target or url_for("auth.home")


@i18n.post("/language")
def switch() -> ResponseReturnValue:
    """Switch the pages' language: a form on every page (CSRF-checked, no script needed)."""
    lang = request.form.get("lang")
    if lang not in LANGUAGES:
        raise BadRequest("unknown language")
    if current_user.is_authenticated:
        current_app.extensions["xinbao_users"].set_language(current_user.username, lang)
    else:
        session[CHOSEN] = lang
    return remember(redirect(_back_to(), 303), lang)


def here() -> str:
    """The page to come back to after switching language: this one for a GET, else the page
    the form was posted from (never a POST-only address)."""
    if request.method == "GET":
        path = request.full_path
        return safe_next(path[:-1] if path.endswith("?") else path) or ""
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc and referrer.netloc != request.host:
        return ""
    back = referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return safe_next(back) or ""


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", ZH)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", TIMEZONE)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=lambda: TIMEZONE)
    # Whitespace inside {% trans %} blocks is collapsed, as the extraction does (babel.cfg).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.register_blueprint(i18n)

    @app.context_processor
    def _languages() -> dict[str, Any]:
        return {
            "language": language,
            "html_lang": lambda: HTML_LANG[language()],
            "language_next": here,
        }
