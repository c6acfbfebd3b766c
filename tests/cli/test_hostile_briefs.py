# ruff: noqa: E501 - the corpora are tables, one case a line
"""Hostile and careless briefs, paths, URLs, S3 keys and text, as an attacker and a hurried user write them.

Every case asserts the same contract: a clean refusal (exit 2 from ``syncreel validate``, or a
ReferenceRejected from ingestion) that names the field or the reference; no Python traceback on the
terminal; nothing written to the asset store or the database for a refused reference; and a canary
file outside every root left unchanged and never echoed. The media corpus (playlists, concat lists,
image sequences, text files posing as media) is in test_hostile_media.py; the fuzz test of the loader
and validator is at the end of this file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from syncreel.cli import app
from syncreel.schemas.brief import BriefError, Reference, parse_document, validate_brief
from syncreel.schemas.settings import Settings, get_settings
from syncreel.tasks.ingest import ReferenceRejected, _ingest
from tests.fixtures.ingest import store_is_empty
from tests.fixtures.synth import synth_media

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "briefs" / "lumen-fizz.yaml"
SECRET = "CANARY-7f3a9c-do-not-echo"


# --- the canary: a file outside every root, checked unchanged and never echoed ------------------------


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("outside-every-root")
    path = folder / "canary.txt"
    path.write_text(f"{SECRET}\npassword=hunter2\n")
    digest, mtime = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns
    yield path
    assert path.is_file(), "the canary file was removed"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, "the canary file was changed"
    assert path.stat().st_mtime_ns == mtime, "the canary file was written"


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def set_path(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


runner = CliRunner()


def validate_cli(folder: Path, document: str, name: str = "brief.yaml") -> tuple[int, str]:
    brief = folder / name
    brief.write_text(document)
    result = runner.invoke(app, ["validate", str(brief)])
    return result.exit_code, result.output


def assert_clean(output: str, canary: Path) -> None:
    assert "Traceback" not in output and "Error:" not in output.split("\n")[0][:7], output
    assert SECRET not in output and "hunter2" not in output
    assert canary.read_text().startswith(SECRET)


# --- briefs: every wrong value is exit 2 naming its field ----------------------------------------------

INJECTION = "yuv420p,drawtext=text=x:textfile={canary},split"
BRIEF_CASES: list[tuple[str, Callable[[dict, Path], Any], str]] = [
    # finding 1: values that reach ffmpeg are closed sets
    (
        "pix_fmt filter injection",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"pix_fmt": INJECTION.format(canary=c)}}),
        "platform_overrides.tiktok.pix_fmt",
    ),
    (
        "pix_fmt writes a file",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"pix_fmt": f"yuv420p[o];[o]fifo,tee={c}"}}),
        "platform_overrides.tiktok.pix_fmt",
    ),
    (
        "pix_fmt unknown",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"pix_fmt": "yuv444p"}}),
        "platform_overrides.tiktok.pix_fmt",
    ),
    (
        "codec option injection",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"video_codec": "h264 -y /tmp/x"}}),
        "platform_overrides.tiktok.video_codec",
    ),
    (
        "audio codec",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"audio_codec": "aac,-f,null"}}),
        "platform_overrides.tiktok.audio_codec",
    ),
    (
        "profile injection",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"h264_profile": "high -vf drawtext"}}),
        "platform_overrides.tiktok.h264_profile",
    ),
    (
        "level injection",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"h264_level": "4.2 -i /etc/passwd"}}),
        "platform_overrides.tiktok.h264_level",
    ),
    (
        "level unknown",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"h264_level": "9"}}),
        "platform_overrides.tiktok.h264_level",
    ),
    (
        "width as filter text",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"width": "1080,drawtext=x"}}),
        "platform_overrides.tiktok.width",
    ),
    (
        "fps as filter text",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"fps": "30:x=1"}}),
        "platform_overrides.tiktok.fps",
    ),
    (
        "loudness as text",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"loudness_lufs": "-14:print_format=json"}}),
        "platform_overrides.tiktok.loudness_lufs",
    ),
    (
        "crf out of range",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"crf": 99}}),
        "platform_overrides.tiktok.crf",
    ),
    (
        "label with newline",
        lambda d, c: set_path(d, ("platform_overrides",), {"newbie": {"width": 640, "height": 360, "label": "a\nb"}}),
        "platform_overrides.newbie.label",
    ),
    (
        "platform name as path",
        lambda d, c: set_path(d, ("platform_overrides",), {"../../x": {"width": 640, "height": 360}}),
        "platform_overrides",
    ),
    (
        "unknown platform field",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": {"extra_args": "-f lavfi"}}),
        "platform_overrides.tiktok.extra_args",
    ),
    # finding 2: a brief cannot choose its own root
    ("base_uri to a system folder", lambda d, c: set_path(d, ("base_uri",), "/etc"), "base_uri"),
    ("base_uri to the canary folder", lambda d, c: set_path(d, ("base_uri",), str(c.parent)), "base_uri"),
    ("base_uri as s3", lambda d, c: set_path(d, ("base_uri",), "s3://other-bucket/secrets"), "base_uri"),
    # finding 4: lists and mappings where strings are expected
    ("platforms nested list", lambda d, c: set_path(d, ("platforms",), [["tiktok"]]), "platforms[0]"),
    (
        "scene reference as list",
        lambda d, c: set_path(d, ("scenes", 0, "references"), [["can"]]),
        "scenes[0].references[0]",
    ),
    ("reference id as list", lambda d, c: set_path(d, ("references", 0, "id"), ["presenter"]), "references[0].id"),
    (
        "music reference as mapping",
        lambda d, c: set_path(d, ("music", "reference"), {"id": "theme"}),
        "music.reference",
    ),
    ("languages as mapping", lambda d, c: set_path(d, ("languages",), {"en": True}), "languages"),
    ("language as list", lambda d, c: set_path(d, ("languages",), [["en"], "es"]), "languages[0]"),
    ("reference kind as list", lambda d, c: set_path(d, ("references", 0, "kind"), ["image"]), "references[0].kind"),
    ("reference role as mapping", lambda d, c: set_path(d, ("references", 0, "role"), {"a": 1}), "references[0].role"),
    ("scene id as number", lambda d, c: set_path(d, ("scenes", 0, "id"), 7), "scenes[0].id"),
    (
        "dialogue text as list",
        lambda d, c: set_path(d, ("scenes", 1, "dialogue", 0, "text"), ["hello"]),
        "scenes[1].dialogue[0].text",
    ),
    (
        "dialogue text value as mapping",
        lambda d, c: set_path(d, ("scenes", 1, "dialogue", 0, "text", "en"), {"x": 1}),
        "scenes[1].dialogue[0].text.en",
    ),
    (
        "platform override as list",
        lambda d, c: set_path(d, ("platform_overrides",), {"tiktok": ["width", 1]}),
        "platform_overrides.tiktok",
    ),
    ("scenes as mapping", lambda d, c: set_path(d, ("scenes",), {"open": {}}), "scenes"),
    ("references as string", lambda d, c: set_path(d, ("references",), "presenter"), "references"),
    ("duration as text", lambda d, c: set_path(d, ("scenes", 0, "duration_s"), "4 seconds"), "scenes[0].duration_s"),
    ("duration infinite", lambda d, c: set_path(d, ("scenes", 0, "duration_s"), float("inf")), "scenes[0].duration_s"),
    ("duration NaN", lambda d, c: set_path(d, ("scenes", 0, "duration_s"), float("nan")), "scenes[0].duration_s"),
    (
        "start_s negative",
        lambda d, c: set_path(d, ("scenes", 1, "dialogue", 0, "start_s"), -1),
        "scenes[1].dialogue[0].start_s",
    ),
    ("seed huge", lambda d, c: set_path(d, ("scenes", 0, "seed"), 2**80), "scenes[0].seed"),
    ("master width odd", lambda d, c: set_path(d, ("master", "width"), 641), "master.width"),
    ("master huge", lambda d, c: set_path(d, ("master", "width"), 100_000), "master.width"),
    ("steps huge", lambda d, c: set_path(d, ("generation", "steps"), 10**9), "generation.steps"),
    ("music null mapping value", lambda d, c: set_path(d, ("music",), ["theme"]), "music"),
    ("brand as string", lambda d, c: set_path(d, ("brand",), "Lumen"), "brand"),
    ("colour as filter", lambda d, c: set_path(d, ("brand", "colours"), ["#9BE564:drawbox"]), "brand.colours"),
    ("unknown top-level field", lambda d, c: set_path(d, ("ffmpeg_args",), ["-f", "lavfi"]), "ffmpeg_args"),
    ("duplicate scene ids", lambda d, c: set_path(d, ("scenes", 1, "id"), "open"), "scenes[1].id"),
    # finding 7: URIs the file system cannot hold are refused by name
    (
        "URI with NUL",
        lambda d, c: set_path(d, ("references", 0, "uri"), "assets/presenter.png\x00.txt"),
        "references[0].uri",
    ),
    ("URI of 5000 characters", lambda d, c: set_path(d, ("references", 0, "uri"), "a/" * 2500), "references[0].uri"),
    (
        "URI with newline",
        lambda d, c: set_path(d, ("references", 0, "uri"), "assets/x.png\nrm -rf /"),
        "references[0].uri",
    ),
    (
        "URI with escape sequence",
        lambda d, c: set_path(d, ("references", 0, "uri"), "\x1b]0;pwned\x07x.png"),
        "references[0].uri",
    ),
    ("empty URI", lambda d, c: set_path(d, ("references", 0, "uri"), ""), "references[0].uri"),
    # finding 10: a line that cannot be spoken in its scene
    (
        "10,000-character line",
        lambda d, c: set_path(d, ("scenes", 1, "dialogue", 0, "text", "en"), "word " * 2000),
        "scenes[1].dialogue[0].text.en",
    ),
    (
        "line too long for the scene",
        lambda d, c: set_path(d, ("scenes", 2, "dialogue", 0, "text", "es"), "Abre la luz, " * 6),
        "scenes[2].dialogue[0].text.es",
    ),
    (
        "line starting too late",
        lambda d, c: set_path(d, ("scenes", 1, "dialogue", 0, "start_s"), 4.5),
        "scenes[1].dialogue[0].text.en",
    ),
]


@pytest.mark.parametrize("mutate, field", [(m, f) for _, m, f in BRIEF_CASES], ids=[n for n, _, _ in BRIEF_CASES])
def test_hostile_brief_is_refused_naming_the_field(mutate, field: str, tmp_path: Path, canary: Path) -> None:
    data = mutate(example(), canary)
    code, output = validate_cli(tmp_path, json.dumps(data, allow_nan=True), "brief.json")
    assert code == 2, output
    assert f"  {field}" in output or f"  {field}[" in output or f"  {field}." in output, output
    assert_clean(output, canary)


# --- text from the brief is shown as written (finding 5) -----------------------------------------------

TEXT_CASES = [
    ("campaign_id", "[/]"),
    ("campaign_id", "[out]x"),
    ("campaign_id", "a:x:b"),
    ("campaign_id", "[bold red]loud[/bold red]"),
    ("campaign_id", "\\"),
    ("platforms", "[link=file:///etc/passwd]x[/link]"),
    ("languages", ":thumbs_up: [/]"),
    ("platforms", "x\\[/]"),
]


@pytest.mark.parametrize("field, text", TEXT_CASES)
def test_brief_text_is_printed_as_written(field: str, text: str, tmp_path: Path, canary: Path) -> None:
    data = example()
    data[field] = [text] if field in ("platforms", "languages") else text
    code, output = validate_cli(tmp_path, json.dumps(data), "brief.json")
    assert code == 2, output
    assert repr(text) in output, output  # quoted exactly: no markup applied, no emoji, nothing dropped
    assert_clean(output, canary)


# --- documents refused quickly and cheaply (finding 6) -------------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    lines = ['lol: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 10) + "]")
    lines.append(f"campaign_id: *a{levels}")
    return "\n".join(lines) + "\n"


DOCUMENT_CASES = [
    ("billion laughs", lambda: billion_laughs(), "aliases included"),
    (
        "quadratic blowup",
        lambda: "a: &a [" + ",".join(["x"] * 300) + "]\nb: [" + ",".join(["*a"] * 199) + "]\n",
        "aliases included",
    ),
    ("many aliases", lambda: "a: &a x\nb: [" + ",".join(["*a"] * 500) + "]\n", "aliases"),
    ("deep flow nesting", lambda: "a: " + "[" * 5000 + "]" * 5000 + "\n", "nest"),  # libyaml's own stop, or ours
    (
        "deep block nesting",
        lambda: "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
        "nested deeper",
    ),
    ("deep JSON nesting", lambda: "[" * 100_000 + "]" * 100_000, "nested deeper"),
    ("a 3 MB brief", lambda: "campaign_id: x\n" + "# padding\n" * 300_000, "larger than"),
    ("not a mapping", lambda: "- just\n- a list\n", "a brief is a mapping"),
    (
        "python object tag",
        lambda: "campaign_id: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
        "not valid YAML",
    ),
    ("binary garbage", lambda: "\x00\x01\x02campaign", "not valid YAML"),
    ("unhashable key", lambda: "? [a, b]\n: 1\n", "not valid YAML"),
]


@pytest.mark.parametrize("make, message", [(m, t) for _, m, t in DOCUMENT_CASES], ids=[n for n, _, _ in DOCUMENT_CASES])
def test_hostile_document_is_refused_before_it_costs(make, message: str, tmp_path: Path, canary: Path) -> None:
    document = make()
    name = "brief.json" if document.startswith("[[") else "brief.yaml"
    code, output = validate_cli(tmp_path, document, name)
    assert code == 2, output
    assert message in output, output
    assert_clean(output, canary)
    assert not Path("/tmp/pwned").exists()


def test_validate_refuses_a_50_mb_brief_and_a_billion_laughs_as_a_process(tmp_path: Path) -> None:
    """The real command, in its own process: exit 2, one line per problem, no traceback (the time and
    memory it takes are measured by benchmarks/hostile_briefs.py)."""
    big = tmp_path / "big.yaml"
    with big.open("w") as handle:
        handle.write("campaign_id: x\nnotes: |\n")
        for _ in range(50 * 1024):
            handle.write("  " + "x" * 1021 + "\n")
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(billion_laughs())
    for path, message in ((big, "larger than 1,048,576 bytes"), (laughs, "aliases included")):
        done = subprocess.run(
            [sys.executable, "-m", "syncreel.cli", "validate", str(path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr + done.stdout


# --- references: paths, URLs and S3 keys refused by name, nothing stored --------------------------------


@pytest.fixture
def runtime(embedded_state: Path, monkeypatch: pytest.MonkeyPatch):
    from syncreel.tasks.stage import get_runtime

    monkeypatch.setenv("SYNCREEL_REFERENCE_DOWNLOAD_TIMEOUT_S", "3")
    get_settings.cache_clear()
    return get_runtime()


def reference_cases(folder: Path, canary: Path) -> list[tuple[str, str, str]]:
    """(case, uri, kind) — the folder holds a good picture, a symlink out and a secret in disguise."""
    return [
        ("dot-dot", "../outside-every-root/canary.txt", "image"),
        ("dot-dot deep", "assets/../../../../../../etc/passwd", "image"),
        ("absolute outside", str(canary), "image"),
        ("absolute system file", "/etc/passwd", "image"),
        ("proc environ", "/proc/self/environ", "image"),
        ("device file", "/dev/zero", "video"),
        ("file URI outside", canary.as_uri(), "image"),
        ("file URI with host", f"file://evil.example{canary}", "image"),
        ("file URI localhost outside", f"file://localhost{canary}", "image"),
        ("symlink escape", "escape.png", "image"),
        ("symlinked folder escape", "linked/canary.txt", "image"),
        ("secret in disguise", "secret.png", "image"),
        ("secret as video", "secret.mp4", "video"),
        ("secret as audio", "secret.wav", "audio"),
        ("the folder itself", ".", "image"),
        ("a folder", "sub", "image"),
        ("missing file", "nope.png", "image"),
        ("name too long", "x" * 300 + ".png", "image"),
        ("path too long", "/".join(["y" * 200] * 10) + ".png", "image"),
        ("fifo in the folder", "fifo.png", "image"),
        ("http URL", "http://example.com/a.png", "image"),
        ("ftp URL", "ftp://example.com/a.png", "image"),
        ("gopher URL", "gopher://127.0.0.1:6379/_FLUSHALL", "image"),
        ("data URL", "data:image/png;base64,iVBORw0KGgo=", "image"),
        ("javascript URL", "javascript:alert(1)", "image"),
        ("ffmpeg concat protocol", f"concat:{canary}|{canary}", "image"),
        ("ffmpeg subfile protocol", f"subfile:,start,0,end,100,:{canary}", "image"),
        ("ffmpeg tee protocol", f"tee:{canary}", "video"),
        ("https with credentials", "https://user:pass@example.com/a.png", "image"),
        ("https to loopback", "https://127.0.0.1:1/a.png", "image"),
        ("https to metadata address", "https://169.254.169.254/latest/meta-data/", "image"),
        ("https to IPv6 loopback", "https://[::1]/a.png", "image"),
        ("https to mapped loopback", "https://[::ffff:127.0.0.1]/a.png", "image"),
        ("https to decimal loopback", "https://2130706433/a.png", "image"),
        ("https bad port", "https://example.com:99999/a.png", "image"),
    ]


@pytest.fixture
def hostile_folder(embedded_state: Path, canary: Path) -> Path:
    folder = embedded_state / "brief"
    folder.mkdir()
    synth_media(folder / "good.png", size=(32, 32))
    (folder / "escape.png").symlink_to(canary)
    (folder / "linked").symlink_to(canary.parent, target_is_directory=True)
    for name in ("secret.png", "secret.mp4", "secret.wav"):
        (folder / name).write_text(canary.read_text() * 20)
    (folder / "sub").mkdir()
    os.mkfifo(folder / "fifo.png")
    return folder


def test_hostile_references_are_refused_by_name_and_nothing_is_stored(
    runtime, hostile_folder: Path, canary: Path
) -> None:
    cases = reference_cases(hostile_folder, canary)
    assert len(cases) >= 35
    roles = {"image": "character", "video": "motion", "audio": "voice"}
    for index, (case, uri, kind) in enumerate(cases):
        ref = Reference(id=f"ref-{index}", kind=kind, role=roles[kind], uri=uri)
        with pytest.raises(ReferenceRejected) as caught:
            _ingest(runtime, ref, str(hostile_folder))
        message = str(caught.value)
        assert message.startswith(f"reference 'ref-{index}' ("), (case, message)
        assert SECRET not in message and "hunter2" not in message and "root:" not in message, (case, message)
    assert store_is_empty(runtime)


def test_a_deployment_runs_brief_folder_is_not_a_root(runtime, hostile_folder: Path) -> None:
    """A brief that came through the API chose its own base_uri: only the operator's roots are read."""
    ref = Reference(id="hero", kind="image", role="character", uri="good.png")
    with pytest.raises(
        ReferenceRejected, match=r"'hero' \(good\.png\):.*outside the folders.*SYNCREEL_REFERENCE_ROOTS"
    ):
        _ingest(runtime, ref, str(hostile_folder), base_is_root=False)
    assert store_is_empty(runtime)
    operator = dataclasses.replace(runtime, settings=Settings(reference_roots=(hostile_folder,)))
    assert _ingest(operator, ref, str(hostile_folder), base_is_root=False).kind == "image"


