"""The HTML QA report of a run: one self-contained page (pictures inline, plots as SVG) built from the
database and the asset store alone, so any process can make it for any run (`syncreel report RUN`);
`publish` stores it beside the manifest.

For every reference the brief gave: what its analysis found (the ``reference_assets`` row the run's
manifest points at: tempo, beats and downbeats; speech segments; shots and motion energy; face box and
dominant colours) with a still or a plot; for every scene and attempt: a still, the seed, the gate's
decision and every check, the lip-sync correlation over the offsets searched with the allowed band, the
per-window offsets (drift), and the sound-effect events; for every character reference: how alike its
face looks across scenes and languages, clip by clip and pair by pair; for every deliverable: a still,
its loudness numbers, its crop path and its checks; the reviewer's and the producer's decisions.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from syncreel.media.analysis import describe
from syncreel.media.errors import MediaError
from syncreel.media.still import still_jpeg
from syncreel.schemas.brief import AUDIO_EARLY_MS, AUDIO_LATE_MS
from syncreel.schemas.records import worst
from syncreel.store.assets import AssetStoreError, manifest_key, report_key
from syncreel.store.report import Attempt, Check, DeliverableReport, RunReport, reference_analysis, run_report
from syncreel.tasks.stage import Runtime

# A picture of a stored clip or image, as an <img> (or a note saying why there is none).
Still = Callable[[str | None], str]

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d1d1f;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 8px;vertical-align:top;text-align:left}
.pass,.succeeded{color:#137333}.warn,.needs_review,.regenerate{color:#b06000}.fail,.failed{color:#c5221f}
.card{display:flex;gap:16px;align-items:flex-start;margin:10px 0 18px}
.card img{border:1px solid #ccc;max-width:320px}svg{background:#fafafa;border:1px solid #ddd}
.muted{color:#666}.swatch{display:inline-block;width:28px;height:16px;border:1px solid #999;margin-right:4px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _verdict(value: str | None) -> str:
    return f'<b class="{_e(value)}">{_e(value)}</b>' if value else ""


def _still(rt: Runtime, uri: str | None) -> str:
    if not uri:
        return '<span class="muted">(no picture)</span>'
    try:
        jpeg = still_jpeg(rt.store.fetch(uri))
    except (MediaError, AssetStoreError) as exc:
        return f'<span class="muted">(no still: {_e(exc)})</span>'
    return f'<img alt="still" src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}">'


def _polyline(xs: list[float], ys: list[float], box: tuple[float, float, float, float], size=(360, 140)) -> str:
    x0, x1, y0, y1 = box
    w, h = size
    points = " ".join(
        f"{(x - x0) / (x1 - x0 or 1) * w:.1f},{h - (y - y0) / (y1 - y0 or 1) * h:.1f}"
        for x, y in zip(xs, ys, strict=False)
    )
    return f'<polyline fill="none" stroke="#1a73e8" stroke-width="1.5" points="{points}"/>'


def correlation_plot(metrics: dict[str, Any], early_ms: float, late_ms: float, title: str) -> str:
    """Correlation against offset (positive = audio late), the allowed band shaded, the peak marked."""
    pairs = [
        (lag, c)
        for lag, c in zip(metrics.get("lags_ms") or [], metrics.get("correlation") or [], strict=False)
        if lag is not None and c is not None  # not measurable at that lag (stored as null)
    ]
    if len(pairs) < 2:
        return ""
    lags, corr = [p[0] for p in pairs], [p[1] for p in pairs]
    w, h = 360, 140
    lo, hi = min(lags), max(lags)
    c0, c1 = min(min(corr), 0.0), max(max(corr), 0.1)
    band_x0 = (max(-early_ms, lo) - lo) / (hi - lo) * w
    band_x1 = (min(late_ms, hi) - lo) / (hi - lo) * w
    parts = [
        f'<svg width="{w}" height="{h + 18}" role="img"><title>{_e(title)}</title>',
        f'<rect x="{band_x0:.1f}" y="0" width="{band_x1 - band_x0:.1f}" height="{h}" fill="#e6f4ea"/>',
        _polyline(lags, corr, (lo, hi, c0, c1)),
    ]
    if metrics.get("offset_ms") is not None:
        x = (metrics["offset_ms"] - lo) / (hi - lo) * w
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{h}" stroke="#c5221f" stroke-dasharray="3"/>')
    parts.append(
        f'<text x="2" y="{h + 14}" font-size="11">{lo:+.0f} ms</text>'
        f'<text x="{w / 2 - 40:.0f}" y="{h + 14}" font-size="11">{_e(title)}</text>'
        f'<text x="{w - 50}" y="{h + 14}" font-size="11">{hi:+.0f} ms</text></svg>'
    )
    return "".join(parts)


def windows_plot(windows: list[dict[str, Any]], early_ms: float, late_ms: float) -> str:
    """Offset per analysis window over the clip's time: a line that climbs is drift."""
    if len(windows) < 2:
        return ""
    w, h = 360, 140
    windows = [win for win in windows if win.get("offset_ms") is not None]
    if len(windows) < 2:
        return ""
    xs = [(win["start_s"] + win["end_s"]) / 2 for win in windows]
    ys = [win["offset_ms"] for win in windows]
    y0, y1 = min(min(ys), -early_ms) - 20, max(max(ys), late_ms) + 20
    band_top = h - (late_ms - y0) / (y1 - y0) * h
    band_bottom = h - (-early_ms - y0) / (y1 - y0) * h
    return (
        f'<svg width="{w}" height="{h + 18}" role="img"><title>offset per window</title>'
        f'<rect x="0" y="{band_top:.1f}" width="{w}" height="{band_bottom - band_top:.1f}" fill="#e6f4ea"/>'
        + _polyline(xs, ys, (min(xs), max(xs), y0, y1))
        + f'<text x="2" y="{h + 14}" font-size="11">offset per window, {min(xs):.1f}–{max(xs):.1f} s</text></svg>'
    )


