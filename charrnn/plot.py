"""Small terminal line plots: loss curves and gradient norms, no plotting library."""
from __future__ import annotations

import math

MARKERS = "•x+o*"


def line_plot(
    series: dict[str, tuple[list[float], list[float]]],
    width: int = 60,
    height: int = 14,
    log_y: bool = False,
    x_label: str = "",
    y_label: str = "",
) -> str:
    """Render named (xs, ys) series on one character grid; returns the lines as text.

    Each series gets its own marker; a legend follows the x axis. With
    ``log_y`` the y axis is logarithmic (non-positive values are skipped).
    """
    pts = {name: [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y) and (y > 0 or not log_y)]
           for name, (xs, ys) in series.items()}
    allp = [p for ps in pts.values() for p in ps]
    if not allp:
        return "(nothing to plot)"
    tf = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    x0, x1 = min(p[0] for p in allp), max(p[0] for p in allp)
    y0, y1 = min(tf(p[1]) for p in allp), max(tf(p[1]) for p in allp)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    grid = [[" "] * width for _ in range(height)]
    for mark, ps in zip(MARKERS * 4, pts.values()):
        for x, y in ps:
            col = round((x - x0) / (x1 - x0) * (width - 1))
            row = height - 1 - round((tf(y) - y0) / (y1 - y0) * (height - 1))
            grid[row][col] = mark
    fmt = (lambda v: f"{10 ** v:.2e}") if log_y else (lambda v: f"{v:.3g}")
    labels = {0: fmt(y1), height // 2: fmt((y0 + y1) / 2), height - 1: fmt(y0)}
    pad = max(len(v) for v in labels.values())
    lines = [f"{y_label}" + (" (log scale)" if log_y else "")] if y_label else []
    for r in range(height):
        lines.append(f"{labels.get(r, ''):>{pad}} │" + "".join(grid[r]))
    lines.append(" " * pad + " └" + "─" * width)
    left, right = f"{x0:g}", f"{x1:g}"
    lines.append(" " * (pad + 2) + left + " " * max(1, width - len(left) - len(right)) + right)
    if x_label:
        lines.append(" " * (pad + 2) + x_label.center(width))
    legend = "   ".join(f"{m} {name}" for m, name in zip(MARKERS * 4, pts))
    lines.append(" " * (pad + 2) + legend)
    return "\n".join(lines)
