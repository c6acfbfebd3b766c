"""assemble_spot and render_variant: the edit per language, then one deliverable per platform."""

from __future__ import annotations

import threading
from dataclasses import asdict

from prefect import task
from prefect.cache_policies import NO_CACHE
from syncreel.media.assemble import assemble_layered as join_layered
from syncreel.media.captions import Cue, DialogueTiming, spot_cues
from syncreel.media.mix import RATE as MIX_RATE
from syncreel.media.mix import MixSettings
from syncreel.media.variants import render_variants as render_to_specs
from syncreel.schemas.brief import Music
from syncreel.schemas.platforms import PlatformSpec
from syncreel.schemas.records import CampaignPlan, DeliverableRecord, IngestedReference, MasterRecord, SpotRecord
from syncreel.store import runs
from syncreel.tasks.progress import emit
from syncreel.tasks.runtime import (
    Runtime,
    cache_key,
    code_fingerprint,
    get_runtime,
    memoized,
    recall,
    remember,
    store_asset,
    to_record,
)

from syncreel import media


@task(name="assemble_spot", cache_policy=NO_CACHE, task_run_name="assemble-{language}")
def assemble_spot(
    plan: CampaignPlan, language: str, masters: list[MasterRecord], references: list[IngestedReference] | None = None
) -> SpotRecord:
    """The language's spot: scenes joined with the layered mix (stems, music ducked under dialogue), cuts
    on the music's beats when the brief's music asks for beat sync. The music comes from ``references``
    (the ingested brief references); without them the spot has no music layer."""
    rt = get_runtime()
    emit("assemble", language, "started")
    music_brief = plan.brief.music or Music()
    music = next(
        (r for r in references or [] if r.id == music_brief.reference and r.role == "music"),
        None,
    )
    settings = MixSettings(
        dialogue_db=music_brief.layers.dialogue_db,
        effects_db=music_brief.layers.effects_db,
        ambience_db=music_brief.layers.ambience_db,
        music_db=music_brief.gain_db,
        duck_db=music_brief.duck_db,
    )
    beat_sync = music is not None and music_brief.beat_sync
    key = cache_key(
        "assemble",
        [(m.sha256, m.stems_uri, list(m.stem_names)) for m in masters],
        music.sha256 if music else None,
        beat_sync,
        music_brief.snap_tolerance_s,
        settings.to_dict(),
        code_fingerprint(media.assemble, media.mix, media.analysis, media.ffmpeg),
    )
    grid = music.analysis if music else {}

    def produce() -> tuple[dict, int]:
        with rt.scratch(f"spot-{language}") as scratch:
            result = join_layered(
                [rt.store.fetch(m.uri) for m in masters],
                scratch / "spot.mp4",
                stems=[rt.store.fetch(m.stems_uri) if m.stems_uri else None for m in masters],
                stem_names=[tuple(m.stem_names) for m in masters],
                music=rt.store.fetch(music.uri) if music else None,
                beats_s=grid.get("beats_s", ()),
                downbeats_s=grid.get("downbeats_s", ()),
                beat_sync=beat_sync,
                snap_tolerance_s=music_brief.snap_tolerance_s,
                mix=settings,
                stems_out=scratch / "spot-stems.wav",
            )
            info = result.info
            stored, asset_id = store_asset(rt, scratch / "spot.mp4", "spot", info.to_dict())
            meta = {"channels": list(result.stem_names), "sample_rate": MIX_RATE}
            stems_uri = store_asset(rt, scratch / "spot-stems.wav", "spot_stems", meta)[0].uri
        cuts = [cut.to_dict() for cut in result.cuts]
        return {
            "uri": stored.uri,
            "sha256": stored.sha256,
            "asset_id": asset_id,
            "duration_s": info.duration_s,
            "width": info.video.width,
            "height": info.video.height,
            "fps": info.video.fps,
            "scene_starts_s": [0.0, *(cut["cut_s"] for cut in cuts)],
            "cuts": cuts,
            "beat_grid": _grid_report(grid, info.duration_s, beat_sync, music_brief.snap_tolerance_s, cuts)
            if music
            else None,
            "mix": result.mix,
            "stems_uri": stems_uri,
            "stem_names": list(result.stem_names),
        }, asset_id

    record, cached = memoized(rt, "assemble", key, produce)
    emit("assemble", language, "cached" if cached else "done")
    return to_record(SpotRecord, record, language=language, cached=cached)


def _grid_report(grid: dict, duration_s: float, beat_sync: bool, tolerance_s: float, cuts: list[dict]) -> dict:
    """The music's beat grid over the spot, next to the cuts (for the manifest and the report)."""
    offsets = [abs(cut["offset_from_beat_ms"]) for cut in cuts if cut["offset_from_beat_ms"] is not None]
    return {
        "tempo_bpm": grid.get("tempo_bpm"),
        "beat_sync": beat_sync,
        "snap_tolerance_s": tolerance_s,
        "beats_s": [t for t in grid.get("beats_s", ()) if t <= duration_s],
        "downbeats_s": [t for t in grid.get("downbeats_s", ()) if t <= duration_s],
        "cuts_on_beat": len(offsets),
        "max_cut_offset_ms": max(offsets, default=None),
    }


