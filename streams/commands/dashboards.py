"""`merchant-monitor dashboards`: render the Grafana files, or push the dashboards to a Grafana."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
)

from dashboards import render
from dashboards.common import FOLDER_TITLE, FOLDER_UID
from dashboards.grafana_json import to_json
from streams.errors import StreamsError

log = logging.getLogger(__name__)

Json = dict[str, Any]


class GrafanaPushError(StreamsError):
    """Pushing the dashboards to Grafana failed."""


@dataclass
class PushResult:
    """What a push did: the folder used, and the dashboards created and updated (uids)."""

    folder_uid: str
    folder_created: bool
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


@click.group("dashboards")
def command() -> None:
    """Grafana dashboards and alert rules, defined as code in dashboards/."""


@command.command("render")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write into [default: deploy/grafana of the repository].",
)
@click.option("--check", is_flag=True, help="Write nothing; fail if the files are not current.")
def render_command(out: Path | None, check: bool) -> None:
    """Write the dashboard JSON and the provisioning files (datasource, dashboards, alert rules).

    Files are rendered with sorted keys, so a change in dashboards/ shows as a readable diff.
    Generated files that the code no longer produces are removed; other files are left alone.
    """
    out = out or render.default_output()
    if check:
        problems = render.check(out)
        if problems:
            raise click.ClickException(
                f"the Grafana files under {out} are not current "
                "(run `merchant-monitor dashboards render`):\n  " + "\n  ".join(problems)
            )
        click.echo(f"up to date: {out}")
        return
    changed = render.write(out)
    click.echo(f"{len(changed)} file(s) changed under {out}")
    for path in changed:
        click.echo(f"  {path.relative_to(out).as_posix()}")


@command.command("push")
@click.option(
    "--grafana-url",
    envvar="GRAFANA_URL",
    show_envvar=True,
    required=True,
    help="Grafana's base URL, e.g. https://grafana.example.com (with its sub-path, if any).",
)
@click.option(
    "--token",
    envvar="GRAFANA_TOKEN",
    show_envvar=True,
    required=True,
    help="A service-account token with the Editor role (secret: prefer the environment "
    "variable, a command-line argument is visible to other users of the machine).",
)
@click.option("--folder", default=FOLDER_TITLE, show_default=True, help="Folder title.")
@click.option("--timeout", type=click.FloatRange(0.1, 300), default=10.0, show_default=True)
def push_command(grafana_url: str, token: str, folder: str, timeout: float) -> None:
    """Create or update every dashboard in a Grafana, by uid (safe to repeat).

    The folder is created when missing. Meant for a Grafana that does not provision these
    dashboards from files (docker-compose does): Grafana refuses to overwrite a provisioned one.
    """
    dashboards = [to_json(d) for d in render.dashboards()]
    try:
        result = push(grafana_url, token, folder, dashboards, timeout)
    except GrafanaPushError as exc:
        raise click.ClickException(str(exc)) from exc
    state = "created" if result.folder_created else "found"
    click.echo(f"folder {folder!r} ({result.folder_uid}) {state} at {safe_url(grafana_url)}")
    click.echo(f"{len(result.created)} dashboard(s) created, {len(result.updated)} updated")


def safe_url(url: str) -> str:
    """The URL without credentials or query, fit for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def folder_uid_for(title: str) -> str:
    """A stable folder uid: ours for the default title, else the title's slug (<= 40 chars)."""
    if title == FOLDER_TITLE:
        return FOLDER_UID
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in title.lower())
    return "-".join(part for part in slug.split("-") if part)[:40] or FOLDER_UID


def _failure(exc: Exception, where: str, what: str, token: str) -> GrafanaPushError:
    status = getattr(exc, "status_code", 0) or 0
    detail = str(getattr(exc, "message", "") or exc)
    if status == 401:
        message = f"Grafana at {where} rejected the token (401 Unauthorized) {what}"
    elif status == 403:
        message = (
            f"the token may not do this (403 Forbidden) {what}: it needs the Editor role "
            "(Admin to create folders)"
        )
    elif status == 404:
        message = f"not found (404) {what}: is {where} Grafana's base URL? ({detail})"
    elif isinstance(exc, GrafanaClientError):
        message = f"Grafana refused {what} ({status}): {detail}"
    elif isinstance(exc, GrafanaServerError):
        message = f"Grafana at {where} failed {what} ({status}): {detail}"
    elif isinstance(exc, GrafanaTimeoutError):
        message = f"Grafana at {where} did not answer in time {what}"
    else:
        # A connection error's text nests the pool's; its errno part is what a person needs.
        cause = re.search(r"\[Errno -?\d+\][^'\")]*|Failed to resolve '[^']*'", detail)
        message = f"cannot reach Grafana at {where} {what}: {cause.group(0) if cause else detail}"
    # The token is never part of our messages; make sure no echoed response carries it either.
    return GrafanaPushError(message.replace(token, "***") if token else message)


def _ensure_folder(api: GrafanaApi, title: str) -> tuple[str, bool]:
    """The folder's uid, creating the folder when neither its uid nor its title exists."""
    uid = folder_uid_for(title)
    folders = api.folder  # grafana-client's methods carry no annotations
    try:
        return str(folders.get_folder(uid)["uid"]), False  # type: ignore[no-untyped-call]
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
    for existing in folders.get_all_folders():  # type: ignore[no-untyped-call]
        if existing.get("title") == title:
            return str(existing["uid"]), False
    created = folders.create_folder(title, uid=uid)  # type: ignore[no-untyped-call]
    log.info("created folder %s (%s)", title, created.get("uid", uid))
    return str(created.get("uid", uid)), True


def push(
    url: str, token: str, folder: str, dashboards: list[Json], timeout: float = 10.0
) -> PushResult:
    """Upsert ``dashboards`` (Grafana JSON models) into ``folder`` by uid, with overwrite."""
    where = safe_url(url)
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    try:
        folder_uid, folder_created = _ensure_folder(api, folder)
    except (GrafanaException, OSError) as exc:
        raise _failure(exc, where, f"while finding or creating folder {folder!r}", token) from exc
    result = PushResult(folder_uid=folder_uid, folder_created=folder_created)
    for dashboard in dashboards:
        what = f"while saving dashboard {dashboard['uid']} ({dashboard['title']})"
        body = {
            "dashboard": {**dashboard, "id": None},
            "folderUid": folder_uid,
            "message": "merchant-monitor dashboards push",
            "overwrite": True,
        }
        try:
            response = api.dashboard.update_dashboard(body)
        except (GrafanaException, OSError) as exc:
            raise _failure(exc, where, what, token) from exc
        if not isinstance(response, dict) or response.get("status") != "success":
            raise GrafanaPushError(f"Grafana answered {response!r} {what}")
        bucket = result.created if response.get("version") == 1 else result.updated
        bucket.append(str(dashboard["uid"]))
        log.info("saved dashboard %s, version %s", dashboard["uid"], response.get("version"))
    return result