def test_s3_keys_cannot_leave_the_briefs_prefix(runtime, s3_endpoint: str, canary: Path) -> None:
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="hostile-briefs")  # the S3 server is the session's: a bucket of its own
    s3.put_object(Bucket="hostile-briefs", Key="team-a/secret.png", Body=canary.read_bytes())
    cases = [
        ("up", "../team-a/secret.png", "'..' is refused"),
        ("missing", "nope.png", "cannot download"),
        ("secret", "secret.png", "text file"),
        ("bucket", "s3://no-such-bucket/a.png", "cannot download"),
    ]
    for ref_id, uri, message in cases:
        ref = Reference(id=ref_id, kind="image", role="character", uri=uri)
        with pytest.raises(ReferenceRejected, match=message) as caught:
            _ingest(runtime, ref, "s3://hostile-briefs/team-a")
        assert str(caught.value).startswith(f"reference '{ref_id}' (") and SECRET not in str(caught.value)
    assert store_is_empty(runtime)


# --- a run with a rejected reference: one line, the traceback in the log (finding 8) -------------------


@pytest.mark.slow
def test_run_with_a_rejected_reference_prints_one_line_and_logs_the_traceback(tmp_path: Path, canary: Path) -> None:
    data = example()
    data["references"][0]["uri"] = "escape.png"
    (tmp_path / "escape.png").symlink_to(canary)
    for ref in data["references"][1:]:
        (tmp_path / "assets").mkdir(exist_ok=True)
        (tmp_path / ref["uri"]).write_bytes((EXAMPLE.parent / ref["uri"]).read_bytes())
    (tmp_path / "brief.yaml").write_text(yaml.safe_dump(data))
    env = {
        **os.environ,
        "SYNCREEL_DATABASE_URL": f"sqlite:///{tmp_path}/state.db",
        "SYNCREEL_STORAGE_URL": f"file://{tmp_path}/store",
        "SYNCREEL_WORK_DIR": str(tmp_path / "work"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "syncreel.cli", "run", "brief.yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    terminal = done.stdout + done.stderr
    assert done.returncode == 1, terminal
    assert "Traceback" not in terminal and SECRET not in terminal
    problems = [line for line in terminal.splitlines() if "reference 'presenter'" in line]
    assert len(problems) == 1 and "outside the folders" in problems[0], terminal
    log = (tmp_path / "work" / "syncreel.log").read_text()
    assert "Traceback" in log and "ReferenceRejected" in log
    assert not any(p.is_file() for p in (tmp_path / "store").rglob("*presenter*"))


# --- the fuzz test: no input ends in anything but a clean accept or a clean refusal ---------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["tiktok", "en", "presenter", "can", "[/]", "a:x:b", "../x", "\x00", "image", "music", "-1"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


EXAMPLE_PATHS = _paths(example())


def _accepts_or_refuses(data: Any) -> None:
    try:
        validate_brief(data, "fuzz.yaml", base_uri="/nonexistent")
    except BriefError as exc:
        assert exc.issues and all(issue.loc and issue.message for issue in exc.issues)


@seed(20261204)
@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(EXAMPLE_PATHS), _values), min_size=1, max_size=4))
def test_fuzz_brief_mutations_are_accepted_or_refused_cleanly(mutations: list[tuple[tuple, Any]]) -> None:
    data = example()
    for path, value in mutations:
        try:
            set_path(data, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced a parent of this path
    _accepts_or_refuses(data)


@seed(20261204)
@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=300), st.booleans())
def test_fuzz_documents_parse_cleanly_or_refuse(text: str, as_json: bool) -> None:
    try:
        data = parse_document(text, "fuzz", as_json=as_json)
    except BriefError as exc:
        assert exc.issues[0].loc and exc.issues[0].message
        return
    _accepts_or_refuses(data)