def crop_plot(reframe: dict[str, Any]) -> str:
    """The crop window's centre across the frame over time, when the render recorded a crop path."""
    path = reframe.get("path") or reframe.get("crop_path") or []
    if not isinstance(path, list) or len(path) < 2 or not isinstance(path[0], dict):
        return ""
    source_w = reframe.get("source_width") or max(p.get("x", 0) + p.get("w", 0) for p in path) or 1
    times = [p.get("t", i) for i, p in enumerate(path)]
    centres = [p.get("x", 0) + p.get("w", 0) / 2 for p in path]
    return (
        '<svg width="360" height="158" role="img"><title>crop path</title>'
        + _polyline(times, centres, (min(times), max(times) or 1, 0, source_w))
        + f'<text x="2" y="154" font-size="11">crop centre x (0…{source_w} px) over time</text></svg>'
    )


def _checks_table(rows: tuple[Check, ...]) -> str:
    body = "".join(
        f"<tr><td>{_verdict(r.verdict)}</td><td>{_e(r.check)}</td><td>{_e(r.message)}</td></tr>" for r in rows
    )
    return f"<table><tr><th>verdict</th><th>check</th><th>message</th></tr>{body}</table>"


def _sync_plots(rows: tuple[Check, ...], early_ms: float, late_ms: float) -> str:
    out = []
    for row in rows:
        if row.check == "lipsync":
            out += [
                correlation_plot(row.metrics, early_ms, late_ms, "lip-sync correlation"),
                windows_plot(row.metrics.get("windows") or [], early_ms, late_ms),
            ]
        elif row.check == "sfx_sync":
            out.append(correlation_plot(row.metrics, early_ms, late_ms, "effects correlation"))
            events = row.metrics.get("events") or []
            if events:
                cells = "".join(
                    f"<tr><td>{e['visual_s']:.2f}</td><td>{_e(e['onset_s'])}</td><td>{_e(e['offset_ms'])}</td></tr>"
                    for e in events
                )
                out.append(f"<table><tr><th>event s</th><th>sound s</th><th>offset ms</th></tr>{cells}</table>")
    return "".join(part for part in out if part)


