"""A small client of Label Studio's REST API (the calls svpkit needs), through ``requests``.

Authentication takes either kind of token Label Studio hands out:

- a **personal access token** (a JWT refresh token, Label Studio's default since 1.15): it is
  exchanged at ``/api/token/refresh`` for a short-lived access token, sent as ``Bearer``;
- a **legacy API token** (40 hex characters; the server must allow them,
  ``--enable-legacy-api-token``): sent as ``Token``.

:func:`connect` checks the server and the token before anything else happens, so a wrong token or
an unreachable server is one :class:`~svpkit.errors.ConfigError` (exit code 2) while nothing has
been created in svpkit or Label Studio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from svpkit.errors import ConfigError

TIMEOUT = 30.0
PAGE = 1000


class LabelStudioError(ConfigError):
    """Label Studio refused a call or could not be reached (one sentence, exit code 2)."""


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2


@dataclass
class LabelStudio:
    """A logged-in connection to one Label Studio server."""

    url: str
    token: str
    session: requests.Session = field(default_factory=requests.Session)
    user: dict[str, Any] = field(default_factory=dict)

    # -- plumbing ------------------------------------------------------------------------------
    def _authorize(self) -> None:
        if not _is_jwt(self.token):
            self.session.headers["Authorization"] = f"Token {self.token}"
            return
        reply = self._raw("POST", "/api/token/refresh", json={"refresh": self.token}, auth=False)
        if reply.status_code != 200 or "access" not in reply.json():
            raise LabelStudioError(
                f"Label Studio at {self.url} refused the personal access token "
                f"(HTTP {reply.status_code} from /api/token/refresh)"
            )
        self.session.headers["Authorization"] = f"Bearer {reply.json()['access']}"

    def _raw(self, method: str, path: str, auth: bool = True, **kwargs: Any) -> requests.Response:
        session = self.session if auth else requests
        try:
            return session.request(method, self.url + path, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            reason = type(exc).__name__
            raise LabelStudioError(f"cannot reach Label Studio at {self.url} ({reason})") from None

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of one call; a LabelStudioError naming the call when it fails."""
        reply = self._raw(method, path, **kwargs)
        if reply.status_code == 401 and _is_jwt(self.token):  # the access token expired: once more
            self._authorize()
            reply = self._raw(method, path, **kwargs)
        if reply.status_code >= 400:
            detail = " ".join(reply.text.split())[:300]
            raise LabelStudioError(f"Label Studio {method} {path} failed (HTTP {reply.status_code}): {detail}")
        return reply.json() if reply.content else None

    # -- the calls -----------------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        reply = self._raw("GET", "/api/current-user/whoami")
        if reply.status_code in (401, 403):
            raise LabelStudioError(
                f"Label Studio at {self.url} refused the token (HTTP {reply.status_code}); "
                "give a personal access token or an enabled legacy token (--ls-token or $LABEL_STUDIO_API_KEY)"
            )
        if reply.status_code != 200:
            raise LabelStudioError(f"{self.url} does not answer like a Label Studio server (HTTP {reply.status_code})")
        try:
            return dict(reply.json())
        except ValueError:
            raise LabelStudioError(f"{self.url} does not answer like a Label Studio server") from None

    def projects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            reply = self.call("GET", "/api/projects/", params={"page": page, "page_size": 100})
            rows = reply["results"] if isinstance(reply, dict) else reply
            found += rows
            if not isinstance(reply, dict) or not reply.get("next"):
                return found
            page += 1

    def project(self, project_id: int) -> dict[str, Any]:
        reply = self._raw("GET", f"/api/projects/{project_id}/")
        if reply.status_code == 404:
            raise LabelStudioError(f"Label Studio at {self.url} has no project {project_id}")
        if reply.status_code >= 400:
            raise LabelStudioError(f"Label Studio GET project {project_id} failed (HTTP {reply.status_code})")
        return dict(reply.json())

    def create_project(self, title: str, label_config: str, description: str) -> dict[str, Any]:
        return dict(
            self.call(
                "POST",
                "/api/projects/",
                json={"title": title, "label_config": label_config, "description": description},
            )
        )

    def local_storages(self, project_id: int) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/storages/localfiles/", params={"project": project_id}))

    def add_local_storage(self, project_id: int, path: str, title: str) -> dict[str, Any]:
        body = {"project": project_id, "path": path, "title": title, "use_blob_urls": False, "regex_filter": ""}
        return dict(self.call("POST", "/api/storages/localfiles/", json=body))

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> None:
        self.call("POST", f"/api/projects/{project_id}/import", json=tasks, params={"commit_to_project": "true"})

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations (cancelled ones included) and predictions."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            reply = self._raw(
                "GET",
                "/api/tasks/",
                params={"project": project_id, "page": page, "page_size": PAGE, "fields": "all"},
            )
            if reply.status_code == 404:  # past the last page
                return found
            if reply.status_code >= 400:
                raise LabelStudioError(f"Label Studio GET /api/tasks/ failed (HTTP {reply.status_code})")
            rows = reply.json().get("tasks", [])
            found += rows
            if len(rows) < PAGE:
                return found
            page += 1

    def views(self, project_id: int) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/dm/views/", params={"project": project_id}))

    def add_view(self, project_id: int, data: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("POST", "/api/dm/views/", json={"project": project_id, "data": data}))

    def annotations(self, task_id: int) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/api/tasks/{task_id}/annotations/"))


def connect(url: str, token: str | None) -> LabelStudio:
    """A connection whose token the server accepted; a LabelStudioError (nothing done yet) otherwise."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--label-studio must be an http(s) URL, got {url!r}")
    if not token:
        raise ConfigError("no Label Studio token: give --ls-token or set $LABEL_STUDIO_API_KEY")
    ls = LabelStudio(url.rstrip("/"), token.strip())
    ls._authorize()
    ls.user = ls.whoami()
    return ls
