"""campaign-inbox: produce every new brief dropped in the inbox (a folder or an S3 prefix), each exactly once.

The key is the brief's content hash (``Brief.content_hash``): the campaign's flow run is created with the
idempotency key ``campaign-inbox:<hash>``, so a brief seen twice (dropped again, or a pass that crashed
before moving it) never starts a second run, while an edited brief is new content and a new run. A
handled brief moves to ``handled/``; one that does not validate moves to ``rejected/`` with its problems
written beside it. Deployed with a cron schedule (deployments/prefect.yaml).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from prefect import flow, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterIdempotencyKey
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from pydantic import BaseModel, ConfigDict, Field

from syncreel.schemas.brief import Brief, BriefError, BriefIssue, parse_document, validate_brief
from syncreel.schemas.document import DEFAULT_LIMITS, DocumentError, read_capped
from syncreel.schemas.errors import InputError
from syncreel.schemas.settings import get_settings
from syncreel.store.s3 import S3Folder

BRIEF_SUFFIXES = (".yaml", ".yml", ".json")


class Inbox(Protocol):
    """Briefs waiting at the top level of the inbox, by name; handled ones move to a sub-folder."""

    def names(self) -> list[str]: ...
    def read(self, name: str) -> Brief: ...
    def move(self, name: str, folder: str, new_name: str, note: str | None = None) -> None: ...


def _parse(text: str, source: str, base_uri: str) -> Brief:
    data = parse_document(text, source, as_json=source.lower().endswith(".json"))
    return validate_brief(data, source, base_uri=base_uri)  # relative references resolve in the inbox


class FolderInbox:
    def __init__(self, folder: Path):
        self.folder = folder

    def names(self) -> list[str]:
        found = self.folder.iterdir() if self.folder.is_dir() else []
        return sorted(p.name for p in found if p.is_file() and p.suffix.lower() in BRIEF_SUFFIXES)

    def read(self, name: str) -> Brief:
        path = self.folder / name
        try:
            text = read_capped(path)
        except DocumentError as exc:
            raise BriefError(str(path), [BriefIssue(loc=exc.where, message=exc.message)]) from None
        return _parse(text, str(path), str(self.folder.resolve()))

    def move(self, name: str, folder: str, new_name: str, note: str | None = None) -> None:
        target = self.folder / folder / new_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.folder / name), target)
        if note is not None:
            target.with_name(new_name + ".errors.txt").write_text(note)


class S3Inbox:
    def __init__(self, bucket: str, prefix: str):
        self.folder = S3Folder(bucket, prefix)

    def names(self) -> list[str]:
        return [name for name in self.folder.names() if name.lower().endswith(BRIEF_SUFFIXES)]

    def read(self, name: str) -> Brief:
        base, limit = self.folder.uri, DEFAULT_LIMITS.max_bytes
        body = self.folder.read(name, limit)
        try:
            if len(body) > limit:
                raise DocumentError("(file)", f"larger than {limit:,} bytes; a brief is at most that")
            text = body.decode("utf-8")
        except (DocumentError, UnicodeDecodeError) as exc:
            issue = BriefIssue(loc=getattr(exc, "where", "(file)"), message=getattr(exc, "message", "not UTF-8 text"))
            raise BriefError(f"{base}/{name}", [issue]) from None
        return _parse(text, f"{base}/{name}", base)

    def move(self, name: str, folder: str, new_name: str, note: str | None = None) -> None:
        target = f"{folder}/{new_name}"
        self.folder.copy(name, target)
        if note is not None:
            self.folder.write(f"{target}.errors.txt", note.encode())
        self.folder.delete(name)


def open_inbox(url: str) -> Inbox:
    """``file://FOLDER`` (or a plain path) or ``s3://bucket/prefix``."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        return S3Inbox(parsed.netloc, parsed.path)
    if parsed.scheme in ("", "file"):
        return FolderInbox(Path(url.removeprefix("file://")))
    raise ValueError(f"{url}: an inbox is file://FOLDER or s3://bucket/prefix")


def within_inbox(url: str, root: str) -> bool:
    """Whether inbox ``url`` is the operator's inbox ``root`` or a folder (prefix) inside it."""
    given, base = urlparse(url), urlparse(root)
    if given.scheme == "s3" or base.scheme == "s3":
        if given.scheme != base.scheme or given.netloc != base.netloc:
            return False
        prefix = base.path.strip("/")
        key = given.path.strip("/")
        return not prefix or key == prefix or key.startswith(f"{prefix}/") and ".." not in key.split("/")
    folder = Path(url.removeprefix("file://")).resolve()
    return folder.is_relative_to(Path(root.removeprefix("file://")).resolve())


class InboxRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    inbox: str | None = Field(
        default=None,
        description="file://FOLDER or s3://bucket/prefix of dropped briefs, inside SYNCREEL_INBOX_URL (the "
        "operator's inbox: briefs are moved within it); default: SYNCREEL_INBOX_URL itself.",
    )
    deployment: str | None = Field(
        default=None,
        description="The produce-campaign deployment to run each brief on; default: SYNCREEL_CAMPAIGN_DEPLOYMENT.",
    )


class InboxItem(BaseModel):
    brief: str
    content_hash: str
    flow_run_id: str | None = None
    new: bool = False  # False: this content had already been started (or the brief was rejected)
    error: str | None = None


class InboxRefused(InputError):
    """An inbox run asked for a folder the operator did not make an inbox."""


def inbox_key(content_hash: str) -> str:
    return f"campaign-inbox:{content_hash}"


@flow(name="campaign-inbox", persist_result=False)
def campaign_inbox(request: InboxRequest | None = None) -> list[InboxItem]:
    request = request or InboxRequest()
    settings = get_settings()
    if request.inbox and not within_inbox(request.inbox, settings.inbox_url):
        # A run's parameters are anyone's to edit in the UI; the folder whose files get moved is the operator's.
        raise InboxRefused(
            f"inbox {request.inbox!r} is outside SYNCREEL_INBOX_URL ({settings.inbox_url}); "
            "accepted: it or a folder inside it"
        )
    inbox = open_inbox(request.inbox or settings.inbox_url)
    deployment = request.deployment or settings.campaign_deployment
    items: list[InboxItem] = []
    for name in inbox.names():
        try:
            brief = inbox.read(name)
        except BriefError as exc:
            inbox.move(name, "rejected", name, note=str(exc))
            items.append(InboxItem(brief=name, content_hash="", error=str(exc)))
            continue
        digest = brief.content_hash()
        run, new = _start_once(deployment, brief, digest)
        stem, dot, suffix = name.rpartition(".")
        inbox.move(name, "handled", f"{stem}-{digest[:12]}{dot}{suffix}")
        items.append(InboxItem(brief=name, content_hash=digest, flow_run_id=str(run.id), new=new))
    return items


def _start_once(deployment: str, brief: Brief, digest: str) -> tuple[FlowRun, bool]:
    """The campaign's flow run for this content: (the one started before, False), or (a new one, True)."""
    key = inbox_key(digest)
    with get_client(sync_client=True) as client:
        seen = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(idempotency_key=FlowRunFilterIdempotencyKey(any_=[key])), limit=1
        )
    if seen:
        return seen[0], False
    run = run_deployment(
        deployment,
        parameters={"brief": brief.model_dump(mode="json")},
        flow_run_name=f"{brief.campaign_id}-{digest[:8]}",
        idempotency_key=key,
        tags=["inbox"],
        timeout=0,
        as_subflow=False,
    )
    assert isinstance(run, FlowRun)  # called from sync code: the flow run, not a coroutine
    return run, True