@task(name="render_variant", cache_policy=NO_CACHE, task_run_name="render-{spot.language}-{platform}")
def render_variant(plan: CampaignPlan, spot: SpotRecord, platform: str) -> DeliverableRecord:
    """One platform's deliverable of a spot. The first task of a spot to get here renders every
    platform of the plan still missing for that spot in one fan-out (one decode of the spot, identical
    renders encoded once); its sibling tasks wait for it and find their outputs remembered."""
    rt = get_runtime()
    item = f"{spot.language}/{platform}"
    emit("render", item, "started")
    preset = rt.settings.x264_preset
    cues = _spot_cues(rt, plan, spot)
    keys = {name: _render_key(spot, name, spec, cues, preset) for name, spec in plan.platforms.items()}
    attempt = f"{plan.run_id}#{plan.attempt}"
    with _spot_lock(spot.sha256):
        record = recall(rt, keys[platform])
        if record is None:
            missing = {name: plan.platforms[name] for name in keys if recall(rt, keys[name]) is None}
            _render_spot(rt, spot, missing, {name: keys[name] for name in missing}, cues, preset, attempt)
            record = recall(rt, keys[platform])
            assert record is not None
    cached = record.get("rendered_in") != attempt
    with rt.session() as session:
        runs.record_deliverable(
            session,
            run_id=plan.run_id,
            language=spot.language,
            platform=platform,
            spec=plan.platforms[platform].model_dump(mode="json"),
            asset_id=record["asset_id"],
            cache_key=keys[platform],
        )
    emit("render", item, "cached" if cached else "done")
    return to_record(DeliverableRecord, record, language=spot.language, platform=platform, cached=cached)


_locks_guard = threading.Lock()
_spot_locks: dict[str, threading.Lock] = {}


def _spot_lock(sha256: str) -> threading.Lock:
    with _locks_guard:
        return _spot_locks.setdefault(sha256, threading.Lock())


def _spot_cues(rt: Runtime, plan: CampaignPlan, spot: SpotRecord) -> list[Cue]:
    """The spot's captions: the brief's dialogue on the spot's clock (where the edit put each scene),
    snapped to the speech in the dialogue stem (or the mix, when there are no stems)."""
    scenes = plan.brief.scenes
    starts = list(spot.scene_starts_s) if len(spot.scene_starts_s) == len(scenes) else None
    lines, offset = [], 0.0
    for index, scene in enumerate(scenes):
        start = starts[index] if starts else offset
        end = starts[index + 1] if starts and index + 1 < len(starts) else start + scene.duration_s
        lines += [
            DialogueTiming(line.text[spot.language], start, end, line.start_s)
            for line in scene.dialogue
            if spot.language in line.text
        ]
        offset += scene.duration_s
    if not lines:
        return []
    if spot.stems_uri and "dialogue" in spot.stem_names:
        return spot_cues(lines, rt.store.fetch(spot.stems_uri), channel=list(spot.stem_names).index("dialogue"))
    return spot_cues(lines, rt.store.fetch(spot.uri))


def _render_key(spot: SpotRecord, platform: str, spec: PlatformSpec, cues: list[Cue], preset: str) -> str:
    code = code_fingerprint(media.variants, media.reframe, media.shots, media.captions, media.ffmpeg)
    return cache_key(
        "render",
        spot.sha256,
        platform,
        spec.render_key(with_captions=bool(cues)),
        [asdict(c) for c in cues],
        preset,
        code,
    )


def _render_spot(
    rt: Runtime,
    spot: SpotRecord,
    specs: dict[str, PlatformSpec],
    keys: dict[str, str],
    cues: list[Cue],
    preset: str,
    attempt: str,
) -> None:
    """Render ``specs`` from the spot in one fan-out and remember each deliverable with its side files
    (crop path, crop drawing, contact sheet, thumbnails, caption sidecars) as assets of their own."""
    with rt.scratch(f"render-{spot.language}") as scratch:
        results = render_to_specs(
            rt.store.fetch(spot.uri), specs, scratch, cues=cues, language=spot.language, x264_preset=preset
        )
        for name, result in results.items():
            sidecars = {
                kind: store_asset(rt, path, SIDE_FILE_KINDS[kind])[0].uri for kind, path in result.files.items()
            }
            sidecars["thumbnails"] = [store_asset(rt, p, "thumbnail")[0].uri for p in result.thumbnails]
            crop = result.crop_path
            reframe = {**crop.summary(), "crop_path_uri": sidecars.get("crop_path")}
            plot = {"source_width": crop.source_size[0], "path": crop.samples()}  # what the run report draws
            media_info = {
                **result.info.to_dict(),
                "loudness": result.loudness.to_dict(),
                "reframe": reframe,
                "sidecars": sidecars,
            }
            stored, asset_id = store_asset(rt, result.path, "deliverable", media_info)
            record = {
                "uri": stored.uri,
                "sha256": stored.sha256,
                "asset_id": asset_id,
                "size_bytes": stored.size_bytes,
                "width": result.info.video.width,
                "height": result.info.video.height,
                "duration_s": result.info.duration_s,
                "loudness_lufs": result.loudness.output_lufs,
                "reframe": {**reframe, **plot, "loudness": result.loudness.to_dict(), "sidecars": sidecars},
                "rendered_in": attempt,
            }
            remember(rt, keys[name], "render", record, asset_id)


SIDE_FILE_KINDS = {
    "crop_path": "crop_path",
    "crop_drawing": "report_image",
    "contact_sheet": "report_image",
    "srt": "captions",
    "vtt": "captions",
}
