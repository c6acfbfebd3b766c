"""assemble_spot as the flow runs it (``.fn``): an ingested music reference with beat sync, masters with
stems in the asset store, the record the manifest shows, a cached re-run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from syncreel.schemas.brief import validate_brief
from syncreel.schemas.records import CampaignPlan, MasterRecord
from syncreel.tasks.ingest import _ingest
from syncreel.tasks.render import assemble_spot
from syncreel.tasks.stage import get_runtime, store_asset
from tests.fixtures.clips import FPS, cut_times, scene_clip
from tests.fixtures.music import click_track, write_wav

DURATIONS = [2.65, 2.5, 1.4]


def _brief(folder: Path, beat_sync: bool) -> dict:
    return {
        "campaign_id": "beat-test",
        "brand": {"name": "Test"},
        "languages": ["en"],
        "platforms": ["youtube"],
        "master": {"width": 64, "height": 64, "fps": FPS},
        "references": [
            {"id": "bed", "kind": "audio", "role": "music", "uri": "bed.wav"},
            {"id": "hero", "kind": "image", "role": "character", "uri": "hero.png"},
        ],
        "scenes": [
            {
                "id": f"s{i}",
                "prompt": "a coloured card",
                "duration_s": d,
                "references": ["bed", "hero"] if i < 2 else ["bed"],
            }
            for i, d in enumerate(DURATIONS)
        ],
        "music": {"reference": "bed", "beat_sync": beat_sync, "snap_tolerance_s": 0.3, "duck_db": 6},
    }


def test_assemble_spot_task_snaps_cuts_and_reports_them(embedded_state: Path) -> None:
    rt = get_runtime()
    folder = embedded_state / "brief"
    folder.mkdir()
    clicks, truth = click_track(100.0, 8.0, 0.4)
    write_wav(folder / "bed.wav", 0.5 * clicks)
    shutil.copy(Path(__file__).parents[2] / "examples" / "briefs" / "assets" / "presenter.png", folder / "hero.png")
    brief = validate_brief(_brief(folder, beat_sync=True), "test", base_uri=str(folder))
    plan = CampaignPlan(run_id="run-t", run_key="k", brief=brief, platforms=brief.platform_specs(), attempt=1)
    music, hero = (_ingest(rt, ref, brief.base_uri) for ref in brief.references)
    assert music.analysis["tempo_bpm"] == pytest.approx(100, abs=1)

    masters = []
    for index, seconds in enumerate(DURATIONS):
        clip, stems = scene_clip(folder, index, seconds, [(0.2, 0.9)])
        stored = store_asset(rt, clip, "master")
        stems_stored = store_asset(rt, stems, "stems")
        masters.append(
            MasterRecord(
                scene_id=f"s{index}", language="en", uri=stored.uri, sha256=stored.sha256, generation_key="g",
                backend="test", model_version="v", seed=0, attempt=0, duration_s=seconds, width=64, height=36,
                fps=FPS, stems_uri=stems_stored.uri, stem_names=("dialogue", "effects", "ambience"),
            )
        )  # fmt: skip

    spot = assemble_spot.fn(plan, "en", masters, [music, hero])
    assert not spot.cached and len(spot.cuts) == 2
    for cut in spot.cuts:
        assert cut["beat_s"] is not None and abs(cut["offset_from_beat_ms"]) <= 1000 / FPS / 2
    decoded = cut_times(rt.store.fetch(spot.uri))
    assert len(decoded) == 2 and all(np.abs(truth - t).min() <= 1 / FPS for t in decoded)
    assert spot.scene_starts_s == (0.0, *(cut["cut_s"] for cut in spot.cuts))
    assert spot.beat_grid["beat_sync"] and spot.beat_grid["cuts_on_beat"] == 2
    assert spot.beat_grid["max_cut_offset_ms"] <= 1000 / FPS / 2
    assert spot.stem_names == ("dialogue", "effects", "ambience", "music")
    assert rt.store.exists(spot.stems_uri) and spot.mix["settings"]["duck_db"] == 6
    assert spot.model_dump(mode="json")["cuts"][0]["downbeat"] in (True, False)  # JSON-ready for the manifest

    again = assemble_spot.fn(plan, "en", masters, [music, hero])
    assert again.cached and again.sha256 == spot.sha256
    plain = validate_brief(_brief(folder, beat_sync=False), "test", base_uri=str(folder))
    unsynced = assemble_spot.fn(plan.model_copy(update={"brief": plain}), "en", masters, [music, hero])
    assert unsynced.sha256 != spot.sha256 and all(cut["beat_s"] is None for cut in unsynced.cuts)
    assert unsynced.beat_grid["beat_sync"] is False
