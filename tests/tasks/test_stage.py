"""The stage seam's stored files (one object and one row per content, whatever kind stored it) and its
memo (an output whose files are gone is made again and replaces the stale record)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from syncreel.schemas.settings import get_settings
from syncreel.store.models import Asset
from syncreel.tasks.stage import get_runtime, memoized, recall, store_asset


def test_the_same_bytes_under_two_kinds_are_one_object_and_one_row(embedded_state: Path) -> None:
    get_settings.cache_clear()
    rt = get_runtime()
    stems = embedded_state / "stems.wav"
    stems.write_bytes(b"RIFF" + bytes(range(256)) * 8)  # a one-scene spot's stems are its scene's
    first = store_asset(rt, stems, "stems")
    second = store_asset(rt, stems, "spot_stems")
    assert second.uri == first.uri and second.asset_id == first.asset_id
    files = [p for p in (embedded_state / "state" / "assets").rglob("*") if p.is_file()]
    assert [p.as_uri() for p in files] == [first.uri], files
    with rt.session() as session:
        assert session.scalar(select(func.count()).select_from(Asset)) == 1

    # A row whose object was lost takes the new copy's place.
    Path(first.uri.removeprefix("file://")).unlink()
    again = store_asset(rt, stems, "spot_stems")
    assert again.asset_id == first.asset_id and Path(again.uri.removeprefix("file://")).is_file()
    with rt.session() as session:
        assert session.scalar(select(Asset.uri)) == again.uri


def test_an_output_whose_files_are_gone_is_made_again_and_replaces_the_stale_record(embedded_state: Path) -> None:
    get_settings.cache_clear()
    rt = get_runtime()
    track = embedded_state / "voice.wav"
    track.write_bytes(b"RIFF" + bytes(range(200)) * 4)

    def produce(nested_uri: str) -> dict:
        stored = store_asset(rt, track, "voice")
        return {"uri": stored.uri, "asset_id": stored.asset_id, "voice": {"uri": nested_uri}}

    first = memoized(rt, "speak:k", lambda: produce(f"file://{embedded_state}/elsewhere/voice.wav"))
    assert not first.cached
    # The nested file is not in this store: the output is not recalled, and making it again replaces it.
    assert recall(rt, "speak:k") is None
    again = memoized(rt, "speak:k", lambda: produce(first.record["uri"]))
    assert not again.cached and again.record["voice"]["uri"] == first.record["uri"]
    assert memoized(rt, "speak:k", lambda: produce("unused")).cached
