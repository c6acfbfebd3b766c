"""assemble_spot and render_variant: the edit per language, then one deliverable per platform."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

import media.assemble
import media.ffmpeg
import media.variants
from media.assemble import assemble_spot as join_scenes
from media.variants import render_variant as render_to_spec
from schemas.records import CampaignPlan, DeliverableRecord, MasterRecord, SpotRecord
from store import runs
from tasks.progress import emit
from tasks.runtime import cache_key, code_fingerprint, get_runtime, memoized, store_asset, to_record


@task(name="assemble_spot", cache_policy=NO_CACHE, task_run_name="assemble-{language}")
def assemble_spot(plan: CampaignPlan, language: str, masters: list[MasterRecord]) -> SpotRecord:
    rt = get_runtime()
    emit("assemble", language, "started")
    key = cache_key("assemble", [m.sha256 for m in masters], code_fingerprint(media.assemble, media.ffmpeg))

    def produce() -> tuple[dict, int]:
        with rt.scratch(f"spot-{language}") as scratch:
            info = join_scenes([rt.store.fetch(m.uri) for m in masters], scratch / "spot.mp4")
            stored, asset_id = store_asset(rt, scratch / "spot.mp4", "spot", info.to_dict())
        return {
            "uri": stored.uri,
            "sha256": stored.sha256,
            "asset_id": asset_id,
            "duration_s": info.duration_s,
            "width": info.video.width,
            "height": info.video.height,
            "fps": info.video.fps,
        }, asset_id

    record, cached = memoized(rt, "assemble", key, produce)
    emit("assemble", language, "cached" if cached else "done")
    return to_record(SpotRecord, record, language=language, cached=cached)


@task(name="render_variant", cache_policy=NO_CACHE, task_run_name="render-{spot.language}-{platform}")
def render_variant(plan: CampaignPlan, spot: SpotRecord, platform: str) -> DeliverableRecord:
    rt = get_runtime()
    item = f"{spot.language}/{platform}"
    emit("render", item, "started")
    spec = plan.platforms[platform]
    preset = rt.settings.x264_preset
    key = cache_key(
        "render", spot.sha256, spec.model_dump(mode="json"), preset, code_fingerprint(media.variants, media.ffmpeg)
    )

    def produce() -> tuple[dict, int]:
        with rt.scratch(f"render-{spot.language}-{platform}") as scratch:
            result = render_to_spec(rt.store.fetch(spot.uri), spec, scratch / f"{platform}.mp4", x264_preset=preset)
            stored, asset_id = store_asset(rt, result.path, "deliverable", result.info.to_dict())
        return {
            "uri": stored.uri,
            "sha256": stored.sha256,
            "asset_id": asset_id,
            "size_bytes": stored.size_bytes,
            "width": result.info.video.width,
            "height": result.info.video.height,
            "duration_s": result.info.duration_s,
            "loudness_lufs": result.output_lufs,
            "reframe": result.reframe.to_dict(),
        }, asset_id

    record, cached = memoized(rt, "render", key, produce)
    with rt.session() as session:
        runs.record_deliverable(
            session,
            run_id=plan.run_id,
            language=spot.language,
            platform=platform,
            spec=spec.model_dump(mode="json"),
            asset_id=record["asset_id"],
            cache_key=key,
        )
    emit("render", item, "cached" if cached else "done")
    return to_record(DeliverableRecord, record, language=spot.language, platform=platform, cached=cached)
