"""The speech stage: lines spoken per language, voices from the brief, the voice handed to the generator,
Piper from a local path only, and no babble in a scene without dialogue. Offline and fast."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from syncreel.media.mix import read_stems
from syncreel.media.speech import (
    EspeakEngine,
    PiperEngine,
    SpeechError,
    Voice,
    default_voice_name,
    dialogue_track,
    engine_for,
    with_stem,
)
from syncreel.model.generator import GenerationRequest, ReferenceInput
from syncreel.schemas.brief import BriefError, validate_brief
from syncreel.schemas.clips import MasterClip
from syncreel.schemas.records import CampaignPlan, IngestedReference
from syncreel.tasks.generate import build_request, dialogue_stem, spoken_dialogue, takes_voice, with_dialogue_stem
from syncreel.tasks.inputs import dialogue_id, line_voice, voice_id
from syncreel.tasks.speak import speak_lines

RATE = 24_000
LINES = {
    "en": "Summer tastes lighter with Lumen Fizz.",
    "es": "El verano sabe más ligero con Lumen Fizz.",
    "fr": "L'été a un goût plus léger avec Lumen Fizz.",
    "de": "Der Sommer schmeckt leichter mit Lumen Fizz.",
    "pt-BR": "O verão tem um sabor mais leve com Lumen Fizz.",
}


def _voiced_seconds(wave: np.ndarray, rate: int, block_s: float = 0.02) -> float:
    """Seconds of 20 ms blocks above -40 dB of the loudest block."""
    block = int(rate * block_s)
    rms = np.sqrt(np.mean(wave[: wave.size // block * block].reshape(-1, block) ** 2, axis=1))
    return float((rms > rms.max() * 0.01).sum() * block_s)


@pytest.mark.parametrize("language", sorted(LINES))
def test_each_language_is_spoken_for_about_as_long_as_its_words(language: str) -> None:
    text = LINES[language]
    wave = EspeakEngine().speak(text, Voice(language, default_voice_name(language)), RATE)
    words = len(text.split())
    seconds = wave.size / RATE
    assert wave.dtype == np.float32 and np.isfinite(wave).all()
    # 165 words a minute is 0.36 s a word; espeak-ng says these lines at 0.25-0.33 s a word
    assert 0.18 * words <= seconds <= 0.5 * words, seconds
    assert _voiced_seconds(wave, RATE) >= 0.6 * seconds


def test_an_unknown_language_is_refused_naming_it() -> None:
    with pytest.raises(SpeechError, match="'tlh'"):
        default_voice_name("tlh")


def _brief(**extra: object) -> dict:
    return {
        "campaign_id": "speech",
        "brand": {"name": "Acme"},
        "languages": ["en", "es"],
        "platforms": ["youtube"],
        "scenes": [
            {"id": "quiet", "prompt": "A ball bouncing.", "duration_s": 2},
            {
                "id": "talk",
                "prompt": "A woman talking.",
                "duration_s": 4,
                "dialogue": [
                    {"speaker": "presenter", "start_s": 0.5, "text": {"en": LINES["en"], "es": LINES["es"]}},
                    {
                        "speaker": "narrator",
                        "on_screen": False,
                        "start_s": 3.0,
                        "text": {"en": "Open the light.", "es": "Abre la luz."},
                    },
                ],
            },
        ],
        **extra,
    }


def test_speaker_voice_and_rate_change_the_output() -> None:
    brief = validate_brief(
        _brief(
            voices={
                "presenter": {"voice": {"en": "en"}, "variant": "f3", "pitch": 70},
                "narrator": {"rate_wpm": 240},
            }
        )
    )
    engine = EspeakEngine()
    presenter, narrator = line_voice(brief, "presenter", "en"), line_voice(brief, "narrator", "en")
    assert (presenter.name, presenter.variant, presenter.pitch) == ("en", "f3", 70)
    assert (narrator.name, narrator.rate_wpm) == ("en-us", 240)
    default = engine.speak(LINES["en"], Voice("en", "en-us"), RATE)
    mapped = engine.speak(LINES["en"], presenter, RATE)
    fast = engine.speak(LINES["en"], narrator, RATE)
    assert fast.size < 0.85 * default.size  # 240 against 165 words a minute
    n = min(default.size, mapped.size)
    assert mapped.size != default.size or not np.allclose(mapped[:n], default[:n], atol=1e-3)


def test_voices_are_validated_with_field_paths() -> None:
    with pytest.raises(BriefError) as caught:
        validate_brief(
            _brief(
                voices={
                    "presenter": {"voice": {"en": "klingon", "fr": "fr"}, "variant": "x9", "rate_wpm": 20},
                    "nobody": {},
                }
            )
        )
    problems = {issue.loc: issue.message for issue in caught.value.issues}
    assert "klingon" in problems["voices.presenter.voice"]
    assert "x9" in problems["voices.presenter.variant"]
    assert "voices.presenter.rate_wpm" in problems
    assert "not one of the brief's languages" in problems["voices.presenter.voice.fr"]
    assert "no dialogue line has speaker 'nobody'" in problems["voices.nobody"]


def test_a_language_without_a_voice_is_a_validation_error() -> None:
    data = _brief()
    data["languages"] = ["en", "tlh"]
    for scene in data["scenes"]:
        for line in scene.get("dialogue", []):
            line["text"] = {"en": line["text"]["en"], "tlh": "Qapla'"}
    with pytest.raises(BriefError) as caught:
        validate_brief(data)
    assert any(i.loc == "languages[1]" and "'tlh'" in i.message for i in caught.value.issues)


def test_a_line_too_long_at_its_speakers_pace_names_line_language_and_seconds() -> None:
    data = _brief(voices={"narrator": {"rate_wpm": 90}})
    validate_brief(_brief())  # fits at the default pace: 3 words in the last second
    with pytest.raises(BriefError) as caught:
        validate_brief(data)
    (issue,) = [i for i in caught.value.issues if i.loc == "scenes[1].dialogue[1].text.en"]
    assert "'Open the light.'" in issue.message and "needs about 2.0 s" in issue.message
    assert "90 words a minute" in issue.message and "leaves 1.0 s" in issue.message


def test_dialogue_track_places_each_line_at_its_start() -> None:
    tone = np.sin(np.arange(RATE // 2) / 5).astype(np.float32)  # 0.5 s
    track, cut = dialogue_track([(0.25, tone), (1.8, tone)], 2.0, RATE)
    assert track.size == 2 * RATE
    onsets = np.flatnonzero(np.abs(track) > 1e-4)
    assert onsets[0] == pytest.approx(0.25 * RATE, abs=2)
    assert np.abs(track[int(1.0 * RATE) : int(1.7 * RATE)]).max() == 0
    assert cut == [0.0, 0.3]


# -- the stage and the generator --------------------------------------------------------------------------


def _plan(data: dict) -> CampaignPlan:
    brief = validate_brief(data)
    return CampaignPlan(run_id="run-speech", run_key="k", brief=brief, platforms=brief.platform_specs(), attempt=0)


@pytest.fixture
def plan(embedded_state: Path) -> CampaignPlan:
    return _plan(_brief())


def test_speak_lines_stores_the_dialogue_and_the_on_screen_voice_and_is_cached(plan: CampaignPlan) -> None:
    from syncreel.tasks.stage import get_runtime

    assert speak_lines.fn(plan, "quiet", "en") == []
    dialogue, voice = speak_lines.fn(plan, "talk", "es")
    assert (dialogue.id, dialogue.role, dialogue.kind) == (dialogue_id("talk", "es"), "dialogue", "audio")
    assert (voice.id, voice.role, voice.kind) == (voice_id("talk", "es"), "voice", "audio")
    rate = 48_000
    every = read_stems(get_runtime().store.fetch(dialogue.uri))[0]
    shown = read_stems(get_runtime().store.fetch(voice.uri))[0]
    assert every.size == shown.size == 4 * rate
    for track in (every, shown):  # the presenter at 0.5 s in both
        assert np.flatnonzero(np.abs(track) > 0.01)[0] / rate == pytest.approx(0.5, abs=0.05)
    late = slice(int(3.0 * rate), int(3.8 * rate))
    assert np.abs(every[late]).max() > 0.1  # the voice-over at 3.0 s is in the dialogue ...
    assert np.abs(shown[late]).max() == 0  # ... and does not drive the picture
    assert [(line["start_s"], line["on_screen"]) for line in voice.analysis["lines"]] == [(0.5, True), (3.0, False)]
    again = speak_lines.fn(plan, "talk", "es")  # espeak-ng is not bit-exact: the first take is kept
    assert [ref.sha256 for ref in again] == [dialogue.sha256, voice.sha256]


def test_a_voice_over_alone_drives_no_face(embedded_state: Path) -> None:
    from syncreel.tasks.stage import get_runtime

    data = _brief()
    data["scenes"][1]["dialogue"] = data["scenes"][1]["dialogue"][1:]  # the narrator only
    plan = _plan(data)
    (dialogue,) = speak_lines.fn(plan, "talk", "en")
    assert dialogue.role == "dialogue"
    request = build_request(get_runtime(), plan, plan.brief.scenes[1], "en", [dialogue], 0)
    assert request.references == ()  # generated from the prompt: the line is laid in as the dialogue stem
    assert dialogue_stem(request, get_runtime().store.fetch(dialogue.uri)) == "spoken"


def test_the_voice_reaches_the_generator_as_a_voice_reference(plan: CampaignPlan) -> None:
    from syncreel.tasks.stage import get_runtime

    rt = get_runtime()
    spoken = [ref for lang in ("en", "es") for ref in speak_lines.fn(plan, "talk", lang)]
    talk, quiet = plan.brief.scenes[1], plan.brief.scenes[0]
    request = build_request(rt, plan, talk, "es", spoken, 0)
    (ref,) = request.references  # the on-screen voice; the whole dialogue is not the backend's
    assert (ref.id, ref.role, ref.kind) == ("talk:voice:es", "voice", "audio") and ref.path.exists()
    assert request.dialogue == (("presenter", LINES["es"]), ("narrator", "Abre la luz."))
    assert spoken_dialogue("talk", "es", spoken).id == "talk:dialogue:es"
    assert spoken_dialogue("quiet", "es", spoken) is None
    assert build_request(rt, plan, quiet, "es", spoken, 0).references == ()
    # a backend that speaks the text itself gets the text and no voice
    texted = build_request(rt, plan, talk, "es", spoken, 0, voice=False)
    assert texted.references == () and texted.dialogue == request.dialogue
    assert dialogue_stem(texted, None) == "generated"


class _Backend:
    def __init__(self, roles: set[str], speaks_text: bool = False):
        self.supported_roles = frozenset(roles)
        self.speaks_text = speaks_text


def test_which_backends_take_the_voice() -> None:
    assert takes_voice(_Backend({"voice", "character"}))
    assert not takes_voice(_Backend({"voice"}, speaks_text=True))
    assert not takes_voice(_Backend({"first_frame", "continue"}))  # LTX-2's roles today


def _clip(seconds: float = 2.0, rate: int = 48_000) -> MasterClip:
    rng = np.random.default_rng(0)
    stems = (rng.standard_normal((3, int(seconds * rate))) * 0.1).astype(np.float32)
    return MasterClip(
        frames=np.zeros((int(seconds * 24), 8, 8, 3), np.uint8),
        audio=stems.sum(0)[None],
        fps=24,
        sample_rate=rate,
        backend="test",
        model_version="0",
        seed=0,
        stems=stems,
        stem_names=("dialogue", "effects", "ambience"),
    )


def _request(dialogue: tuple = (), references: tuple = ()) -> GenerationRequest:
    return GenerationRequest(
        scene_id="s",
        language="en",
        prompt="p",
        duration_s=2.0,
        width=64,
        height=64,
        fps=24,
        sample_rate=48_000,
        seed=0,
        dialogue=dialogue,
        references=references,
    )


def test_a_scene_without_dialogue_has_a_silent_dialogue_stem() -> None:
    clip = with_dialogue_stem(_clip(), _request())
    assert clip.parameters["dialogue_stem"] == "silent"
    assert np.abs(clip.stems[0]).max() == 0
    np.testing.assert_allclose(clip.audio[0], clip.stems.sum(0), atol=1e-6)
    assert np.abs(clip.stems[1]).max() > 0  # effects and ambience stay
    # a brief's own voice reference keeps what the backend made of it
    own = ReferenceInput(id="vo", kind="audio", role="voice", path=Path("vo.wav"))
    assert with_dialogue_stem(_clip(), _request(references=(own,))).parameters == {}


def test_spoken_lines_become_the_dialogue_stem(tmp_path: Path) -> None:
    from syncreel.media.encode import write_stems

    wave = EspeakEngine().speak("Open the light.", Voice("en", "en-us"), 48_000)
    track, _ = dialogue_track([(0.5, wave)], 2.0, 48_000)
    write_stems(track[None], 48_000, tmp_path / "voice.wav")
    clip = with_dialogue_stem(_clip(), _request((("narrator", "Open the light."),)), tmp_path / "voice.wav")
    assert clip.parameters["dialogue_stem"] == "spoken"
    dialogue = clip.stems[0]
    assert np.abs(dialogue[: int(0.45 * 48_000)]).max() < 1e-3  # silent before the line's start
    assert np.corrcoef(dialogue, track)[0, 1] > 0.99
    np.testing.assert_allclose(clip.audio[0], clip.stems.sum(0), atol=1e-5)


def test_a_voice_over_keeps_its_own_level_over_a_near_silent_generated_stem() -> None:
    """A scene generated from its prompt may leave its dialogue stem near silent: the line laid in is
    heard at its own level, not at that one."""
    stems = np.zeros((3, 100), np.float32)
    stems[0] = 1e-4  # the generator's near-silent dialogue
    stems[1, 10] = 0.3  # a thump
    line = np.full(100, 0.5, np.float32)
    new, mix = with_stem(stems, ("dialogue", "effects", "ambience"), "dialogue", line)
    np.testing.assert_allclose(new[0], line)
    assert mix[10] == pytest.approx(0.8) and mix[50] == pytest.approx(0.5)


def test_with_stem_keeps_the_mix_from_clipping() -> None:
    stems = np.full((2, 100), 0.6, np.float32)
    new, mix = with_stem(stems, ("dialogue", "effects"), "dialogue", np.ones(100, np.float32))
    assert np.abs(mix).max() <= 1.0
    np.testing.assert_allclose(mix, new.sum(0), atol=1e-6)


# -- Piper: a local voice model, never downloaded ---------------------------------------------------------


def test_a_missing_piper_model_is_a_clear_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "voices" / "en_US-missing.onnx"
    with pytest.raises(SpeechError, match=rf"{missing}: no such file"):
        engine_for("en", {"en": missing})


def test_a_broken_piper_model_is_a_clear_error_naming_the_path(tmp_path: Path) -> None:
    model = tmp_path / "en_US-broken.onnx"
    model.write_bytes(b"not an onnx model")
    with pytest.raises(SpeechError, match=rf"{model}: its config en_US-broken.onnx.json is missing"):
        PiperEngine(model)
    (tmp_path / "en_US-broken.onnx.json").write_text("{not json")
    with pytest.raises(SpeechError, match=rf"{model}: en_US-broken.onnx.json is not a Piper voice config"):
        PiperEngine(model)


def test_without_piper_tts_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    model = tmp_path / "en_US-test.onnx"
    model.write_bytes(b"\x08\x07")
    (tmp_path / "en_US-test.onnx.json").write_text('{"audio": {"sample_rate": 22050}}')
    monkeypatch.setitem(sys.modules, "piper", None)  # import piper raises ImportError
    engine = PiperEngine(model)
    assert engine.identity.startswith("piper/")
    with pytest.raises(SpeechError, match=rf"{model}: the piper-tts package is not installed \(pip install piper-tts"):
        engine.speak("Hello.", Voice("en", "en-us"), RATE)


def test_piper_engine_speaks_through_the_package_at_the_voices_pace(tmp_path: Path, monkeypatch) -> None:
    """The engine's own path, with a stand-in for piper-tts (no voice model exists on this machine)."""
    import types

    calls = []

    class FakeVoice:
        config = types.SimpleNamespace(sample_rate=22_050)

        @classmethod
        def load(cls, model_path: str, config_path: str) -> FakeVoice:
            calls.append(("load", model_path, config_path))
            return cls()

        def synthesize_stream_raw(self, text: str, length_scale: float):
            calls.append(("speak", text, length_scale))
            yield (np.full(22_050, 1000, "<i2")).tobytes()

    monkeypatch.setitem(sys.modules, "piper", types.SimpleNamespace(PiperVoice=FakeVoice))
    model = tmp_path / "en_US-test.onnx"
    model.write_bytes(b"\x08\x07")
    (tmp_path / "en_US-test.onnx.json").write_text('{"audio": {"sample_rate": 22050}}')
    wave = PiperEngine(model).speak("Hello.", Voice("en", "en-us", rate_wpm=330), 48_000)
    assert wave.size == 48_000 and wave.dtype == np.float32
    assert calls[0] == ("load", str(model), str(model) + ".json")
    assert calls[1] == ("speak", "Hello.", 0.5)


def test_ingested_reference_for_voice_is_a_plain_record() -> None:
    # the voice travels to a GPU worker inside SceneRequest like any reference
    ref = IngestedReference(
        id="talk:voice:en", kind="audio", role="voice", uri="file:///x", sha256="0", source_sha256="0", media_info={}
    )
    assert IngestedReference.model_validate_json(ref.model_dump_json()) == ref
