"""assemble_spot and render_variants: the edit per language, then one deliverable per platform."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from syncreel import media
from syncreel.media import analysis as reference_analysis
from syncreel.media.assemble import assemble_layered as join_layered
from syncreel.media.captions import Cue, spot_cues
from syncreel.media.mix import RATE as MIX_RATE
from syncreel.media.variants import VariantResult
from syncreel.media.variants import render_variants as render_to_specs
from syncreel.schemas.platforms import PlatformSpec
from syncreel.schemas.records import CampaignPlan, DeliverableRecord, IngestedReference, MasterRecord, SpotRecord
from syncreel.store import runs
from syncreel.tasks.inputs import SpotEdit, caption_lines, spot_edit
from syncreel.tasks.stage import (
    CONNECTION_DELAYS,
    CONNECTION_RETRIES,
    Runtime,
    Stage,
    cache_key,
    clip_fields,
    code_fingerprint,
    connection_dropped,
    get_runtime,
    recall,
    remember,
    store_asset,
    to_record,
)

# The asset kind each side file of a render is stored as.
SIDE_FILE_KINDS = {
    "crop_path": "crop_path",
    "crop_drawing": "report_image",
    "contact_sheet": "report_image",
    "srt": "captions",
    "vtt": "captions",
}


@task(
    name="assemble_spot",
    cache_policy=NO_CACHE,
    task_run_name="assemble-{language}",
    timeout_seconds=1800,
    retries=CONNECTION_RETRIES,
    retry_delay_seconds=CONNECTION_DELAYS,
    retry_condition_fn=connection_dropped,
)
def assemble_spot(
    plan: CampaignPlan, language: str, masters: list[MasterRecord], references: list[IngestedReference] | None = None
) -> SpotRecord:
    """The language's spot: scenes joined with the layered mix (stems, music ducked under dialogue), cuts
    on the music's beats when the brief's music asks for beat sync. The music comes from ``references``
    (the ingested brief references); without them the spot has no music layer."""
    stage = Stage("assemble", language, plan=plan, language=language)
    stage.start()
    edit = spot_edit(plan.brief, references or [])
    key = cache_key(
        "assemble",
        [(m.sha256, m.stems_uri, list(m.stem_names)) for m in masters],
        edit.music.sha256 if edit.music else None,
        edit.beat_sync,
        edit.snap_tolerance_s,
        edit.mix.to_dict(),
        code_fingerprint(media.assemble, media.mix, reference_analysis, media.ffmpeg),  # analysis: the beat grid
    )
    record, cached = stage.memo(key, lambda: _assemble(stage.rt, language, masters, edit))
    stage.finish(cached)
    return to_record(SpotRecord, record, language=language, cached=cached)


def _assemble(rt: Runtime, language: str, masters: list[MasterRecord], edit: SpotEdit) -> dict[str, Any]:
    """Join the masters into the spot and store it with its mixed layers; the spot's output record."""
    grid = edit.music.analysis if edit.music else {}
    with rt.scratch(f"spot-{language}") as scratch:
        result = join_layered(
            [rt.store.fetch(m.uri) for m in masters],
            scratch / "spot.mp4",
            stems=[rt.store.fetch(m.stems_uri) if m.stems_uri else None for m in masters],
            stem_names=[tuple(m.stem_names) for m in masters],
            music=rt.store.fetch(edit.music.uri) if edit.music else None,
            beats_s=grid.get("beats_s", ()),
            downbeats_s=grid.get("downbeats_s", ()),
            beat_sync=edit.beat_sync,
            snap_tolerance_s=edit.snap_tolerance_s,
            mix=edit.mix,
            stems_out=scratch / "spot-stems.wav",
        )
        stored = store_asset(rt, scratch / "spot.mp4", "spot", result.info.to_dict())
        meta = {"channels": list(result.stem_names), "sample_rate": MIX_RATE}
        stems_uri = store_asset(rt, scratch / "spot-stems.wav", "spot_stems", meta).uri
    cuts = [cut.to_dict() for cut in result.cuts]
    return {
        **stored.fields(),
        **clip_fields(result.info),
        "scene_starts_s": [0.0, *(cut["cut_s"] for cut in cuts)],
        "cuts": cuts,
        "beat_grid": _grid_report(grid, result.info.duration_s, edit, cuts) if edit.music else None,
        "mix": result.mix,
        "stems_uri": stems_uri,
        "stem_names": list(result.stem_names),
    }


