"""Character consistency: the measure (media/consistency.py) on the same face framed differently against
another grade and another picture, its QA checks against the brief's threshold, the threshold's bounds,
and the real flow: a character whose scenes all show the same face passes; one scene in one language
showing a re-graded face ends the run needs_review, with the check in the database, the manifest and
the HTML report (which also shows every reference's analysis).

The fixture face is the calibration set's astronaut (tests/fixtures/calibration.py), the reference photo
its picture at rest; clips place it at other sizes and positions with the mouth at other openings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from syncreel.media.consistency import character_consistency, consistency_checks
from syncreel.media.encode import write_master
from syncreel.model.backends import _BACKENDS, register_backend
from syncreel.model.generator import GenerationRequest, Generator
from syncreel.schemas.brief import BriefError, validate_brief
from syncreel.schemas.clips import MasterClip
from syncreel.schemas.settings import get_settings
from tests.fixtures.clips import clip_with_a_cut
from tests.fixtures.music import click_track, write_wav

SIZE = (384, 216)


def regraded(frames: np.ndarray) -> np.ndarray:
    """The same face under another grade: warmer (+40 red, −40 blue), a different appearance."""
    warm = frames.astype(np.int16)
    warm[..., 0] += 40
    warm[..., 2] -= 40
    return warm.clip(0, 255).astype(np.uint8)


def face_frames(calibration, count: int, face_px: int, at: tuple[float, float], size=SIZE) -> np.ndarray:
    """The astronaut talking (mouth opening and closing), ``face_px`` square at ``at`` in the frame."""
    levels = np.round((0.5 - 0.5 * np.cos(np.linspace(0, 4 * np.pi, count))) * (calibration.OPENING_LEVELS - 1))
    return calibration._compose(levels.astype(int), size, face_px, at)


@pytest.fixture(scope="module")
def photo(calibration, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "hero.png"
    Image.fromarray(calibration.talking_face(0)).save(path)
    return path


def _clip(path: Path, frames: np.ndarray) -> Path:
    silence = np.zeros((2, 48_000), np.float32)
    return Path(write_master(frames, silence, 12, 48_000, path).path)


@pytest.fixture(scope="module")
def clips(calibration, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "s0/en": _clip(folder / "s0-en.mp4", face_frames(calibration, 12, 216, (0.5, 0.5))),
        "s1/en": _clip(folder / "s1-en.mp4", face_frames(calibration, 12, 180, (0.35, 0.5))),
        "s0/es": _clip(folder / "s0-es.mp4", face_frames(calibration, 12, 200, (0.6, 0.5))),
        "s1/es": _clip(folder / "s1-es.mp4", face_frames(calibration, 12, 190, (0.45, 0.55))),
        "warm": _clip(folder / "warm.mp4", regraded(face_frames(calibration, 12, 190, (0.45, 0.55)))),
        "card": _clip(folder / "card.mp4", np.full((12, SIZE[1], SIZE[0], 3), (20, 160, 60), np.uint8)),
    }


def _keyed(clips: dict[str, Path], **swap: str) -> dict[tuple[str, str], Path]:
    """The four scene/language clips, some replaced (``s1_es="warm"``)."""
    chosen = {name: clips[swap.get(name.replace("/", "_"), name)] for name in ("s0/en", "s1/en", "s0/es", "s1/es")}
    return {tuple(name.split("/")): path for name, path in chosen.items()}  # type: ignore[misc]


def test_the_same_face_scores_high_across_scenes_and_languages_and_passes(photo, clips) -> None:
    measured = character_consistency(photo, _keyed(clips))
    assert measured["reference_face_found"] and all(c["face_found"] for c in measured["clips"])
    assert len(measured["pairs"]) == 6
    assert min(p["similarity"] for p in measured["pairs"]) > 0.75  # measured 0.82–0.92
    assert min(c["similarity_to_reference"] for c in measured["clips"]) > 0.75

    checks = {c.check: c for c in consistency_checks("hero", measured, 0.5)}
    assert set(checks) == {"character_across_scenes", "character_across_languages", "character_vs_reference"}
    assert {c.verdict for c in checks.values()} == {"pass"}
    across = checks["character_across_languages"]
    assert len(across.metrics["pairs"]) == 2 and across.metrics["threshold"] == 0.5  # s0 en/es, s1 en/es
    assert len(checks["character_across_scenes"].metrics["pairs"]) == 4
    assert "'hero'" in across.message and ">= 0.50" in across.message


def test_a_regraded_face_in_one_scene_and_language_fails_and_is_named(photo, clips) -> None:
    measured = character_consistency(photo, _keyed(clips, s1_es="warm"))
    odd = [p for p in measured["pairs"] if "s1" in p["a"] + p["b"] and "es" in p["a"] + p["b"]]
    warm = [p["similarity"] for p in measured["pairs"] if ["s1", "es"] in (p["a"], p["b"])]
    assert max(warm) < 0.25 and odd  # measured about 0.1: the same face, another grade

    checks = {c.check: c for c in consistency_checks("hero", measured, 0.5)}
    scenes, languages = checks["character_across_scenes"], checks["character_across_languages"]
    assert scenes.verdict == "fail" and languages.verdict == "fail"
    assert scenes.metrics["odd_one_out"] == ["s1/es"] and "odd one out: s1/es" in scenes.message
    assert "2 of 4 pair(s) below" in scenes.message and "min_character_consistency" in scenes.message
    assert set(languages.metrics["lowest_pair"]) == {"s1/en", "s1/es"}
    assert "'hero'" in languages.message and "< 0.50" in languages.message
    assert checks["character_vs_reference"].verdict == "fail"  # a face unlike the photo: not the brief's presenter
    assert "s1/es" in checks["character_vs_reference"].message
    assert "min_character_consistency" in checks["character_vs_reference"].message

    # A threshold below what it measured lets it through: the verdict follows the brief.
    lenient = {c.check: c.verdict for c in consistency_checks("hero", measured, 0.05)}
    assert lenient["character_across_scenes"] == "pass"


def test_a_picture_without_a_face_is_compared_whole_and_warns_or_fails(photo, clips) -> None:
    measured = character_consistency(photo, _keyed(clips, s0_en="card"))
    card = next(c for c in measured["clips"] if (c["scene"], c["language"]) == ("s0", "en"))
    assert not card["face_found"] and card["similarity_to_reference"] < 0.05
    checks = {c.check: c for c in consistency_checks("hero", measured, 0.5)}
    assert checks["character_across_languages"].verdict == "fail"
    assert checks["character_across_languages"].metrics["value"] < 0.05

    # The same two faceless cards in both languages are alike, but the verdict warns: no face was compared.
    alone = character_consistency(photo, {("s0", "en"): clips["card"], ("s0", "es"): clips["card"]})
    (languages, reference) = consistency_checks("hero", alone, 0.5)
    assert languages.verdict == "warn" and "no face found in s0/en, s0/es" in languages.message
    assert reference.verdict == "warn" and "whole pictures compared" in reference.message  # no face to judge


def test_a_presenter_unlike_its_photo_fails_even_when_its_scenes_agree() -> None:
    """The model's own face in every scene instead of the brief's: alike across scenes and languages,
    unlike the photo — a fail (the run ends needs_review), not a warning."""
    clips = [("s0", "en"), ("s0", "fr"), ("s1", "en"), ("s1", "fr")]
    measured = {
        "reference_face_found": True,
        "clips": [
            {"scene": s, "language": lang, "face_found": True, "similarity_to_reference": 0.19} for s, lang in clips
        ],
        "pairs": [{"a": list(a), "b": list(b), "similarity": 0.9} for i, a in enumerate(clips) for b in clips[i + 1 :]],
    }
    checks = {c.check: c for c in consistency_checks("presenter", measured, 0.5)}
    assert checks["character_across_scenes"].verdict == checks["character_across_languages"].verdict == "pass"
    reference = checks["character_vs_reference"]
    assert reference.verdict == "fail" and reference.metrics["value"] == 0.19
    assert "'presenter'" in reference.message and "0.19 < 0.50" in reference.message


def test_one_clip_has_only_the_reference_check(photo, clips) -> None:
    measured = character_consistency(photo, {("s0", "en"): clips["s0/en"]})
    assert measured["pairs"] == []
    (check,) = consistency_checks("hero", measured, 0.5)
    assert check.check == "character_vs_reference" and check.verdict == "pass"


def _brief(**qa) -> dict:
    return {
        "campaign_id": "consistency",
        "brand": {"name": "Test"},
        "languages": ["en"],
        "platforms": ["square"],
        "scenes": [{"id": "s0", "prompt": "a face", "duration_s": 2}],
        "qa": qa,
    }


def test_the_threshold_is_bounded_and_can_be_switched_off() -> None:
    assert validate_brief(_brief()).qa.min_character_consistency == 0.5
    assert validate_brief(_brief(min_character_consistency=None)).qa.min_character_consistency is None
    assert validate_brief(_brief(min_character_consistency=0.8)).qa.min_character_consistency == 0.8
    for bad in (1.5, -0.1, "alike"):
        with pytest.raises(BriefError) as caught:
            validate_brief(_brief(min_character_consistency=bad))
        found = {issue.loc: issue.message for issue in caught.value.issues}
        assert "qa.min_character_consistency" in found, found
        assert repr(bad) in found["qa.min_character_consistency"]  # names what it got


# --- the real flow -------------------------------------------------------------------------------


class FaceBackend(Generator):
    """Every scene shows the reference's face talking (framed per scene); ``odd`` (scene, language)
    shows it re-graded: the character drawn differently there."""

    name = "consistency-face-test"
    model_version = "astronaut-1"
    calibration = None
    odd: tuple[str, str] | None = None

    def generate(self, request: GenerationRequest) -> MasterClip:
        cal = type(self).calibration
        frames = request.num_frames
        samples = round(frames / request.fps * cal.RATE)
        height = min(request.width, request.height)
        at = (0.5, 0.5) if request.scene_id == "s0" else (0.4, 0.5)
        pictures = face_frames(cal, frames, height if request.scene_id == "s0" else height * 4 // 5, at,
                               (request.width, request.height))  # fmt: skip
        if (request.scene_id, request.language) == type(self).odd:
            pictures = regraded(pictures)
        audio = cal._music(samples, 0.05) + cal._room_tone(samples, request.seed % 1000)
        return MasterClip(
            frames=pictures,
            audio=audio[None].astype(np.float32),
            fps=request.fps,
            sample_rate=cal.RATE,
            backend=self.name,
            model_version=self.model_version,
            seed=request.seed,
            parameters={"steps": request.steps},
        )


@pytest.fixture
def face_state(embedded_state, calibration, photo, monkeypatch):
    monkeypatch.setattr(FaceBackend, "calibration", calibration)
    register_backend(FaceBackend)
    monkeypatch.setenv("SYNCREEL_BACKEND", FaceBackend.name)
    get_settings.cache_clear()
    folder = embedded_state / "brief"
    folder.mkdir()
    Image.open(photo).save(folder / "hero.png")
    write_wav(folder / "bed.wav", 0.5 * click_track(100.0, 6.0, 0.4)[0])
    line = calibration._placed(calibration._speech("Summer tastes lighter.", "en"), 0.3, 2 * calibration.RATE)
    write_wav(folder / "line.wav", line)
    clip_with_a_cut(folder / "hop.mp4")
    brief = {
        "campaign_id": "consistency-flow",
        "brand": {"name": "Test"},
        "languages": ["en", "es"],
        "platforms": ["square"],
        "platform_overrides": {"square": {"width": 240, "height": 240}},
        "master": {"width": 256, "height": 144, "fps": 12, "sample_rate": 48000},
        "references": [
            {"id": "hero", "kind": "image", "role": "character", "uri": "hero.png", "description": "the presenter"},
            {"id": "bed", "kind": "audio", "role": "music", "uri": "bed.wav"},
            {"id": "line", "kind": "audio", "role": "voice", "uri": "line.wav"},
            {"id": "hop", "kind": "video", "role": "motion", "uri": "hop.mp4"},
        ],
        "scenes": [
            {"id": f"s{i}", "prompt": "A woman in a studio.", "duration_s": 1.5, "references": ["hero", "bed"]}
            for i in range(2)
        ],
        "music": {"reference": "bed"},
        "generation": {"steps": 2},
        "qa": {"sync_checks": False, "max_regenerations": 0},
    }
    path = folder / "brief.yaml"
    path.write_text(yaml.safe_dump(brief, sort_keys=False))
    yield path
    _BACKENDS.pop(FaceBackend.name, None)
    get_settings.cache_clear()


def _character_rows(run_id: str) -> dict[str, tuple[str, str, dict]]:
    from syncreel.store import runs
    from syncreel.tasks.stage import get_runtime

    with get_runtime().session() as session:
        return {
            r.check: (r.verdict, r.message, dict(r.metrics))
            for r in runs.qa_results(session, run_id)
            if r.subject == "character:hero"
        }


def _published(summary) -> tuple[dict, str]:
    manifest = json.loads(Path(summary.manifest_uri.removeprefix("file://")).read_text())
    return manifest, Path(manifest["report_uri"].removeprefix("file://")).read_text()


@pytest.mark.slow
def test_the_same_character_in_every_scene_and_language_passes(harness, face_state) -> None:
    from syncreel.flows.campaign import produce_campaign

    summary = produce_campaign(str(face_state))
    rows = _character_rows(summary.run_id)
    assert {check: row[0] for check, row in rows.items()} == {
        "character_across_scenes": "pass",
        "character_across_languages": "pass",
        "character_vs_reference": "pass",
    }
    assert rows["character_across_languages"][2]["value"] >= 0.5
    assert summary.status == "succeeded", [c.message for r in summary.qa for c in r.failures]
    manifest, report = _published(summary)
    (entry,) = manifest["character_consistency"]
    assert entry["reference"] == "hero" and entry["verdict"] == "pass" and len(entry["checks"]) == 3
    assert "consistency" not in manifest["spots"][0]  # one place: the QA checks

    # The references section: every reference with its analysis, from the database.
    assert "<h2>References</h2>" in report and "Character consistency" in report
    assert "tempo 100.0 BPM" in report and "downbeats (4/4" in report and "<title>beat grid</title>" in report
    assert "speech " in report and " segments" in report  # the voice reference's speech
    assert "2 shot(s), cuts at:" in report and "<title>motion energy</title>" in report
    assert "1 face(s): box [" in report and 'class="swatch"' in report and "the presenter" in report

    again = produce_campaign(str(face_state))  # a re-run recalls the measurement and records the same checks
    assert again.run_id == summary.run_id and again.status == "succeeded"
    assert _character_rows(again.run_id) == rows


@pytest.mark.slow
def test_a_scene_drawn_differently_in_one_language_ends_needs_review(harness, face_state, monkeypatch) -> None:
    from syncreel.flows.campaign import produce_campaign

    monkeypatch.setattr(FaceBackend, "odd", ("s1", "es"))
    summary = produce_campaign(str(face_state))
    assert summary.status == "needs_review"
    rows = _character_rows(summary.run_id)
    verdict, message, metrics = rows["character_across_languages"]
    assert verdict == "fail" and set(metrics["lowest_pair"]) == {"s1/en", "s1/es"} and metrics["value"] < 0.5
    assert "'hero'" in message and "s1/en vs s1/es" in message and "< 0.50" in message
    verdict, message, metrics = rows["character_across_scenes"]
    assert verdict == "fail" and metrics["odd_one_out"] == ["s1/es"]
    assert all(r.verdict != "fail" for r in summary.qa if not r.subject.startswith("character:"))  # only this

    manifest, report = _published(summary)
    assert manifest["status"] == "needs_review" and manifest["character_consistency"][0]["verdict"] == "fail"
    assert "odd one out: s1/es" in report and 'class="fail"' in report
