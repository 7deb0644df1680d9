"""What every console page goes through: login, the guard, and rendering.

The guard: the Host must be the server's own (a page reached through another name — DNS rebinding,
a proxy — is refused), a page needs a live session (else the login page), its workspace must be
one the session's key may see, and every POST must carry the session's CSRF token. API errors
raised by a page become an error page naming the code and the member, never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tcdeploy.protocol.errors import ApiError, InvalidParameterValue, UnauthorizedOperation

from ..control.backend import Backend
from ..settings import AccessKey
from .actions import Actions
from .session import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, Sessions

log = logging.getLogger("tcdeploy.server")

HERE = Path(__file__).parent
MAX_FORM_BYTES = 1 * 2**20
DEFAULT_WORKSPACE = "default"


@dataclass
class Page:
    """What a page handler is handed: the request, who asks, for which workspace, and the form of
    a POST (already CSRF-checked)."""

    request: Request
    session: Session
    ws: str
    console: Console
    form: dict[str, str] = field(default_factory=dict)
    form_lists: dict[str, list[str]] = field(default_factory=dict)

    @property
    def path(self) -> Mapping[str, str]:
        return self.request.path_params

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query_params

    async def data(self, action: str, params: dict[str, Any]) -> Any:
        return await self.console.actions.data(self.session, self.ws, action, params)

    async def call(self, action: str, params: dict[str, Any], **kw: Any) -> dict:
        return await self.console.actions.call(self.session, self.ws, action, params, **kw)

    @property
    def verb(self) -> str:
        """The last segment of the path (`…/stop`): what a lifecycle form asks for."""
        return self.request.url.path.rsplit("/", 1)[-1]

    def url(self, tail: str = "") -> str:
        return f"{self.console.root}/w/{quote(self.ws, safe='')}{tail}"

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        if "group" in values and values["group"]:
            values.setdefault("gu", self.url(f"/groups/{values['group']['ServiceGroupId']}"))
        return self.console.render(template, status, session=self.session, ws=self.ws, w=self.url(), **values)

    def redirect(self, tail: str, flash: str = "") -> RedirectResponse:
        target = self.url(tail) + (("&" if "?" in tail else "?") + "flash=" + quote(flash) if flash else "")
        return RedirectResponse(target, status_code=303)


Handler = Callable[[Page], Awaitable[Response]]


class Console:
    def __init__(
        self, backend: Backend, keys: Mapping[str, AccessKey], *, public_url: str, own_hosts: set[str], root: str
    ) -> None:
        self.actions = Actions(backend, public_url)
        self.backend = backend
        self.sessions = Sessions(keys, backend.secret.derived_key("console-session"))
        self.own_hosts = own_hosts
        self.root = root
        self.public_url = public_url
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(), trim_blocks=True
        )

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        values.setdefault("title", "")
        html = self.templates.get_template(template).render(root=self.root, **values)
        return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A page handler behind the guard."""

        async def guarded(request: Request) -> Response:
            if request.headers.get("host", "") not in self.own_hosts:
                return Response("unknown host", status_code=421)
            session = self.sessions.read(request.cookies.get(COOKIE))
            if session is None:
                if request.method != "GET":
                    return self._refused("Your session has expired or was closed: log in again.", 401)
                return RedirectResponse(f"{self.root}/login?next={quote(request.url.path)}", status_code=303)
            # Pages outside a workspace (home, logout) act in the key's first one.
            ws = request.path_params.get("ws") or _first_workspace(session)
            if not session.allows(ws):
                return self._refused(f"This SecretId may not see workspace {ws!r}.", 403, session, ws)
            page = Page(request, session, ws, self)
            try:
                if request.method == "POST":
                    await self._read_form(page)
                    token = request.headers.get(CSRF_HEADER) or page.form.get(CSRF_FIELD)
                    if not self.sessions.csrf_valid(session, token):
                        return self._refused(
                            "The form's CSRF token is missing or wrong: reload the page.", 403, session, ws
                        )
                return await handler(page)
            except ApiError as exc:
                status = 403 if isinstance(exc, UnauthorizedOperation) else 400
                back = request.headers.get("referer") if request.method == "POST" else None
                return page.render("error.html", status, title="The action was refused", error=exc, back=back)
            except Exception:
                log.exception("console page %s %s failed", request.method, request.url.path)
                return page.render("error.html", 500, title="Something went wrong on the server; its log says what.")

        return guarded

    @staticmethod
    async def _read_form(page: Page) -> None:
        pairs = await _form_pairs(page.request)
        page.form = dict(pairs)
        for name, value in pairs:
            page.form_lists.setdefault(name, []).append(value)

    def _refused(self, message: str, status: int, session: Session | None = None, ws: str = "") -> HTMLResponse:
        return self.render("error.html", status, title=message, session=session, ws=ws)

    # ---- login ------------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        if request.headers.get("host", "") not in self.own_hosts:
            return Response("unknown host", status_code=421)
        return self.render("login.html", title="Log in", next=_safe_next(request.query_params.get("next"), self.root))

    async def login(self, request: Request) -> Response:
        if request.headers.get("host", "") not in self.own_hosts or not self._same_origin(request):
            return Response("cross-origin login refused", status_code=403)
        form = dict(await _form_pairs(request))
        cookie = self.sessions.login(form.get("secret_id", "").strip(), form.get("secret_key", ""))
        nxt = _safe_next(form.get("next"), self.root)
        if cookie is None:
            return self.render(
                "login.html",
                401,
                title="Log in",
                next=nxt,
                flash="Unknown SecretId or wrong SecretKey.",
                flash_kind="error",
            )
        response = RedirectResponse(nxt, status_code=303)
        response.set_cookie(
            COOKIE, cookie, max_age=self.sessions.ttl, path=self.root, httponly=True, samesite="strict",
            secure=self.public_url.startswith("https:"),
        )  # fmt: skip
        return response

    async def logout(self, page: Page) -> Response:
        self.sessions.logout(page.session)
        response = RedirectResponse(f"{self.root}/login", status_code=303)
        response.delete_cookie(COOKIE, path=self.root, httponly=True, samesite="strict")
        return response

    async def home(self, page: Page) -> Response:
        wanted = page.query.get("ws") or _first_workspace(page.session)
        return RedirectResponse(f"{self.root}/w/{quote(wanted, safe='')}/groups", status_code=303)

    def _same_origin(self, request: Request) -> bool:
        """A browser names the page a form was sent from; it must be one of ours."""
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        return origin.split("://", 1)[-1] in self.own_hosts


_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
}


async def _form_pairs(request: Request) -> list[tuple[str, str]]:
    """A urlencoded form's fields (the console sends no files)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ApiError(f"the form is over {MAX_FORM_BYTES // 2**20} MiB", code="RequestSizeLimitExceeded")
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def _safe_next(target: str | None, root: str) -> str:
    """Where to go after logging in: a page of the console only (never another site)."""
    if target and target.startswith(root + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return root + "/"


def _first_workspace(session: Session) -> str:
    named = [w for w in session.workspaces if w != "*"]
    return DEFAULT_WORKSPACE if "*" in session.workspaces or not named else named[0]


def whole_number(value: str | None, default: int, field: str = "page") -> int:
    """A form's or a query's whole number (`default` when empty), refused naming the field."""
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidParameterValue(field, f"{value!r} is not a whole number") from None
