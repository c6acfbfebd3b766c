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
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from syncreel import audio, espeak, media
from syncreel.media.encode import write_stems
from syncreel.media.speech import SpeechEngine, dialogue_track, engine_for
from syncreel.schemas.records import CampaignPlan, IngestedReference
from syncreel.tasks.inputs import SpokenLine, dialogue_id, has_own_voice, spoken_lines, voice_id
from syncreel.tasks.stage import (
    CONNECTION_DELAYS,
    CONNECTION_RETRIES,
    Runtime,
    Stage,
    StoredFile,
    cache_key,
    code_fingerprint,
    connection_dropped,
    store_asset,
)


@task(
    name="speak_lines",
    cache_policy=NO_CACHE,
    task_run_name="speak-{scene_id}-{language}",
    timeout_seconds=900,
    retries=CONNECTION_RETRIES,
    retry_delay_seconds=CONNECTION_DELAYS,
    retry_condition_fn=connection_dropped,
)
def speak_lines(plan: CampaignPlan, scene_id: str, language: str) -> list[IngestedReference]:
    """The scene's spoken lines in ``language``: its ``dialogue`` reference and, when a line is said on
    screen, its ``voice`` reference; none when there is nothing to speak (no dialogue, or the scene's
    own voice reference)."""
    brief, scene = plan.brief, plan.scene(scene_id)
    stage = Stage("speak", f"{scene_id}/{language}", plan=plan, scene=scene_id, language=language)
    if not scene.dialogue or has_own_voice(brief, scene):
        stage.finish(detail="no dialogue" if not scene.dialogue else "the scene's own voice reference")
        return []
    stage.start()
    engine = engine_for(language, stage.rt.settings.piper_voices)
    lines = spoken_lines(brief, scene, language)
    sample_rate = brief.master.sample_rate
    key = cache_key(
        "speak",
        [(line.start_s, line.text, asdict(line.voice), line.on_screen) for line in lines],
        scene.duration_s,
        sample_rate,
        engine.identity,
        code_fingerprint(media.speech, espeak, audio),
    )
    record, cached = stage.memo(key, lambda: _speak(stage.rt, engine, lines, scene.duration_s, sample_rate))
    stage.finish(cached, ", ".join(_timing(line) for line in record["lines"]))
    return _references(scene_id, language, record, sample_rate)


def _speak(rt: Runtime, engine: SpeechEngine, lines: list[SpokenLine], duration_s: float, sample_rate: int) -> dict:
    """Speak every line into the scene-long dialogue track, and the on-screen ones alone into the voice
    track when some lines are voice-overs; store both (one file when every line is on screen)."""
    spoken = [(line.start_s, engine.speak(line.text, line.voice, sample_rate)) for line in lines]
    on_screen = [placed for placed, line in zip(spoken, lines, strict=True) if line.on_screen]
    track, cut = dialogue_track(spoken, duration_s, sample_rate)
    info = {"sample_rate": sample_rate, "channels": 1, "duration_s": duration_s}
    with rt.scratch("voice") as scratch:
        dialogue = _store_track(rt, track, sample_rate, scratch / "dialogue.wav", info)
        voice = dialogue
        if on_screen and len(on_screen) < len(spoken):  # the on-screen lines alone drive the picture
            voice = _store_track(rt, dialogue_track(on_screen, duration_s, sample_rate)[0], sample_rate,
                                 scratch / "voice.wav", info)  # fmt: skip
    return {
        "uri": dialogue.uri,
        "sha256": dialogue.sha256,
        "asset_id": dialogue.asset_id,
        "voice": {"uri": voice.uri, "sha256": voice.sha256} if on_screen else None,
        "engine": engine.identity,
        "lines": [
            {
                "start_s": start,
                "seconds": round(wave.size / sample_rate, 3),
                "cut_s": cut_s,
                "on_screen": line.on_screen,
            }
            for (start, wave), cut_s, line in zip(spoken, cut, lines, strict=True)
        ],
    }


def _store_track(rt: Runtime, track: np.ndarray, sample_rate: int, path: Path, info: dict) -> StoredFile:
    write_stems(track[None], sample_rate, path)
    return store_asset(rt, path, "voice", info)


def _timing(line: dict) -> str:
    return f"{line['seconds']:.2f} s at {line['start_s']:g} s{'' if line['on_screen'] else ' (voice-over)'}"


def _references(scene_id: str, language: str, record: dict, sample_rate: int) -> list[IngestedReference]:
    """The spoken tracks as references of the scene's generation: the dialogue, and the voice if any."""
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