def test_an_unexpected_failure_is_one_line_with_the_traceback_in_the_log(tmp_path: Path) -> None:
    env = {**os.environ, "SYNCREEL_DATABASE_URL": "bogus://nowhere", "SYNCREEL_WORK_DIR": str(tmp_path / "work")}
    done = subprocess.run(
        [sys.executable, "-m", "syncreel.cli", "runs"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: internal error (NoSuchModuleError); the traceback is in {tmp_path / 'work' / 'syncreel.log'}"
    ]
    assert "Traceback" in (tmp_path / "work" / "syncreel.log").read_text()


def test_an_inbox_run_cannot_point_outside_the_operators_inbox(tmp_path: Path, monkeypatch, canary: Path) -> None:
    """The inbox moves the files it handles: a run's parameters (editable in the UI) cannot aim it elsewhere."""
    from syncreel.flows.inbox import InboxRefused, InboxRequest, campaign_inbox, within_inbox

    inbox = tmp_path / "inbox"
    (inbox / "team-a").mkdir(parents=True)
    monkeypatch.setenv("SYNCREEL_INBOX_URL", f"file://{inbox}")
    get_settings.cache_clear()
    (canary.parent / "victim.yaml").write_text("campaign_id: x\n")
    for outside in (f"file://{canary.parent}", str(canary.parent), f"file://{inbox}/../elsewhere", "s3://b/inbox"):
        with pytest.raises(InboxRefused, match="outside SYNCREEL_INBOX_URL"):
            campaign_inbox.fn(InboxRequest(inbox=outside))
    assert (canary.parent / "victim.yaml").is_file() and not (canary.parent / "rejected").exists()
    assert within_inbox(f"file://{inbox}/team-a", f"file://{inbox}")
    assert within_inbox("s3://b/inbox/team-a", "s3://b/inbox") and not within_inbox("s3://b/inboxes", "s3://b/inbox")
    assert not within_inbox("s3://b/inbox/../x", "s3://b/inbox") and not within_inbox("s3://c/inbox", "s3://b/inbox")
    get_settings.cache_clear()