def _run_references(rt: Runtime, run_id: str, briefed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The brief's references as this run ingested them: the manifest (in the store) names each upload
    by content, and its ``reference_assets`` row holds the analysis and the normalized asset. A run that
    has not published yet lists the brief's references without analyses."""
    ingested: dict[str, dict[str, Any]] = {}
    uri = rt.store.uri_for(manifest_key(run_id))
    try:
        if rt.store.exists(uri):
            ingested = {r["id"]: r for r in json.loads(rt.store.fetch(uri).read_text()).get("references", [])}
    except (AssetStoreError, ValueError):
        ingested = {}
    out = []
    with rt.session() as session:
        for ref in briefed:
            entry = {**ref, "analysis": None, "asset_uri": None}
            found = ingested.get(ref["id"])
            if found:
                row = reference_analysis(session, found["source_sha256"], found["kind"], found["role"])
                entry["analysis"], entry["asset_uri"] = row or (found["analysis"], found["uri"])
            out.append(entry)
    return out


def beats_plot(music: dict[str, Any], width: int = 360, height: int = 36) -> str:
    """The beat grid as ticks over the track's length, downbeats taller."""
    duration = music.get("duration_s") or max([*music.get("beats_s", []), 1.0])
    downbeats = {round(t, 3) for t in music.get("downbeats_s", [])}
    ticks = "".join(
        f'<line x1="{t / duration * width:.1f}" x2="{t / duration * width:.1f}" '
        f'y1="{0 if round(t, 3) in downbeats else height / 2:.0f}" y2="{height}" stroke="#1a73e8"/>'
        for t in music.get("beats_s", [])
    )
    return (
        f'<svg width="{width}" height="{height + 16}" role="img"><title>beat grid</title>{ticks}'
        f'<text x="2" y="{height + 13}" font-size="11">beats over 0–{duration:.1f} s (downbeats tall)</text></svg>'
    )


def motion_plot(motion: dict[str, Any]) -> str:
    """Motion energy over the clip's time, with the shot boundaries marked."""
    times, energy = motion.get("frame_times_s") or [], motion.get("motion_energy") or []
    if len(times) < 2:
        return ""
    w, h = 360, 100
    top = max(max(energy), 1.0)
    cuts = "".join(
        f'<line x1="{(t - times[0]) / (times[-1] - times[0] or 1) * w:.1f}" '
        f'x2="{(t - times[0]) / (times[-1] - times[0] or 1) * w:.1f}" y1="0" y2="{h}" stroke="#c5221f" '
        'stroke-dasharray="3"/>'
        for t in motion.get("shot_boundaries_s") or []
    )
    return (
        f'<svg width="{w}" height="{h + 16}" role="img"><title>motion energy</title>{cuts}'
        + _polyline(times, energy, (times[0], times[-1], 0.0, top), (w, h))
        + f'<text x="2" y="{h + 13}" font-size="11">motion energy (0–{top:.0f}), cuts dashed</text></svg>'
    )


def _reference_section(still: Still, references: list[dict[str, Any]]) -> list[str]:
    if not references:
        return []
    return ["<h2>References</h2>", *(part for ref in references for part in _reference_card(still, ref))]


def _reference_card(still: Still, ref: dict[str, Any]) -> list[str]:
    """A reference: what it is, a still or a plot of it, and what its analysis found."""
    analysis = ref["analysis"]
    head = (
        f"<h3>{_e(ref['id'])} <span class='muted'>{_e(ref['kind'])} · {_e(ref['role'])} · {_e(ref['uri'])}</span></h3>"
    )
    if not analysis:
        return [head + "<p class='muted'>(not analysed in this run's record: its manifest is not published)</p>"]
    visual = still(ref["asset_uri"]) if ref["kind"] in ("image", "video") else ""
    if analysis.get("type") == "music":
        visual = beats_plot(analysis)
    elif analysis.get("type") == "motion":
        visual += motion_plot(analysis)
    swatches = "".join(
        f'<span class="swatch" title="{_e(c["hex"])} {c["share"] * 100:.0f}%" style="background:{_e(c["hex"])}"></span>'
        for c in analysis.get("dominant_colours") or []
    )
    lines = "".join(f"<li>{_e(line)}</li>" for line in describe(analysis))
    return [
        head,
        f"<div class='card'>{visual}<div>{_e(ref.get('description') or '')}"
        f"<ul>{lines or '<li>(no analysis for this role)</li>'}</ul>{swatches}</div></div>",
    ]


def _character_section(characters: dict[str, tuple[Check, ...]], threshold: Any) -> list[str]:
    if not characters:
        return []
    parts = [
        "<h2>Character consistency</h2>",
        f"<div class='muted'>face colour similarity (0..1) between the clips that show each character; "
        f"at least {_e(threshold)} (qa.min_character_consistency) between scenes and between languages</div>",
    ]
    for character, checks in characters.items():
        verdict = worst(c.verdict for c in checks)
        parts += [f"<h3>{_e(character)} {_verdict(verdict)}</h3>", _checks_table(checks)]
        parts += _character_clips(checks) + _character_pairs(checks)
    return parts


def _character_clips(checks: tuple[Check, ...]) -> list[str]:
    """Each clip's face against the reference photo."""
    clips = next((c.metrics.get("clips") for c in checks if c.check == "character_vs_reference"), None) or []
    if not clips:
        return []
    rows = "".join(
        f"<tr><td>{_e(c['clip'])}</td><td>{'yes' if c['face_found'] else 'no'}</td><td>{c['similarity']:.2f}</td></tr>"
        for c in clips
    )
    return [f"<table><tr><th>clip</th><th>face found</th><th>vs photo</th></tr>{rows}</table>"]


def _character_pairs(checks: tuple[Check, ...]) -> list[str]:
    """Every two clips' faces against each other, least alike first."""
    pairs = sorted(
        (p for c in checks if c.check != "character_vs_reference" for p in c.metrics.get("pairs") or []),
        key=lambda p: p["similarity"],
    )
    if not pairs:
        return []
    limit = next((c.metrics.get("threshold") for c in checks), None)
    rows = "".join(
        f"<tr><td>{_e(p['a'])}</td><td>{_e(p['b'])}</td>"
        f"<td class='{'fail' if limit is not None and p['similarity'] < limit else 'pass'}'>"
        f"{p['similarity']:.2f}</td></tr>"
        for p in pairs
    )
    return [f"<table><tr><th>clip</th><th>clip</th><th>similarity</th></tr>{rows}</table>"]


def _sync_band(brief: dict[str, Any]) -> tuple[float, float]:
    """How early and how late (ms) the brief lets the sound be."""
    qa = brief.get("qa", {})
    return float(qa.get("max_audio_early_ms", AUDIO_EARLY_MS)), float(qa.get("max_audio_late_ms", AUDIO_LATE_MS))


def _header(report: RunReport) -> list[str]:
    run, qa = report.run, report.brief.get("qa", {})
    early, late = _sync_band(report.brief)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>QA {_e(run['campaign_id'])} {_e(run['id'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{_e(run.get('campaign_title') or run['campaign_id'])}</h1>",
        f"<div>run <code>{_e(run['id'])}</code> · {_verdict(run['status'])} · attempt {_e(run['attempts'])} · "
        f"started {_e(run['started_at'])} · finished {_e(run['finished_at'])}</div>",
        f"<div class='muted'>sync allowed: audio up to {early:g} ms early, {late:g} ms late (ITU-R BT.1359); "
        f"{_e(qa.get('max_regenerations', 2))} regeneration(s) before review</div>",
    ]
    if run.get("error"):
        parts.append(f"<p class='fail'>{_e(run['error'])}</p>")
    return parts + [f"<h2>Review</h2><p>{_verdict(row.verdict)} {_e(row.message)}</p>" for row in report.reviews]


def _scene_card(still: Still, attempt: Attempt, early_ms: float, late_ms: float) -> list[str]:
    generation = attempt.generation
    return [
        f"<h3>{_e(attempt.scene_id)} / {_e(attempt.language)} — attempt {attempt.attempt} "
        f"{_verdict(attempt.decision)}</h3>",
        "<div class='card'>",
        still(attempt.master_uri),
        f"<div>seed {_e(generation.get('seed'))} · {_e(generation.get('backend'))} "
        f"{_e(generation.get('model_version'))} · {_e(round(generation.get('seconds') or 0, 1))} s"
        + "".join(f"<br>producer: {_verdict(a.verdict)} {_e(a.message)}" for a in attempt.approvals)
        + _checks_table(attempt.checks)
        + "</div></div>",
        f"<div class='card'>{_sync_plots(attempt.checks, early_ms, late_ms)}</div>",
    ]


def _deliverable_card(still: Still, d: DeliverableReport) -> list[str]:
    loud = next((c.metrics for c in d.checks if c.check == "loudness"), {})
    numbers = ", ".join(f"{k} {v}" for k, v in loud.items() if isinstance(v, int | float))
    return [
        f"<h3>{_e(d.language)} / {_e(d.platform)}</h3><div class='card'>",
        still(d.uri),
        f"<div>{_e(d.spec.get('width'))}×{_e(d.spec.get('height'))} · "
        f"{d.size_bytes / 1e6:.2f} MB<br>loudness: {_e(numbers or 'not measured')}"
        + _checks_table(d.checks)
        + crop_plot(d.reframe)
        + "</div></div>",
    ]


def render_report(report: RunReport, references: list[dict[str, Any]], still: Still) -> str:
    """The report's page: the run, its references, every scene attempt, each character, every deliverable."""
    early, late = _sync_band(report.brief)
    parts = _header(report) + _reference_section(still, references) + ["<h2>Scenes</h2>"]
    for attempt in report.attempts:
        parts += _scene_card(still, attempt, early, late)
    parts += _character_section(report.characters, report.brief.get("qa", {}).get("min_character_consistency", 0.5))
    if report.deliverables:
        parts.append("<h2>Deliverables</h2>")
    for deliverable in report.deliverables:
        parts += _deliverable_card(still, deliverable)
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(rt: Runtime, run_id: str | None = None, status: str | None = None) -> tuple[str, str]:
    """(run id, HTML) of a run (by id or prefix; the newest when None); ``status`` stands in for the
    recorded one (publish makes the report just before it records the final status)."""
    with rt.session() as session:
        report = run_report(session, run_id)
    if status:
        report = replace(report, run={**report.run, "status": status})
    references = _run_references(rt, report.run["id"], report.brief.get("references") or [])
    return report.run["id"], render_report(report, references, lambda uri: _still(rt, uri))


def store_report(rt: Runtime, run_id: str, status: str | None = None) -> str:
    """Build the run's report and put it in the store beside the manifest; returns its URI."""
    run_id, page = build_report(rt, run_id, status)
    return rt.store.put_text(page, report_key(run_id)).uri
