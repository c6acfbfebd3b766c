"""tasks/inputs.py: the brief mapped to the libraries' inputs, checked without Prefect, a database or files."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncreel.media.speech import default_voice_name
from syncreel.schemas.brief import AUDIO_EARLY_MS, AUDIO_LATE_MS, Brief, validate_brief
from syncreel.schemas.platforms import PLATFORMS
from syncreel.schemas.records import IngestedReference, MasterRecord
from syncreel.tasks.inputs import (
    SEED_STRIDE,
    caption_lines,
    continuation_of,
    deliverable_expectation,
    dialogue_id,
    generation_parameters,
    generation_request,
    has_own_voice,
    line_voice,
    master_expectation,
    request_identity,
    scene_prompt,
    scene_references,
    scene_seed,
    spoken_lines,
    spot_edit,
    sync_expectation,
    voice_id,
)


def _brief(**extra: object) -> Brief:
    data = {
        "campaign_id": "inputs",
        "brand": {"name": "Acme", "tone": "bright"},
        "languages": ["en", "es"],
        "platforms": ["tiktok", "youtube"],
        "master": {"width": 320, "height": 180, "fps": 25, "sample_rate": 48_000},
        "generation": {"steps": 6, "video_guidance": 4.0, "negative_prompt": "blur"},
        "references": [
            {"id": "hero", "kind": "image", "role": "character", "uri": "hero.png"},
            {"id": "bed", "kind": "audio", "role": "music", "uri": "bed.wav"},
        ],
        "voices": {"narrator": {"voice": {"es": "es-419"}, "variant": "f2", "rate_wpm": 150}},
        "scenes": [
            {
                "id": "talk",
                "prompt": "A woman talking.",
                "duration_s": 4,
                "references": ["hero"],
                "dialogue": [
                    {"speaker": "presenter", "start_s": 0.5, "text": {"en": "Hello there.", "es": "Hola."}},
                    {"speaker": "narrator", "on_screen": False, "text": {"en": "Acme.", "es": "Acme."}},
                ],
                "sound_cues": [{"at_s": 1.0, "description": "a pop"}],
            },
            {"id": "more", "prompt": "The same, closer.", "duration_s": 2, "continue_previous": True, "seed": 7},
        ],
        **extra,
    }
    return validate_brief(data, "inputs.yaml", base_uri="/briefs")


def _ref(ref_id: str, kind: str = "image", role: str = "character", sha: str = "a" * 64) -> IngestedReference:
    return IngestedReference(
        id=ref_id, kind=kind, role=role, uri=f"file:///store/{ref_id}", sha256=sha, source_sha256=sha, media_info={}
    )


def _master(scene_id: str = "talk", events: tuple[float, ...] = ()) -> MasterRecord:
    return MasterRecord(
        scene_id=scene_id, language="en", uri="file:///store/m.mp4", sha256="b" * 64, generation_key="g",
        backend="builtin", model_version="v", seed=1, attempt=0, duration_s=4.0, width=320, height=180, fps=25,
        event_times_s=events,
    )  # fmt: skip


def test_seeds_are_stable_per_scene_and_language_and_move_on_with_each_attempt() -> None:
    brief = _brief()
    talk, more = brief.scenes
    first = scene_seed(brief, talk, "en", 0)
    assert first == scene_seed(brief, talk, "en", 0) and 0 <= first < 2**31
    assert scene_seed(brief, talk, "es", 0) != first
    assert scene_seed(brief, talk, "en", 1) == (first + SEED_STRIDE) % 2**31
    assert scene_seed(brief, more, "en", 0) == 7 and scene_seed(brief, more, "es", 2) == 7 + 2 * SEED_STRIDE


def test_the_prompt_carries_the_brand_and_its_tone() -> None:
    brief = _brief()
    assert scene_prompt(brief, brief.scenes[0]) == "A woman talking. Brand: Acme. Tone: bright."
    plain = _brief(brand={"name": "Acme"})
    assert scene_prompt(plain, plain.scenes[0]) == "A woman talking. Brand: Acme."


def test_a_scene_takes_its_own_references_its_continuation_and_its_voice() -> None:
    brief = _brief()
    talk, more = brief.scenes
    previous = continuation_of(_master())
    pool = [_ref("hero"), _ref("bed", "audio", "music"), previous, _ref(voice_id("talk", "en"), "audio", "voice")]
    pool.append(_ref(voice_id("talk", "es"), "audio", "voice"))
    assert [r.id for r in scene_references(talk, "en", pool)] == ["hero", "talk:voice:en"]
    assert [r.id for r in scene_references(talk, "en", pool, voice=False)] == ["hero"]
    assert [r.id for r in scene_references(more, "en", pool)] == ["talk:last-frames"]
    assert previous.role == "continue" and previous.uri == _master().uri


def test_the_generation_request_holds_the_brief_s_format_text_and_references() -> None:
    brief = _brief()
    talk = brief.scenes[0]
    hero = _ref("hero")
    request = generation_request(brief, talk, "es", [(hero, Path("/tmp/hero.png"))], attempt=1)
    assert (request.width, request.height, request.fps, request.sample_rate) == (320, 180, 25, 48_000)
    assert request.duration_s == 4 and request.seed == scene_seed(brief, talk, "es", 1)
    assert request.dialogue == (("presenter", "Hola."), ("narrator", "Acme."))
    assert request.sound_cues == ((1.0, "a pop"),)
    assert (request.steps, request.video_guidance, request.negative_prompt) == (6, 4.0, "blur")
    assert [(r.id, r.role, r.path) for r in request.references] == [("hero", "character", Path("/tmp/hero.png"))]
    assert generation_parameters(request, 1) == {
        "steps": 6, "video_guidance": 4.0, "audio_guidance": 3.0, "sync_guidance": 1.0,
        "width": 320, "height": 180, "fps": 25, "duration_s": 4, "attempt": 1,
    }  # fmt: skip


def test_a_request_is_identified_by_its_references_content_not_their_paths() -> None:
    brief = _brief()
    hero = _ref("hero")
    here = generation_request(brief, brief.scenes[0], "en", [(hero, Path("/a/hero.png"))], 0)
    there = generation_request(brief, brief.scenes[0], "en", [(hero, Path("/b/hero.png"))], 0)
    assert request_identity(here, [hero]) == request_identity(there, [hero])
    other = hero.model_copy(update={"sha256": "c" * 64})
    assert request_identity(here, [other]) != request_identity(here, [hero])


def test_each_line_starts_where_the_brief_says_in_its_speaker_s_voice() -> None:
    brief = _brief()
    lines = spoken_lines(brief, brief.scenes[0], "es")
    assert [(line.start_s, line.text, line.on_screen) for line in lines] == [
        (0.5, "Hola.", True),
        (2.0, "Acme.", False),
    ]
    assert lines[0].voice.name == default_voice_name("es")
    narrator = line_voice(brief, "narrator", "es")
    assert (narrator.name, narrator.variant, narrator.rate_wpm) == ("es-419", "f2", 150)
    assert line_voice(brief, "narrator", "en").name == default_voice_name("en")
    assert not has_own_voice(brief, brief.scenes[0])


def test_the_spot_edit_follows_the_brief_s_music() -> None:
    plain = spot_edit(_brief(), [_ref("bed", "audio", "music")])
    assert plain.music is None and not plain.beat_sync and plain.mix.music_db == -6.0
    music = {"reference": "bed", "beat_sync": True, "gain_db": -9, "duck_db": 12, "layers": {"dialogue_db": 2}}
    edit = spot_edit(_brief(music=music), [_ref("hero"), _ref("bed", "audio", "music")])
    assert edit.music is not None and edit.music.id == "bed" and edit.beat_sync
    assert (edit.mix.music_db, edit.mix.duck_db, edit.mix.dialogue_db) == (-9, 12, 2)
    unplayed = spot_edit(_brief(music=music), [])  # the track was not ingested: no music layer, no beat sync
    assert unplayed.music is None and not unplayed.beat_sync


def test_captions_follow_the_scenes_where_the_edit_put_them() -> None:
    brief = _brief()
    by_duration = caption_lines(brief, "en", ())
    assert [(c.text, c.scene_start_s, c.scene_end_s, c.start_s) for c in by_duration] == [
        ("Hello there.", 0.0, 4.0, 0.5),
        ("Acme.", 0.0, 4.0, None),
    ]
    moved = caption_lines(brief, "es", (0.0, 3.8))
    assert {(c.scene_start_s, c.scene_end_s) for c in moved} == {(0.0, 3.8)}


def test_qa_expects_the_master_format_the_platform_spec_and_the_brief_s_sync_band() -> None:
    brief = _brief()
    master = master_expectation(brief, brief.scenes[0])
    assert (master.width, master.height, master.fps, master.duration_s, master.bed_under) == (320, 180, 25, 4, False)
    assert master_expectation(_brief(music={"reference": "bed"}), brief.scenes[0]).bed_under
    spec = PLATFORMS["tiktok"]
    deliverable = deliverable_expectation(brief, spec, 6.0)
    assert (deliverable.width, deliverable.duration_s, deliverable.loudness_tolerance_lu) == (spec.width, 6.0, 2.0)
    sync = sync_expectation(brief, brief.scenes[0], _master(events=(1.0,)))
    assert sync is not None and (sync.max_audio_early_ms, sync.max_audio_late_ms) == (
        AUDIO_EARLY_MS,
        AUDIO_LATE_MS,
    )
    assert sync is not None and sync.speaker_expected and sync.speech_expected and sync.effects_expected
    assert sync.events_s == (1.0,)
    quiet = sync_expectation(brief, brief.scenes[1], _master("more"))
    assert quiet is not None and not (quiet.speaker_expected or quiet.speech_expected or quiet.effects_expected)
    assert sync_expectation(_brief(qa={"sync_checks": False}), brief.scenes[0], _master()) is None


@pytest.mark.parametrize("make", [voice_id, dialogue_id])
def test_made_reference_ids_cannot_be_a_brief_s(make) -> None:  # noqa: ANN001 - one of the id functions
    made = make("talk", "en")
    assert ":" in made and "talk" in made and made.endswith(":en")
    assert voice_id("talk", "en") != dialogue_id("talk", "en")
