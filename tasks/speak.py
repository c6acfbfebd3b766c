"""speak_lines: a scene's dialogue in one language, spoken (media/speech.py) into scene-long tracks.

Each line starts at its ``start_s`` (voice-overs included), in its speaker's voice from the brief's
``voices`` (espeak-ng, or the operator's Piper voice for that language, ``SYNCREEL_PIPER_VOICES``). Two
tracks go to the asset store, each a reference of the scene's generation (tasks/generate.py):

- the **dialogue** (``dialogue_id``, role ``dialogue``): every line, voice-overs included: the master's
  dialogue stem is this track itself;
- the **voice** (``voice_id``, role ``voice``): the lines said on screen only, which drive the generator's
  audio-to-video mode, so that a face moves its mouth for them. A scene whose lines are all voice-overs
  has none: its picture and sound are generated from the prompt (a voice-over makes no face talk), and
  only its dialogue stem is the line. When every line is on screen both are the same stored file.

A scene without dialogue, or with a voice reference of its own, is left as it is.
"""

from __future__ import annotations

from dataclasses import asdict

from prefect import task
from prefect.cache_policies import NO_CACHE
from syncreel.media.encode import write_stems
from syncreel.media.speech import Voice, default_voice_name, dialogue_track, engine_for, line_starts
from syncreel.schemas.brief import Brief, Scene
from syncreel.schemas.records import CampaignPlan, IngestedReference
from syncreel.tasks.progress import emit
from syncreel.tasks.runtime import cache_key, code_fingerprint, get_runtime, memoized, store_asset

from syncreel import audio, espeak, media


def voice_id(scene_id: str, language: str) -> str:
    """The id of a scene's on-screen lines as a reference: no brief id can hold a ':' (continuation_of
    does the same), and the language is in it, so one list can carry every scene's voices."""
    return f"{scene_id}:voice:{language}"


def dialogue_id(scene_id: str, language: str) -> str:
    """The id of a scene's whole dialogue (voice-overs included) as a reference."""
    return f"{scene_id}:dialogue:{language}"


def has_own_voice(brief: Brief, scene: Scene) -> bool:
    """Whether the scene names a voice reference of the brief (which it keeps, and nothing is spoken)."""
    return any(brief.reference(ref_id).role == "voice" for ref_id in scene.references)


def line_voice(brief: Brief, speaker: str, language: str) -> Voice:
    """How ``speaker`` sounds in ``language``: the brief's voices entry over the language's defaults."""
    given = brief.voice_of(speaker)
    name = given.voice.get(language) or default_voice_name(language)
    return Voice(language=language, name=name, variant=given.variant, rate_wpm=given.rate_wpm, pitch=given.pitch)


@task(name="speak_lines", cache_policy=NO_CACHE, task_run_name="speak-{scene_id}-{language}")
def speak_lines(plan: CampaignPlan, scene_id: str, language: str) -> list[IngestedReference]:
    """The scene's spoken lines in ``language``: its ``dialogue`` reference and, when a line is said on
    screen, its ``voice`` reference; none when there is nothing to speak (no dialogue, or the scene's
    own voice reference)."""
    brief = plan.brief
    scene = next(s for s in brief.scenes if s.id == scene_id)
    item = f"{scene_id}/{language}"
    if not scene.dialogue or has_own_voice(brief, scene):
        emit("speak", item, "done", "no dialogue" if not scene.dialogue else "the scene's own voice reference")
        return []
    rt = get_runtime()
    emit("speak", item, "started")
    engine = engine_for(language, rt.settings.piper_voices)
    starts = line_starts([line.start_s for line in scene.dialogue], scene.duration_s)
    lines = [
        (start, line.text[language], line_voice(brief, line.speaker, language), line.on_screen)
        for start, line in zip(starts, scene.dialogue, strict=True)
    ]
    sample_rate = brief.master.sample_rate
    key = cache_key(
        "speak",
        [(start, text, asdict(voice), on_screen) for start, text, voice, on_screen in lines],
        scene.duration_s,
        sample_rate,
        engine.identity,
        code_fingerprint(media.speech, espeak, audio),
    )

    def produce() -> tuple[dict, int]:
        spoken = [(start, engine.speak(text, voice, sample_rate)) for start, text, voice, _ in lines]
        on_screen = [placed for placed, (*_, shown) in zip(spoken, lines, strict=True) if shown]
        track, cut = dialogue_track(spoken, scene.duration_s, sample_rate)
        info = {"sample_rate": sample_rate, "channels": 1, "duration_s": scene.duration_s}
        with rt.scratch(f"voice-{scene_id}-{language}") as scratch:
            write_stems(track[None], sample_rate, scratch / "dialogue.wav")
            stored, asset_id = store_asset(rt, scratch / "dialogue.wav", "voice", info)
            voice = stored
            if on_screen and len(on_screen) < len(spoken):  # the on-screen lines alone drive the picture
                write_stems(dialogue_track(on_screen, scene.duration_s, sample_rate)[0][None], sample_rate,
                            scratch / "voice.wav")  # fmt: skip
                voice = store_asset(rt, scratch / "voice.wav", "voice", info)[0]
        record = {
            "uri": stored.uri,
            "sha256": stored.sha256,
            "voice": {"uri": voice.uri, "sha256": voice.sha256} if on_screen else None,
            "engine": engine.identity,
            "lines": [
                {"start_s": start, "seconds": round(wave.size / sample_rate, 3), "cut_s": cut_s, "on_screen": shown}
                for (start, wave), cut_s, (*_, shown) in zip(spoken, cut, lines, strict=True)
            ],
        }
        return record, asset_id

    record, cached = memoized(rt, "speak", key, produce)
    seconds = ", ".join(
        f"{line['seconds']:.2f} s at {line['start_s']:g} s{'' if line['on_screen'] else ' (voice-over)'}"
        for line in record["lines"]
    )
    emit("speak", item, "cached" if cached else "done", seconds)
    analysis = {"engine": record["engine"], "lines": record["lines"]}
    made = [(dialogue_id(scene_id, language), "dialogue", record)]
    if record["voice"] is not None:
        made.append((voice_id(scene_id, language), "voice", record["voice"]))
    return [
        IngestedReference(
            id=ref_id,
            kind="audio",
            role=role,
            uri=stored["uri"],
            sha256=stored["sha256"],
            source_sha256=stored["sha256"],
            media_info={"sample_rate": sample_rate, "channels": 1},
            analysis=analysis,
        )
        for ref_id, role, stored in made
    ]
