"""A training curve as a PNG, drawn with Pillow (no plotting library needed): loss per stage on a log axis."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from PIL import Image, ImageDraw

SERIES = (("codec", "loss", (120, 120, 120)), ("flow", "video", (30, 90, 200)), ("flow", "audio", (220, 110, 20)))


def plot_curves(log: Path, out: Path, *, title: str, width: int = 900, height: int = 420) -> None:
    """Plot the CSV written by model.train: x = step within the stage, y = loss (log scale)."""
    with Path(log).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    lines = []
    for stage, column, colour in SERIES:
        points = [(int(r["step"]), float(r[column])) for r in rows if r["stage"] == stage and r[column]]
        if points:
            lines.append((f"{stage} {column}", colour, points))
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 70, width - 20, 40, height - 50
    draw.text((left, 12), title, fill="black")
    draw.rectangle((left, top, right, bottom), outline="black")
    if not lines:
        draw.text((left + 10, top + 10), "no rows logged", fill="black")
        image.save(out)
        return
    values = [v for _, _, pts in lines for _, v in pts if v > 0]
    low, high = math.log10(min(values)), math.log10(max(values))
    high = high if high > low else low + 1
    steps_max = max(s for _, _, pts in lines for s, _ in pts)

    def xy(step: int, value: float) -> tuple[float, float]:
        x = left + (right - left) * step / max(1, steps_max)
        y = bottom - (bottom - top) * (math.log10(max(value, 10**low)) - low) / (high - low)
        return x, y

    for exponent in range(math.floor(low), math.ceil(high) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if 10**low <= value <= 10**high:
                _, y = xy(0, value)
                draw.line((left, y, right, y), fill=(225, 225, 225))
                draw.text((8, y - 6), f"{value:g}", fill="black")
    for fraction in (0, 0.25, 0.5, 0.75, 1.0):
        step = int(steps_max * fraction)
        x, _ = xy(step, 10**low)
        draw.text((x - 10, bottom + 6), str(step), fill="black")
    draw.text(((left + right) // 2 - 60, bottom + 24), "step (within its stage)", fill="black")
    for index, (label, colour, points) in enumerate(lines):
        draw.line([xy(s, v) for s, v in points], fill=colour, width=2)
        draw.text((right - 150, top + 8 + 16 * index), f"— {label}", fill=colour)
    image.save(out)
