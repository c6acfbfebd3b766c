"""What the network is conditioned on: text token ids and reference media tensors.

Text is tokenised into hashed words, not a downloaded vocabulary: a word's id is a stable hash of its
lower-cased form, so every language works, nothing is fetched, and a small encoder can learn the words
that matter for its training world. A few ids are reserved for structure: padding, the start token that
every sequence has (so an empty prompt is still a valid, attendable context), segment markers for
dialogue and sound cues, and the time of a sound cue in half-second buckets.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

PAD_ID = 0
BOS_ID = 1  # always present: the unconditional context is [BOS]
DIALOGUE_ID = 2  # precedes one line of dialogue: speaker words, then the line
SOUND_ID = 3  # precedes one sound cue: its time token, then its description
TIME_BUCKET_S = 0.5
NUM_TIME_TOKENS = 64  # cue times 0 .. 31.5 s; later times share the last bucket
FIRST_TIME_ID = 4
NUM_RESERVED_TOKENS = FIRST_TIME_ID + NUM_TIME_TOKENS

REFERENCE_KINDS = ("image", "video", "audio")
REFERENCE_ROLES = ("character", "motion", "music", "voice", "style", "product", "background")

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def word_id(word: str, vocab_size: int) -> int:
    """A stable hashed-word id (Python's `hash` is salted per process, so blake2b)."""
    digest = hashlib.blake2b(word.lower().encode("utf-8"), digest_size=8).digest()
    return NUM_RESERVED_TOKENS + int.from_bytes(digest, "little") % (vocab_size - NUM_RESERVED_TOKENS)


def word_ids(text: str, vocab_size: int) -> list[int]:
    return [word_id(word, vocab_size) for word in _WORD.findall(text)]


def time_id(seconds: float) -> int:
    bucket = min(max(int(seconds / TIME_BUCKET_S), 0), NUM_TIME_TOKENS - 1)
    return FIRST_TIME_ID + bucket


def scene_token_ids(
    prompt: str,
    *,
    vocab_size: int,
    max_tokens: int,
    language: str = "",
    dialogue: Iterable[tuple[str, str]] = (),
    sound_cues: Iterable[tuple[float, str]] = (),
) -> list[int]:
    """[BOS] <lang> prompt, then [DIALOGUE] speaker line ..., then [SOUND] <time> cue ...

    Truncated at `max_tokens`: the prompt comes first because it describes the whole scene.
    """
    ids = [BOS_ID]
    if language:
        ids.append(word_id(f"<lang:{language}>", vocab_size))
    ids += word_ids(prompt, vocab_size)
    for speaker, line in dialogue:
        ids += [DIALOGUE_ID, *word_ids(speaker, vocab_size), *word_ids(line, vocab_size)]
    for seconds, description in sound_cues:
        ids += [SOUND_ID, time_id(seconds), *word_ids(description, vocab_size)]
    return ids[:max_tokens]


def pad_token_ids(sequences: Sequence[Sequence[int]], length: int) -> Tensor:
    """(B, length) int64, right-padded with PAD_ID."""
    batch = torch.full((len(sequences), length), PAD_ID, dtype=torch.long)
    for row, ids in enumerate(sequences):
        if not ids or ids[0] != BOS_ID:
            raise ValueError("every token sequence starts with BOS_ID")
        ids = list(ids)[:length]
        batch[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return batch


def role_index(role: str) -> int:
    if role not in REFERENCE_ROLES:
        raise ValueError(f"unknown reference role {role!r}; expected one of {REFERENCE_ROLES}")
    return REFERENCE_ROLES.index(role)


@dataclass(frozen=True)
class ReferenceTokens:
    """Reference media prepared for the transformer, which patch-embeds them into context tokens.

    Any of the three kinds may be absent. Roles are indices into REFERENCE_ROLES.
    """

    images: Tensor | None = None  # (B, N_img, 3, S, S) in [-1, 1]: appearance (character, style)
    image_roles: Tensor | None = None  # (B, N_img) int64
    motion: Tensor | None = None  # (B, 3, F + 1, S, S) in [-1, 1]: F = config.reference_motion_frames
    audio: Tensor | None = None  # (B, n_mels, T_r) normalised log-mel (codecs.encode_audio)
    audio_roles: Tensor | None = None  # (B,) int64: voice or music

    def __post_init__(self) -> None:
        if (self.images is None) != (self.image_roles is None):
            raise ValueError("images and image_roles come together")
        if (self.audio is None) != (self.audio_roles is None):
            raise ValueError("audio and audio_roles come together")
        if self.images is not None and self.image_roles is not None:
            if self.images.ndim != 5 or self.image_roles.shape != self.images.shape[:2]:
                raise ValueError(f"images {tuple(self.images.shape)} / roles {tuple(self.image_roles.shape)}")
        if self.motion is not None and self.motion.ndim != 5:
            raise ValueError(f"motion must be (B, 3, F + 1, S, S), got {tuple(self.motion.shape)}")
        if self.audio is not None and self.audio.ndim != 3:
            raise ValueError(f"audio must be (B, n_mels, T), got {tuple(self.audio.shape)}")

    @property
    def is_empty(self) -> bool:
        return self.images is None and self.motion is None and self.audio is None
