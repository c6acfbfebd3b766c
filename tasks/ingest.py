"""ingest_reference: fetch a brief's reference, probe, normalize and analyse it, store it content-addressed.

Sources: a path (relative to the brief's folder), file://, s3:// (store/s3.py) or https:// (media/fetch.py:
public addresses only unless a network is allowed, size-capped, a deadline). Local paths must stay in a
root: a folder of ``SYNCREEL_REFERENCE_ROOTS``, the inbox folder, or the brief's own folder when the brief
was handed over in-process (``syncreel run``, a Python call): no ``..``, no symlink that leads out. Roots
are the operator's: a brief that arrives through the API (a UI trigger, ``run_deployment``, ``submit``,
the inbox) carries a ``base_uri`` that anyone could have written, so there it only says where relative
paths resolve, never what may be read.
Every refusal is a ReferenceRejected naming the reference id, its URI and what would be accepted;
nothing of a refused reference reaches the asset store or the database.

The output is keyed by the upload's content (plus kind, role and the code that processes it), so the
same file briefed again, by any campaign, is found instead of processed again; the normalized file is
content-addressed in the store, and a ``reference_assets`` row keeps the upload's probe and the analysis.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from prefect import task
from prefect.cache_policies import NO_CACHE

from syncreel import media
from syncreel.media.analysis import analyse_reference
from syncreel.media.errors import MediaError
from syncreel.media.fetch import FetchPolicy, fetch_https
from syncreel.media.normalize import normalize_reference
from syncreel.media.probe import probe
from syncreel.schemas.brief import Reference
from syncreel.schemas.errors import InputError
from syncreel.schemas.records import CampaignPlan, IngestedReference
from syncreel.schemas.settings import Settings
from syncreel.store import runs, s3
from syncreel.store.assets import file_sha256
from syncreel.tasks.stage import (
    NETWORK_BACKOFF,
    NETWORK_JITTER,
    NETWORK_RETRIES,
    Runtime,
    Stage,
    cache_key,
    code_fingerprint,
    store_asset,
    to_record,
    transient,
)


class ReferenceRejected(InputError):
    """A reference that cannot be used; the message names the reference id, its URI and the problem."""


def _reject(ref: Reference, problem: str) -> ReferenceRejected:
    return ReferenceRejected(f"reference {ref.id!r} ({ref.uri}): {problem}")


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        max_bytes=settings.reference_max_download_bytes,
        timeout_s=settings.reference_download_timeout_s,
        allowed_networks=settings.reference_private_networks,
    )


def _s3_download(ref: Reference, uri: str, scratch: Path) -> Path:
    try:
        return s3.download(uri, scratch)
    except s3.S3DownloadError as exc:
        raise _reject(ref, str(exc)) from exc


def reference_roots(settings: Settings) -> tuple[Path, ...]:
    """The folders the operator lets any brief's local references come from: SYNCREEL_REFERENCE_ROOTS
    and the inbox folder (whose briefs resolve their paths in it)."""
    inbox = urlparse(settings.inbox_url)
    folders = [*settings.reference_roots]
    if inbox.scheme == "file":
        folders.append(Path(inbox.netloc + inbox.path))
    return tuple(folders)


def confined_path(
    ref: Reference, base_uri: str | None, roots: tuple[Path, ...] = (), *, base_is_root: bool = True
) -> Path:
    """The local file a path or file:// reference names, if it lies in one of ``roots`` or, when
    ``base_is_root``, in the brief's folder (``base_uri``; the working directory when the brief has
    none), once every symlink is followed. Relative paths resolve in ``base_uri`` either way."""
    try:
        return _confined(ref, base_uri, roots, base_is_root)
    except (OSError, ValueError) as exc:  # a name the file system cannot hold: too long, a NUL byte
        if isinstance(exc, ReferenceRejected):
            raise
        problem = getattr(exc, "strerror", None) or exc  # an OSError's reason without its repeated path
        raise _reject(ref, f"not a usable path ({type(exc).__name__}: {problem})") from None


def _confined(ref: Reference, base_uri: str | None, roots: tuple[Path, ...], base_is_root: bool) -> Path:
    parsed = urlparse(ref.uri)
    if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
        raise _reject(ref, f"file:// URIs name a local path (file:///abs/path), not host {parsed.netloc!r}")
    given = Path(parsed.path if parsed.scheme == "file" else ref.uri)
    if ".." in given.parts:
        raise _reject(ref, "'..' is refused in reference paths; give the path inside the brief's folder")
    base = Path(base_uri or ".").absolute()
    path = given if given.is_absolute() else base / given
    allowed = [*([base] if base_is_root else []), *(Path(root).absolute() for root in roots)]
    real = path.resolve()
    if not any(real.is_relative_to(folder.resolve()) for folder in allowed):
        through = f" (through a symlink, to {real})" if path.absolute() != real else ""
        where = ", ".join(str(folder) for folder in allowed) or "no folder (none is allowed for this run)"
        raise _reject(
            ref,
            f"{path} is outside the folders references may come from{through}; accepted: files under {where}"
            " (add a folder to SYNCREEL_REFERENCE_ROOTS to allow it)",
        )
    if not real.is_file():
        raise _reject(ref, f"no such file {path}")
    return real


def locate_source(
    ref: Reference,
    base_uri: str | None,
    scratch: Path,
    *,
    roots: tuple[Path, ...] = (),
    base_is_root: bool = True,
    policy: FetchPolicy | None = None,
) -> Path:
    """A local readable copy of the reference: a confined path (relative to the brief), file://, s3://
    or https:// (relative paths under an s3:// ``base_uri`` are keys under it)."""
    parsed = urlparse(ref.uri)
    if parsed.scheme == "s3":
        return _s3_download(ref, ref.uri, scratch)
    if parsed.scheme == "https":
        target = scratch / (PurePosixPath(parsed.path).name or "download")
        try:
            return fetch_https(ref.uri, target, policy or FetchPolicy())
        except MediaError as exc:
            raise _reject(ref, exc.problem) from None
    if parsed.scheme not in ("", "file"):
        raise _reject(ref, f"unsupported URI scheme {parsed.scheme!r}; accepted: a path, file://, s3:// or https://")
    if parsed.scheme == "" and base_uri and base_uri.startswith("s3://") and not Path(ref.uri).is_absolute():
        if ".." in PurePosixPath(ref.uri).parts:
            raise _reject(ref, "'..' is refused in reference paths; give the key inside the brief's prefix")
        return _s3_download(ref, f"{base_uri.rstrip('/')}/{ref.uri}", scratch)
    return confined_path(ref, base_uri, roots, base_is_root=base_is_root)


