"""Many references in one request: 9 images and 3 clips ingested, analysed and handed to the generator
with their roles; a 10th image or a 4th clip refused at validation (before any GPU work); the roles the
built-in backend cannot use named in its result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from syncreel.model.backends import get_generator
from syncreel.schemas.brief import BriefError, validate_brief
from syncreel.schemas.records import CampaignPlan
from syncreel.tasks.generate import build_request
from syncreel.tasks.ingest import _ingest
from syncreel.tasks.stage import get_runtime
from tests.fixtures.music import click_track, write_wav
from tests.fixtures.synth import synth_media

IMAGE_ROLES = ["character", "character", "product", "product", "style", "style", "background", "background", "style"]


def _brief(folder: Path, images: int, clips: int) -> dict:
    references = [
        {"id": f"img{i}", "kind": "image", "role": IMAGE_ROLES[i % len(IMAGE_ROLES)], "uri": f"img{i}.png"}
        for i in range(images)
    ]
    clip_refs = [
        {"id": "moves", "kind": "video", "role": "motion", "uri": "moves.mp4"},
        {"id": "bed", "kind": "audio", "role": "music", "uri": "bed.wav"},
        {"id": "sting", "kind": "audio", "role": "sfx", "uri": "sting.wav"},
        {"id": "extra", "kind": "audio", "role": "sfx", "uri": "sting.wav"},
    ][:clips]
    references += clip_refs
    return {
        "campaign_id": "many-refs",
        "brand": {"name": "Test"},
        "languages": ["en"],
        "platforms": ["youtube"],
        "master": {"width": 64, "height": 64, "fps": 12},
        "references": references,
        "scenes": [
            {
                "id": "all",
                "prompt": "A yellow ball bouncing",
                "duration_s": 1.0,
                "references": [r["id"] for r in references],
            }
        ],
        "music": {"reference": "bed"},
        "generation": {"steps": 1},
    }


@pytest.fixture
def folder(embedded_state: Path) -> Path:
    folder = embedded_state / "brief"
    folder.mkdir()
    for index in range(10):
        synth_media(folder / f"img{index}.png", size=(48 + 8 * index, 40), picture="testsrc2")
    synth_media(folder / "moves.mp4", duration_s=1.0, size=(96, 64), fps=12, sound=None)
    write_wav(folder / "bed.wav", 0.5 * click_track(120.0, 4.0, 0.25)[0])
    write_wav(folder / "sting.wav", 0.5 * click_track(60.0, 2.0, 0.5)[0])
    return folder


def test_ten_images_or_four_clips_are_refused_before_any_generation(folder: Path) -> None:
    validate_brief(_brief(folder, 9, 3), base_uri=str(folder))
    with pytest.raises(BriefError, match=r"scenes\[0\]\.references: 10 image references; .* at most 9"):
        validate_brief(_brief(folder, 10, 3), base_uri=str(folder))
    with pytest.raises(BriefError, match=r"scenes\[0\]\.references: 4 video/audio references; .* at most 3"):
        validate_brief(_brief(folder, 9, 4), base_uri=str(folder))


def test_nine_images_and_three_clips_reach_the_generator_with_their_roles(folder: Path) -> None:
    rt = get_runtime()
    brief = validate_brief(_brief(folder, 9, 3), "test", base_uri=str(folder))
    ingested = [_ingest(rt, ref, brief.base_uri) for ref in brief.references]
    assert len(ingested) == 12
    by_id = {ref.id: ref for ref in ingested}
    assert by_id["bed"].analysis["tempo_bpm"] == pytest.approx(120, abs=1)
    assert by_id["moves"].analysis["type"] == "motion" and by_id["moves"].analysis["frames"] == 24
    assert by_id["sting"].analysis["onsets_s"][0] == pytest.approx(0.5, abs=0.02)
    assert all("dominant_colours" in by_id[f"img{i}"].analysis for i in range(9))

    plan = CampaignPlan(run_id="run-r", run_key="k", brief=brief, platforms=brief.platform_specs(), attempt=1)
    request = build_request(rt, plan, brief.scenes[0], "en", ingested, 0)
    assert [(r.id, r.kind, r.role) for r in request.references] == [(r.id, r.kind, r.role) for r in brief.references]
    assert all(Path(r.path).is_file() for r in request.references)

    clip = get_generator("builtin").generate(request)
    assert set(clip.unused_reference_roles) == {"product", "style", "background", "sfx"}
    assert clip.frames.shape[0] == 12 and np.isfinite(clip.audio).all()
