"""ingest_reference: fetch a brief's reference, probe and normalize it, store it content-addressed."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from prefect import task
from prefect.cache_policies import NO_CACHE

import media.normalize
import media.probe
from media.errors import MediaError
from media.normalize import normalize_reference
from schemas.brief import Reference
from schemas.records import IngestedReference
from store.assets import file_sha256
from tasks.progress import emit
from tasks.runtime import Runtime, cache_key, code_fingerprint, get_runtime, memoized, store_asset, to_record


class ReferenceRejected(ValueError):
    """A reference that cannot be used; the message names the reference id, its URI and the problem."""


def locate_source(ref: Reference, base_uri: str | None, scratch: Path) -> Path:
    """A local readable copy of the reference: a path (relative to the brief), file:// or s3://."""
    parsed = urlparse(ref.uri)
    if parsed.scheme == "s3":
        target = scratch / (Path(parsed.path).name or "object")
        try:
            boto3.client("s3").download_file(parsed.netloc, parsed.path.lstrip("/"), str(target))
        except (BotoCoreError, ClientError) as exc:
            raise ReferenceRejected(f"reference {ref.id!r} ({ref.uri}): cannot download: {exc}") from exc
        return target
    if parsed.scheme not in ("", "file"):
        raise ReferenceRejected(
            f"reference {ref.id!r} ({ref.uri}): unsupported URI scheme {parsed.scheme!r}; "
            "accepted: a path, file:// or s3://"
        )
    path = Path(parsed.path if parsed.scheme == "file" else ref.uri).expanduser()
    if not path.is_absolute():
        path = Path(base_uri or ".") / path
    if not path.is_file():
        raise ReferenceRejected(f"reference {ref.id!r} ({ref.uri}): no such file {path}")
    return path


def _ingest(rt: Runtime, ref: Reference, base_uri: str | None) -> IngestedReference:
    with rt.scratch(f"ingest-{ref.id}") as scratch:
        source = locate_source(ref, base_uri, scratch)
        source_sha = file_sha256(source)
        key = cache_key("ingest", source_sha, ref.kind, code_fingerprint(media.normalize, media.probe))

        def produce() -> tuple[dict, int]:
            try:
                normalized, info = normalize_reference(source, ref.kind, scratch / "out")
            except MediaError as exc:
                raise ReferenceRejected(f"reference {ref.id!r} ({ref.uri}): {exc}") from exc
            stored, asset_id = store_asset(rt, normalized, f"reference_{ref.kind}", info.to_dict())
            return {
                "uri": stored.uri,
                "sha256": stored.sha256,
                "media_info": info.to_dict(),
                "asset_id": asset_id,
            }, asset_id

        record, cached = memoized(rt, "ingest", key, produce)
    emit("ingest", ref.id, "cached" if cached else "done")
    return to_record(IngestedReference, record, id=ref.id, kind=ref.kind, role=ref.role, source_sha256=source_sha)


@task(name="ingest_reference", cache_policy=NO_CACHE, task_run_name="ingest-{ref.id}")
def ingest_reference(ref: Reference, base_uri: str | None) -> IngestedReference:
    emit("ingest", ref.id, "started")
    return _ingest(get_runtime(), ref, base_uri)
