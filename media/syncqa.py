"""Both sync scores of a clip from one decode, judged, and as `media.qc.CheckResult`s (checks
``lipsync`` and ``sfx_sync``) that sit in the same list as the technical checks — from the same decode
as those too (`qa_checks`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from syncreel.media import lipsync, sfxsync
from syncreel.media.faces import FaceTracker
from syncreel.media.frames import AudioTrack
from syncreel.media.lipsync import LipSyncScore, LipSyncVerdict
from syncreel.media.probe import MediaInfo, probe
from syncreel.media.qc import CheckResult, Expectation, evaluate, measure_with_tracks
from syncreel.media.sfxsync import SfxSyncScore, SfxSyncVerdict
from syncreel.media.tracks import ClipTracks, analyse
from syncreel.schemas.brief import AUDIO_EARLY_MS, AUDIO_LATE_MS, MIN_LIPSYNC_CONFIDENCE, MIN_SFX_CONFIDENCE


@dataclass(frozen=True)
class SyncReport:
    path: str
    lipsync: LipSyncScore
    lipsync_verdict: LipSyncVerdict
    sfx: SfxSyncScore
    sfx_verdict: SfxSyncVerdict

    @property
    def checks(self) -> tuple[CheckResult, CheckResult]:
        return (
            CheckResult(
                "lipsync",
                self.lipsync_verdict.verdict,
                {"status": self.lipsync_verdict.status, **_json(self.lipsync.to_dict())},
                self.lipsync_verdict.message,
            ),
            CheckResult(
                "sfx_sync",
                self.sfx_verdict.verdict,
                {"status": self.sfx_verdict.status, **_json(self.sfx.to_dict())},
                self.sfx_verdict.message,
            ),
        )


def _json(value: Any) -> Any:
    """Tuples → lists and floats rounded, so that the metrics are plain JSON."""
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, float):
        return round(value, 4)
    return value


@dataclass(frozen=True)
class SyncExpectation:
    """What a clip's sync is judged against. The thresholds are a brief's ``qa`` fields (ITU-R BT.1359
    and calibrated defaults); ``speaker_expected``: the clip should show its speaker talking;
    ``speech_expected``: it should hold speech (on screen or voice-over); ``effects_expected``: its
    sounds should follow what moves (implied by ``events_s``, the generator's visual event times)."""

    max_audio_early_ms: float = AUDIO_EARLY_MS
    max_audio_late_ms: float = AUDIO_LATE_MS
    min_lipsync_confidence: float = MIN_LIPSYNC_CONFIDENCE
    min_sfx_confidence: float = MIN_SFX_CONFIDENCE
    speaker_expected: bool = False
    speech_expected: bool = False
    effects_expected: bool = False
    events_s: tuple[float, ...] = ()


ANY_CLIP = SyncExpectation()  # the default thresholds, and nothing expected of the clip


def score_sync(
    path: str | Path, expect: SyncExpectation = ANY_CLIP, *, tracker: FaceTracker | None = None
) -> SyncReport:
    """Decode ``path`` once; score and judge its lip-sync and sound-effect sync against ``expect``."""
    return judge(analyse(path, tracker=tracker), expect)


def judge(tracks: ClipTracks, expect: SyncExpectation = ANY_CLIP, *, effects: AudioTrack | None = None) -> SyncReport:
    """Score and judge a decoded clip's lip-sync and sound-effect sync against ``expect``.
    ``effects``: the clip's sound-effects stem, when its maker kept the stems apart; the sound-effect
    sync is then scored on it alone, since the dialogue, music and ambience beside it need not follow
    what moves (a line's syllables would only blur the score)."""
    lip = lipsync.score_tracks(tracks)
    sfx = sfxsync.score_tracks(replace(tracks, audio=effects) if effects is not None else tracks, expect.events_s)
    return SyncReport(
        path=tracks.path,
        lipsync=lip,
        lipsync_verdict=lipsync.judge_lipsync(
            lip,
            max_audio_early_ms=expect.max_audio_early_ms,
            max_audio_late_ms=expect.max_audio_late_ms,
            min_confidence=expect.min_lipsync_confidence,
            speaker_expected=expect.speaker_expected,
            speech_expected=expect.speech_expected,
        ),
        sfx=sfx,
        sfx_verdict=sfxsync.judge_sfx_sync(
            sfx,
            max_audio_early_ms=expect.max_audio_early_ms,
            max_audio_late_ms=expect.max_audio_late_ms,
            min_confidence=expect.min_sfx_confidence,
            effects_expected=bool(expect.events_s) or expect.effects_expected,
        ),
    )


def qa_checks(
    path: str | Path,
    expect: Expectation,
    sync: SyncExpectation | None = None,
    tracker: FaceTracker | None = None,
    info: MediaInfo | None = None,
    effects: AudioTrack | None = None,
) -> list[CheckResult]:
    """The technical checks of ``path`` against ``expect`` and, when ``sync`` is given, both sync scores
    judged against it, from one decode of the picture (ffmpeg measures the sound meanwhile,
    in its own process). ``info``: the file's probe, when the caller has it already; ``effects``: the
    clip's sound-effects stem (`judge`)."""
    info = info or probe(path)
    measured, tracks = measure_with_tracks(Path(path), info, sync=sync is not None, tracker=tracker)
    technical = evaluate(info, measured, expect)
    if sync is None or tracks is None:
        return technical
    return technical + list(judge(tracks, sync, effects=effects).checks)