def _ingest(
    rt: Runtime, ref: Reference, base_uri: str | None, *, base_is_root: bool = True, plan: CampaignPlan | None = None
) -> IngestedReference:
    with rt.scratch(f"ingest-{ref.id}") as scratch:
        roots, policy = reference_roots(rt.settings), fetch_policy(rt.settings)
        source = locate_source(ref, base_uri, scratch, roots=roots, base_is_root=base_is_root, policy=policy)
        source_sha = file_sha256(source)
        code = code_fingerprint(media.normalize, media.probe, media.analysis, media.beats)
        key = cache_key("ingest", source_sha, ref.kind, ref.role, code)
        stage = Stage("ingest", ref.id, rt, plan=plan)
        record, cached = stage.memo(key, lambda: _process(rt, ref, source, source_sha, scratch / "out"))
    stage.finish(cached)
    return to_record(IngestedReference, record, id=ref.id, kind=ref.kind, role=ref.role, source_sha256=source_sha)


def _process(rt: Runtime, ref: Reference, source: Path, source_sha: str, out: Path) -> dict:
    """Normalize and analyse the upload, store the result and record the upload's ``reference_assets`` row."""
    try:
        normalized, info = normalize_reference(source, ref.kind, out)
        source_info = probe(source).to_dict()
        analysis = analyse_reference(normalized, ref.kind, ref.role)
    except MediaError as exc:
        raise _reject(ref, exc.problem) from exc
    source_info["path"] = Path(source).name  # where it was fetched to is scratch, not provenance
    stored = store_asset(rt, normalized, f"reference_{ref.kind}", info.to_dict())
    with rt.session() as session:
        runs.record_reference_asset(
            session,
            source_sha256=source_sha,
            kind=ref.kind,
            role=ref.role,
            asset_id=stored.asset_id,
            source_uri=ref.uri,
            source_info=source_info,
            analysis=analysis,
        )
    return {**stored.fields(), "media_info": info.to_dict(), "source_info": source_info, "analysis": analysis}


@task(
    name="ingest_reference",
    cache_policy=NO_CACHE,
    task_run_name="ingest-{ref.id}",
    timeout_seconds=900,
    retries=NETWORK_RETRIES,
    retry_delay_seconds=NETWORK_BACKOFF,
    retry_jitter_factor=NETWORK_JITTER,
    retry_condition_fn=transient,
)
def ingest_reference(
    ref: Reference, base_uri: str | None, base_is_root: bool = False, plan: CampaignPlan | None = None
) -> IngestedReference:
    """``base_is_root``: the brief was loaded by the operator's own call, so its folder may be read;
    ``plan``: the run whose log lines these are. Downloads are tried again on failure; a refused
    reference fails at once (a WARNING line with why)."""
    stage = Stage("ingest", ref.id, plan=plan)
    stage.start()
    with stage.reporting(ReferenceRejected, level=logging.WARNING):
        return _ingest(stage.rt, ref, base_uri, base_is_root=base_is_root, plan=plan)