def _grid_report(grid: dict, duration_s: float, edit: SpotEdit, cuts: list[dict]) -> dict:
    """The music's beat grid over the spot, next to the cuts (for the manifest and the report)."""
    offsets = [abs(cut["offset_from_beat_ms"]) for cut in cuts if cut["offset_from_beat_ms"] is not None]
    return {
        "tempo_bpm": grid.get("tempo_bpm"),
        "beat_sync": edit.beat_sync,
        "snap_tolerance_s": edit.snap_tolerance_s,
        "beats_s": [t for t in grid.get("beats_s", ()) if t <= duration_s],
        "downbeats_s": [t for t in grid.get("downbeats_s", ()) if t <= duration_s],
        "cuts_on_beat": len(offsets),
        "max_cut_offset_ms": max(offsets, default=None),
    }


@task(
    name="render_variants",
    cache_policy=NO_CACHE,
    task_run_name="render-{spot.language}",
    timeout_seconds=3600,
    retries=CONNECTION_RETRIES,
    retry_delay_seconds=CONNECTION_DELAYS,
    retry_condition_fn=connection_dropped,
)
def render_variants(plan: CampaignPlan, spot: SpotRecord) -> list[DeliverableRecord]:
    """Every platform's deliverable of a spot, in the plan's order. Those not rendered before come from
    one fan-out (one decode of the spot, identical renders encoded once)."""
    rt = get_runtime()
    stages = {
        name: Stage("render", f"{spot.language}/{name}", rt, plan=plan, language=spot.language)
        for name in plan.platforms
    }
    for stage in stages.values():
        stage.start()
    preset, cues = rt.settings.x264_preset, _spot_cues(rt, plan, spot)
    keys = {name: _render_key(spot, name, spec, cues, preset) for name, spec in plan.platforms.items()}
    records = {name: recall(rt, key) for name, key in keys.items()}
    missing = {name: plan.platforms[name] for name, record in records.items() if record is None}
    if missing:
        records.update(_render_spot(rt, spot, missing, keys, cues, preset))
    deliverables = []
    with rt.session() as session:
        for name, spec in plan.platforms.items():
            record = records[name]
            assert record is not None  # recalled, or rendered just now
            runs.record_deliverable(
                session,
                run_id=plan.run_id,
                language=spot.language,
                platform=name,
                spec=spec.model_dump(mode="json"),
                asset_id=record["asset_id"],
                cache_key=keys[name],
            )
            deliverables.append(
                to_record(DeliverableRecord, record, language=spot.language, platform=name, cached=name not in missing)
            )
    for name, stage in stages.items():
        stage.finish(cached=name not in missing)
    return deliverables


def _spot_cues(rt: Runtime, plan: CampaignPlan, spot: SpotRecord) -> list[Cue]:
    """The spot's captions: the brief's dialogue on the spot's clock (where the edit put each scene),
    snapped to the speech in the dialogue stem (or the mix, when there are no stems)."""
    lines = caption_lines(plan.brief, spot.language, spot.scene_starts_s)
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
    rt: Runtime, spot: SpotRecord, specs: dict[str, PlatformSpec], keys: dict[str, str], cues: list[Cue], preset: str
) -> dict[str, dict[str, Any]]:
    """Render ``specs`` from the spot in one fan-out and remember each deliverable (under ``keys``)."""
    with rt.scratch(f"render-{spot.language}") as scratch:
        results = render_to_specs(
            rt.store.fetch(spot.uri), specs, scratch, cues=cues, language=spot.language, x264_preset=preset
        )
        return {name: remember(rt, keys[name], _store_variant(rt, result)) for name, result in results.items()}


def _store_variant(rt: Runtime, result: VariantResult) -> dict[str, Any]:
    """A deliverable in the store with its side files (crop path, crop drawing, contact sheet, thumbnails,
    caption sidecars) as assets of their own; its output record."""
    sidecars: dict[str, Any] = {
        kind: store_asset(rt, path, SIDE_FILE_KINDS[kind]).uri for kind, path in result.files.items()
    }
    sidecars["thumbnails"] = [store_asset(rt, p, "thumbnail").uri for p in result.thumbnails]
    crop, loudness = result.crop_path, result.loudness.to_dict()
    reframe = {**crop.summary(), "crop_path_uri": sidecars.get("crop_path")}
    plot = {"source_width": crop.source_size[0], "path": crop.samples()}  # what the run report draws
    media_info = {**result.info.to_dict(), "loudness": loudness, "reframe": reframe, "sidecars": sidecars}
    stored = store_asset(rt, result.path, "deliverable", media_info)
    return {
        **stored.fields(),
        **clip_fields(result.info),
        "size_bytes": stored.size_bytes,
        "loudness_lufs": result.loudness.output_lufs,
        "reframe": {**reframe, **plot, "loudness": loudness, "sidecars": sidecars},
    }
