"""Character consistency: does a character reference look the same in every scene and language it is in?

The measure is the colour-histogram intersection (0..1, 1 the same colours) of the largest face in each
clip's middle picture (the whole picture when no face is found), against the reference photo's face and
between every two clips. Measured (tests/media/test_consistency.py, the example brief's builtin
masters): the same face in other framings, sizes, mouth openings, seeds and languages scores 0.77–0.92
against itself and 0.75–0.94 against its photo; a scene without the character 0.26–0.42, the same face
re-graded warm (+40 red, −40 blue) about 0.1, a different picture 0.0. The brief's default threshold
(``qa.min_character_consistency``, 0.5) sits in the gap.

``character_consistency`` measures; ``consistency_checks`` judges the measurement against a threshold
(the brief's ``qa.min_character_consistency``) as QA checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import av
import numpy as np

from syncreel.media.errors import MediaError
from syncreel.media.frames import Picture
from syncreel.media.probe import open_input
from syncreel.media.qc import CheckResult

APPEARANCE_BINS = 8  # per RGB channel: 512 colour cells
METHOD = "rgb histogram intersection of the face crop (middle picture)"

Clip = tuple[str, str]  # (scene id, language)


def _middle_picture(path: Path) -> av.VideoFrame:
    """The middle decoded picture of a clip (the picture itself for a still image)."""
    try:
        with open_input(path) as container:
            frames = list(container.decode(video=0))
    except av.FFmpegError as exc:
        raise MediaError(path, f"cannot decode the pictures ({exc.strerror})") from None
    if not frames:
        raise MediaError(path, "no pictures")
    return frames[len(frames) // 2]


def appearance(frame: av.VideoFrame, detector: Any | None = None) -> tuple[np.ndarray, bool]:
    """A colour histogram of the largest face in the picture (the whole picture when none is found),
    normalized to sum 1; and whether a face was found."""
    rgb = frame.to_ndarray(format="rgb24")
    face = False
    if detector is not None:
        detections = detector.detect(Picture(frame.reformat(format="yuv420p")))
        if detections:
            x0, y0, x1, y1 = max(detections, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1])).box
            crop = rgb[max(0, int(y0)) : max(1, int(y1)), max(0, int(x0)) : max(1, int(x1))]
            if crop.size:
                rgb, face = crop, True
    cells = (rgb.reshape(-1, 3) // (256 // APPEARANCE_BINS)).astype(np.intp)
    index = (cells[:, 0] * APPEARANCE_BINS + cells[:, 1]) * APPEARANCE_BINS + cells[:, 2]
    histogram = np.bincount(index, minlength=APPEARANCE_BINS**3).astype(np.float64)
    return histogram / max(1.0, histogram.sum()), face


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(np.minimum(a, b).sum()), 3)


def _detector() -> Any | None:
    try:
        from syncreel.media.faces import FaceDetector

        return FaceDetector()
    except Exception:  # noqa: BLE001 - without the face runtime, whole pictures are compared
        return None


def character_consistency(reference_image: Path, clips: Mapping[Clip, Path]) -> dict[str, Any]:
    """How alike one character looks in the clips that show it, keyed (scene id, language): each clip
    against the reference photo, and every two clips against each other. JSON-ready."""
    detector = _detector()
    reference, reference_face = appearance(_middle_picture(Path(reference_image)), detector)
    signatures: dict[Clip, np.ndarray] = {}
    measured_clips = []
    for (scene, language), clip in clips.items():
        signature, face = appearance(_middle_picture(Path(clip)), detector)
        signatures[(scene, language)] = signature
        measured_clips.append(
            {
                "scene": scene,
                "language": language,
                "face_found": face,
                "similarity_to_reference": _similarity(signature, reference),
            }
        )
    names = list(signatures)
    pairs = [
        {"a": list(a), "b": list(b), "similarity": _similarity(signatures[a], signatures[b])}
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    return {
        "method": METHOD,
        "detector": detector is not None,
        "reference_face_found": reference_face,
        "clips": measured_clips,
        "pairs": pairs,
    }


def _name(clip: list[str] | tuple[str, str]) -> str:
    return f"{clip[0]}/{clip[1]}"


def _pairs_check(
    check: str, character: str, what: str, pairs: list[dict[str, Any]], unfaced: set[str], min_similarity: float
) -> CheckResult:
    """One verdict over a group of clip pairs: fail when any pair is below the threshold (the message
    names the lowest pair and any clip every failing pair shares), warn when a clip showed no face."""
    lowest = min(pairs, key=lambda p: p["similarity"])
    below = [p for p in pairs if p["similarity"] < min_similarity]
    shared = set.intersection(*({_name(p["a"]), _name(p["b"])} for p in below)) if below else set()
    metrics = {
        "value": lowest["similarity"],
        "threshold": min_similarity,
        "lowest_pair": [_name(lowest["a"]), _name(lowest["b"])],
        "pairs": [{"a": _name(p["a"]), "b": _name(p["b"]), "similarity": p["similarity"]} for p in pairs],
        "below": [[_name(p["a"]), _name(p["b"])] for p in below],
        "odd_one_out": sorted(shared) if below and len(below) > 1 else [],
    }
    pair = f"{_name(lowest['a'])} vs {_name(lowest['b'])}"
    if below:
        odd = f"; odd one out: {', '.join(sorted(shared))}" if len(below) > 1 and shared else ""
        return CheckResult(
            check,
            "fail",
            metrics,
            f"character {character!r} looks different {what}: {pair} similarity {lowest['similarity']:.2f} "
            f"< {min_similarity:.2f} (min_character_consistency); {len(below)} of {len(pairs)} pair(s) below{odd}",
        )
    faceless = sorted(unfaced & {_name(p[side]) for p in pairs for side in ("a", "b")})
    message = (
        f"character {character!r} alike {what}: lowest {pair} {lowest['similarity']:.2f} "
        f">= {min_similarity:.2f} over {len(pairs)} pair(s)"
    )
    if faceless:
        return CheckResult(check, "warn", metrics, f"{message}; no face found in {', '.join(faceless)}: whole pictures")
    return CheckResult(check, "pass", metrics, message)


def consistency_checks(character: str, measured: dict[str, Any], min_similarity: float) -> list[CheckResult]:
    """The QA checks of one character's measurement (``character_consistency``):

    - ``character_across_scenes``: every two clips of different scenes (any languages) alike;
    - ``character_across_languages``: each scene's clips in different languages alike;
    - ``character_vs_reference``: each clip against the reference photo; a clip below the threshold
      fails: a presenter unlike the brief's photo (another face, the model's own) is not the brief's
      presenter, however alike the clips are to each other. Without a face in the photo or a clip the
      verdict can only warn (whole pictures were compared).

    A group with no pairs (one scene, or one language) has no check."""
    unfaced = {_name((c["scene"], c["language"])) for c in measured["clips"] if not c["face_found"]}
    pairs = measured["pairs"]
    checks = []
    across_scenes = [p for p in pairs if p["a"][0] != p["b"][0]]
    if across_scenes:
        checks.append(
            _pairs_check("character_across_scenes", character, "across scenes", across_scenes, unfaced, min_similarity)
        )
    across_languages = [p for p in pairs if p["a"][0] == p["b"][0] and p["a"][1] != p["b"][1]]
    if across_languages:
        checks.append(
            _pairs_check(
                "character_across_languages", character, "across languages", across_languages, unfaced, min_similarity
            )
        )
    if measured["clips"]:
        lowest = min(measured["clips"], key=lambda c: c["similarity_to_reference"])
        unlike = [c for c in measured["clips"] if c["similarity_to_reference"] < min_similarity]
        clip = _name((lowest["scene"], lowest["language"]))
        metrics = {
            "value": lowest["similarity_to_reference"],
            "threshold": min_similarity,
            "reference_face_found": measured["reference_face_found"],
            "clips": [
                {
                    "clip": _name((c["scene"], c["language"])),
                    "similarity": c["similarity_to_reference"],
                    "face_found": c["face_found"],
                }
                for c in measured["clips"]
            ],
        }
        faced = measured["reference_face_found"] and not any(not c["face_found"] for c in unlike)
        if unlike:
            names = ", ".join(_name((c["scene"], c["language"])) for c in unlike)
            message = (
                f"character {character!r}: {names} unlike the reference photo (lowest {clip} "
                f"{lowest['similarity_to_reference']:.2f} < {min_similarity:.2f}, min_character_consistency)"
            )
            if not faced:
                message += "; no face found in the photo or a clip: whole pictures compared, a warning"
            checks.append(CheckResult("character_vs_reference", "fail" if faced else "warn", metrics, message))
        else:
            message = (
                f"character {character!r} like its reference photo in {len(measured['clips'])} clip(s): "
                f"lowest {clip} {lowest['similarity_to_reference']:.2f} >= {min_similarity:.2f}"
            )
            checks.append(CheckResult("character_vs_reference", "pass", metrics, message))
    return checks
