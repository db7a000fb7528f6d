"""Figures, drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot, no display, no global state):
a pair's interaction matrix and what the model makes of it, per-query wins and losses between two runs, and the
curves of a training run.

matplotlib is an optional dependency (the `viz` extra); every function here says so in its error when it is missing.
Figures are laid out in inches, top to bottom, so each panel keeps a readable size whatever the text lengths: long
documents wrap onto several rows of heatmap, every token still labelled.
"""

from __future__ import annotations

import importlib.util
import io
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurank.collections.textio import atomic_write
from neurank.explain.compare import QueryDelta
from neurank.explain.pair import PairExplanation

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = ("png", "svg", "pdf")

MAX_WIDTH = 15.0  # inches; a figure is as wide as its interaction matrix needs, within these bounds
MIN_WIDTH = 10.0
LEFT_PAD = 0.25  # inches left of the query-token labels
RIGHT = 0.9  # inches kept right of every heatmap, for its colour bar
CELL = 0.21  # least width of one document-token column of a full-width heatmap, inches (wider for short texts)
MAX_CELL = 0.4
ROW = 0.24  # height of one query-token row of a full-width heatmap, inches
SMALL_ROW = 0.15  # height of one query-token row of a small panel
TITLE = 0.34  # height of a panel title line
TOKEN_FONT = 7.5
MAX_SMALL_PANELS = 4  # strongest channels shown for a stage with many channels
UNKNOWN_COLOR = "#c0392b"  # tick labels of tokens outside the vocabulary
UNREAD_COLOR = "#9e9e9e"  # tick labels of tokens the model did not read (past a transformer's window)
SEQUENCE_FONT = 8.5  # what a transformer read, one line of word pieces


def require_matplotlib() -> None:
    """Raise an ImportError that says how to install matplotlib when it is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError("figures need matplotlib: pip install 'neurank[viz]'")


def _figure(width: float, height: float) -> Figure:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def figure_format(path: str | Path) -> str:
    """The format a figure path asks for, from its suffix ("png", "svg" or "pdf").

    Raises:
        ValueError: another suffix.
    """
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"{path}: unsupported figure format {Path(path).suffix!r}; use one of .png, .svg, .pdf")
    return fmt


def save_figure(figure: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write `figure` to `path` (PNG, SVG or PDF, from the suffix) through a temporary file renamed into place.

    Raises:
        ValueError: an unsupported suffix.
    """
    path = Path(path)
    fmt = figure_format(path)
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format=fmt, dpi=dpi, metadata=dict(_WRITER_MARK[fmt]))
    return path


# Who wrote a figure, in the field each format has for it, so that a rerun may replace its own figures
# (`is_neurank_figure`) and nothing else without --overwrite.
_WRITER_MARK = {"png": {"Software": "neurank"}, "svg": {"Creator": "neurank"}, "pdf": {"Creator": "neurank"}}
_WRITER_BYTES = {
    "png": b"tEXtSoftware\x00neurank",
    "svg": b"<dc:title>neurank</dc:title>",
    "pdf": b"/Creator (neurank)",
}


def is_neurank_figure(path: str | Path) -> bool:
    """Whether the file at `path` is a figure `save_figure` wrote (its writer field says neurank); False for any
    other file, an unknown suffix, or one that cannot be read."""
    path = Path(path)
    try:
        marker = _WRITER_BYTES[figure_format(path)]
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
            handle.seek(max(0, path.stat().st_size - (1 << 16)))
            tail = handle.read()
    except (OSError, ValueError, KeyError):
        return False
    return marker in head or marker in tail


def figure_bytes(figure: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """The figure encoded as PNG or SVG bytes (for embedding in HTML)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Layout: panels placed top to bottom, sizes in inches.


class _Column:
    """Collects (height, draw) rows and renders them onto one figure of fixed width, top to bottom.

    `left` is where heatmaps start (right of the query-token labels) and `cell` the width of a document-token column.
    """

    def __init__(self, width: float, left: float = LEFT_PAD, cell: float = CELL):
        self.width = width
        self.left = left
        self.cell = cell
        self.rows: list[tuple[float, Callable[[Figure, float], object]]] = []

    def add(self, height: float, draw: Callable[[Figure, float], object]) -> None:
        """`draw(figure, top)` places its axes below `top` (inches from the figure's bottom) within `height`; what it
        returns is ignored."""
        self.rows.append((height, draw))

    def render(self) -> Figure:
        total = sum(height for height, _ in self.rows) + 0.2
        figure = _figure(self.width, total)
        top = total - 0.1
        for height, draw in self.rows:
            draw(figure, top)
            top -= height
        return figure


def _axes(figure: Figure, left: float, bottom: float, width: float, height: float, label: str = "") -> Axes:
    """Axes at a rectangle given in inches."""
    fig_width, fig_height = figure.get_size_inches()
    return figure.add_axes((left / fig_width, bottom / fig_height, width / fig_width, height / fig_height), label=label)


def _label_width(labels: Sequence[str], font: float = TOKEN_FONT) -> float:
    """Inches taken by the longest label at `font` points (about 0.55 em per character)."""
    longest = max((len(label) for label in labels), default=1)
    return min(2.2, 0.12 + longest * font * 0.55 / 72)


def _heatmap_colors(values: np.ndarray, channel: str | None = None) -> dict[str, Any]:
    """imshow options: fixed ranges for cosine and exact match, diverging around 0 when values go negative."""
    if channel == "exact":
        return {"cmap": "Greys", "vmin": 0.0, "vmax": 1.0}
    if channel is not None and ("cosine" in channel or channel.startswith("q")):
        return {"cmap": "RdBu_r", "vmin": -1.0, "vmax": 1.0}
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if low < 0:
        bound = max(abs(low), abs(high)) or 1.0
        return {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}
    return {"cmap": "viridis", "vmin": 0.0, "vmax": high if high > 0 else 1.0}


def _color_unknown(labels, unknown: Sequence[bool], read: Sequence[bool] | None = None) -> None:
    # An axis may label only the first tokens (the stage's length; labels are cut to it): `unknown` covers them all.
    for i, (label, is_unknown) in enumerate(zip(labels, unknown, strict=False)):
        if is_unknown:
            label.set_color(UNKNOWN_COLOR)
        elif read is not None and i < len(read) and not read[i]:
            label.set_color(UNREAD_COLOR)


# ---------------------------------------------------------------------------------------------------------------
# The explain figure.


def pair_figure(pair: PairExplanation, tokens_per_row: int | None = None) -> Figure:
    """The figure for one pair: the interaction matrix with the tokens on its axes (words, or word pieces; one
    panel per channel, a transformer ranker's channels being the layers it reads), then each stage of the model
    (strongest feature maps, soft-match counts per kernel, pooled grid, ...) and the final score. A model without an
    interaction matrix shows instead why it has none, what its transformer read, and its score.

    Args:
        pair: from `explain_pair` or `explain_candidate`.
        tokens_per_row: document tokens per heatmap row before it wraps (default: what fits the page width).

    The full-width heatmaps are labelled `"<stage>/<channel index>/<row index>"` (axes.get_label()), so tests and
    scripts can find the data behind each image.
    """
    require_matplotlib()
    left = LEFT_PAD + _label_width(pair.query_tokens)
    per_row = tokens_per_row or max(10, int((MAX_WIDTH - left - RIGHT) / CELL))
    doc_columns = pair.interactions.shape[2] if pair.has_interaction_matrix else len(pair.doc_tokens)
    columns = min(doc_columns, per_row)
    cell = max(CELL, min(MAX_CELL, (MAX_WIDTH - left - RIGHT) / max(1, columns)))
    width = min(MAX_WIDTH, max(MIN_WIDTH, left + columns * cell + RIGHT))
    column = _Column(width, left, cell)
    _header(column, pair)
    if not pair.has_interaction_matrix:
        _sequence_rows(column, pair)
    for name, values in pair.stages.items():
        axes = pair.axes[name]
        labels = pair.labels.get(name, {})
        description = pair.descriptions.get(name, name)
        if name == "interactions":
            _interaction_rows(column, pair, values, labels.get("channel", []), description, left, per_row)
        elif axes == ("channel", "query", "doc"):
            _channel_panels(column, pair, name, values, labels, description, left, token_axes=True)
        elif len(axes) == 3 and axes[0] == "channel":
            _channel_panels(column, pair, name, values, labels, description, left, token_axes=False)
        elif len(axes) == 2:
            _matrix_row(column, pair, name, values, axes, labels, description, left)
        elif len(axes) == 1:
            _bar_row(column, pair, name, values, axes[0], labels, description, left)
    legend = []
    if any(pair.query_unknown) or any(pair.doc_unknown):
        legend.append(
            (f"{pair.token_kind}s in red are not in the model's vocabulary: it read them as UNK", UNKNOWN_COLOR)
        )
    if _unread_shown(pair):
        legend.append((f"{pair.token_kind}s in grey were not read by the model (see the notes above)", UNREAD_COLOR))
    for text, color in legend:

        def draw(fig: Figure, top: float, text: str = text, color: str = color) -> None:
            fig.text(left / width, (top - 0.2) / fig.get_size_inches()[1], text, color=color, fontsize=8)

        column.add(0.3, draw)
    return column.render()


def _unread_shown(pair: PairExplanation) -> bool:
    """Whether an axis of the interaction matrix labels a token the model did not read (past a transformer's window);
    tokens it cut before reading (PACRR's max_query_len) have no row to label."""
    if not pair.has_interaction_matrix:
        return False
    _, n_query, n_doc = pair.interactions.shape
    return not all([*(pair.query_read or [])[:n_query], *(pair.doc_read or [])[:n_doc]])


def _sequence_rows(column: _Column, pair: PairExplanation) -> None:
    """A model without an interaction matrix: why, then what its transformer read, one block per sequence."""
    chars = int((column.width - 2 * LEFT_PAD) * 72 / (SEQUENCE_FONT * 0.62))
    lines: list[tuple[str, float, str, str]] = []  # (text, font size, weight, colour)
    reason = f"no interaction matrix: {pair.no_matrix_reason or 'the model computes none'}"
    lines += [(line, 9, "bold", "black") for line in textwrap.wrap(reason, chars)]
    for name, tokens in pair.sequences.items():
        window = f" of the window's {pair.window}" if pair.window is not None else ""
        lines.append((f"{name}: {len(tokens)} positions{window}, as the transformer read it", 9, "normal", "black"))
        body = textwrap.wrap(" ".join(tokens), chars, break_on_hyphens=False, break_long_words=True)
        lines += [(line, SEQUENCE_FONT, "normal", "#1f4e79") for line in body]
    for kind, tokens, read in (
        ("query", pair.query_tokens, pair.query_read),
        ("document", pair.doc_tokens, pair.doc_read),
    ):
        unread = [token for token, is_read in zip(tokens, read or [], strict=False) if not is_read]
        if unread:
            text = f"{kind} {pair.token_kind}s not read: " + " ".join(unread)
            lines += [(line, SEQUENCE_FONT, "normal", UNREAD_COLOR) for line in textwrap.wrap(text, chars)]
    step = 0.22
    height = len(lines) * step + 0.25

    def draw(figure: Figure, top: float) -> None:
        y = top - 0.2
        for index, (text, size, weight, color) in enumerate(lines):
            artist = figure.text(
                LEFT_PAD / column.width,
                y / figure.get_size_inches()[1],
                text,
                fontsize=size,
                fontweight=weight,
                color=color,
                va="center",
            )
            if color != "black":  # word pieces in a fixed-width font
                artist.set_fontfamily("monospace")
            artist.set_gid(f"sequence/{index}")
            y -= step

    column.add(height, draw)


def _score_lines(pair: PairExplanation) -> list[str]:
    model = [f"score {pair.score:.4f} (the model's output for this pair)"]
    parts = pair.score_parts
    if "cosine" in parts:
        formula = f"= scale {parts['scale']:.4f} x cosine {parts['cosine']:.4f} + bias {parts['bias']:+.4f}"
        if "first-stage weight" in parts:
            formula += f" + {parts['first-stage weight']:.4f} x first-stage score"
        model.append(formula)
    if pair.first_stage_score is not None:
        model.append(f"first-stage score {pair.first_stage_score:.3f} (normalised BM25)")
    ranking = []
    if pair.fusion_alpha is not None:
        fused = f": {pair.ranking_score:.4f}" if pair.ranking_score is not None else ""
        ranking.append(f"re-ranking fuses it with BM25 (alpha {pair.fusion_alpha:g}){fused}")
    if pair.rank is not None:
        ranking.append(f"rank {pair.rank} of {pair.candidates} after re-ranking (BM25 rank {pair.first_stage_rank})")
    if pair.relevance is not None:
        ranking.append(f"relevance {pair.relevance}")
    return ["   ".join(model)] + (["   ".join(ranking)] if ranking else [])


def _header(column: _Column, pair: PairExplanation) -> None:
    ids = f"  (query {pair.query_id}, document {pair.doc_id})" if pair.query_id is not None else ""
    chars = int((column.width - 2 * LEFT_PAD) * 72 / (9 * 0.62))  # characters per line at 9 points
    lines = [
        (f"{pair.model_name}{ids}", 13, "bold"),
        *[(line, 10.5, "bold") for line in _score_lines(pair)],
        *[(line, 9, "normal") for line in textwrap.wrap("query: " + _shorten(pair.query, 2 * chars), chars)],
        *[(line, 9, "normal") for line in textwrap.wrap("document: " + _shorten(pair.doc, 4 * chars), chars)],
        *[(note, 8.5, "normal") for note in pair.notes],
    ]
    height = sum(0.26 if size < 12 else 0.34 for _, size, _ in lines) + 0.15

    def draw(figure: Figure, top: float) -> None:
        y = top - 0.22
        for text, size, weight in lines:
            figure.text(
                LEFT_PAD / column.width,
                y / figure.get_size_inches()[1],
                text,
                fontsize=size,
                fontweight=weight,
                va="center",
            )
            y -= 0.26 if size < 12 else 0.34

    column.add(height, draw)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _interaction_rows(column, pair, values, channels, description, left, per_row) -> None:
    """Each channel (up to 3) as a full-width heatmap, wrapped every `per_row` document tokens; more channels
    follow as small panels."""
    full = list(range(values.shape[0])) if values.shape[0] <= 3 else [0]
    cosine = "cosine" in description  # a transformer ranker's channels are layers, each a cosine matrix
    doc_labels = pair.doc_tokens[: values.shape[2]]
    query_labels = pair.query_tokens[: values.shape[1]]
    x_label_height = _label_width(doc_labels) + 0.1
    n_query, n_doc = values.shape[1], values.shape[2]
    for c in full:
        name = channels[c] if c < len(channels) else f"channel {c + 1}"
        colors = _heatmap_colors(values[c], "cosine" if cosine and name != "exact" else name)
        heading = description if len(channels) == 1 and name in description else f"{description}: {name}"
        starts = list(range(0, n_doc, per_row))
        for row, start in enumerate(starts):
            stop = min(n_doc, start + per_row)
            title = heading if row == 0 else ""
            if len(starts) > 1:
                title += ("   " if title else "") + f"document tokens {start + 1}-{stop} of {n_doc}"
            height = TITLE + n_query * ROW + x_label_height

            def draw(figure, top, c=c, start=start, stop=stop, title=title, row=row, colors=colors):
                ax = _axes(
                    figure,
                    left,
                    top - TITLE - n_query * ROW,
                    (stop - start) * column.cell,
                    n_query * ROW,
                    label=f"interactions/{c}/{row}",
                )
                image = ax.imshow(values[c, :, start:stop], aspect="auto", interpolation="nearest", **colors)
                ax.set_yticks(range(n_query), query_labels, fontsize=TOKEN_FONT)
                ax.set_xticks(range(stop - start), doc_labels[start:stop], fontsize=TOKEN_FONT, rotation=90)
                _color_unknown(ax.get_yticklabels(), pair.query_unknown, pair.query_read)
                doc_read = None if pair.doc_read is None else pair.doc_read[start:stop]
                _color_unknown(ax.get_xticklabels(), pair.doc_unknown[start:stop], doc_read)
                ax.tick_params(length=0)
                ax.set_title(title, fontsize=10, loc="left")
                bar = _axes(
                    figure, left + (stop - start) * column.cell + 0.12, top - TITLE - n_query * ROW, 0.12, n_query * ROW
                )
                figure.colorbar(image, cax=bar).ax.tick_params(labelsize=7)

            column.add(height, draw)
    rest = [c for c in range(values.shape[0]) if c not in full]
    if rest:  # every channel is shown: for a transformer ranker, one panel per layer it reads
        labels = {"channel": channels}
        _channel_panels(
            column,
            pair,
            "interactions",
            values,
            labels,
            f"{description}: the other channels",
            left,
            token_axes=True,
            channels=rest,
        )


def _strongest(values: np.ndarray, k: int) -> list[int]:
    """Channels ordered by their largest absolute value, strongest first."""
    strength = np.abs(values.reshape(values.shape[0], -1)).max(axis=1)
    return [int(c) for c in np.argsort(-strength, kind="stable")[:k]]


def _channel_panels(column, pair, name, values, labels, description, left, token_axes, channels=None) -> None:
    """A stage with many channels: the strongest ones as small heatmaps side by side (several lines if needed)."""
    picked = channels is None
    channels = _strongest(values, MAX_SMALL_PANELS) if picked else channels
    names = labels.get("channel", [])
    per_line = MAX_SMALL_PANELS
    gap = 0.6  # room for each panel's colour bar
    panel_width = (column.width - left - RIGHT - gap * (per_line - 1)) / per_line
    n_rows, n_cols = values.shape[1], values.shape[2]
    row_height = max(SMALL_ROW, 0.6 / n_rows) if token_axes else max(SMALL_ROW, min(0.35, 1.6 / n_rows))
    axes_names = ("", "")  # (y, x) axis names, for panels whose axes are not tokens
    x_labels: Sequence[str] = []
    if token_axes:
        x_labels = pair.doc_tokens[:n_cols] if n_cols <= 30 else []
    else:
        axis_x = pair.axes[name][2]
        x_labels = labels.get(axis_x, [])
        axes_names = (pair.axes[name][1], axis_x)
    y_labels = pair.query_tokens[:n_rows] if pair.axes[name][1] == "query" else labels.get(pair.axes[name][1], [])
    x_space = (_label_width(x_labels, 6.5) + 0.1) if x_labels else 0.35
    shown = ""
    if picked and len(channels) < values.shape[0]:
        shown = f" (strongest {len(channels)} of {values.shape[0]}, by largest value)"
    lines = [channels[i : i + per_line] for i in range(0, len(channels), per_line)]
    for line_index, line in enumerate(lines):
        height = TITLE * (2 if line_index == 0 else 1) + n_rows * row_height + x_space

        def draw(figure, top, line=line, line_index=line_index):
            if line_index == 0:
                figure.text(
                    left / column.width, (top - 0.2) / figure.get_size_inches()[1], description + shown, fontsize=10
                )
                top -= TITLE
            for i, c in enumerate(line):
                x = left + i * (panel_width + gap)
                ax = _axes(
                    figure, x, top - TITLE - n_rows * row_height, panel_width, n_rows * row_height, label=f"{name}/{c}"
                )
                kind = names[c] if c < len(names) and name == "interactions" else None
                if kind is not None and kind != "exact" and "cosine" in pair.descriptions.get(name, ""):
                    kind = "cosine"
                colors = _heatmap_colors(values[c], kind)
                image = ax.imshow(values[c], aspect="auto", interpolation="nearest", **colors)
                title = names[c] if c < len(names) else f"channel {c + 1}"
                ax.set_title(f"{title}  (max {values[c].max():.2f})", fontsize=8.5)
                if i == 0 and y_labels:
                    ax.set_yticks(range(n_rows), y_labels, fontsize=6.5 if token_axes else 7)
                    if token_axes:
                        _color_unknown(ax.get_yticklabels(), pair.query_unknown, pair.query_read)
                else:
                    ax.set_yticks([])
                if i == 0 and not token_axes and not y_labels:
                    ax.set_ylabel(axes_names[0].replace("_", " "), fontsize=7)
                if x_labels:
                    ax.set_xticks(range(n_cols), x_labels, fontsize=6.5, rotation=90)
                elif token_axes:
                    ticks = list(range(0, n_cols, 10))
                    ax.set_xticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
                    ax.set_xlabel("document token position", fontsize=7)
                else:
                    ax.set_xticks([])
                ax.tick_params(length=0)
                if axes_names[1] and i == 0 and not x_labels:
                    ax.set_xlabel(axes_names[1].replace("_", " "), fontsize=7)
                figure.colorbar(image, ax=ax, fraction=0.04, pad=0.01).ax.tick_params(labelsize=6)

        column.add(height, draw)


def _matrix_row(column, pair, name, values, axes, labels, description, left) -> None:
    """A 2-D stage (query x kernel, channel x kernel, ...) as one annotated heatmap."""
    y_axis, x_axis = axes
    y_labels = pair.query_tokens[: values.shape[0]] if y_axis == "query" else labels.get(y_axis, [])
    y_labels = list(y_labels) or [str(i + 1) for i in range(values.shape[0])]
    x_labels = list(labels.get(x_axis, [])) or [str(i + 1) for i in range(values.shape[1])]
    n_rows, n_cols = values.shape
    cell_width = min(0.62, (column.width - left - RIGHT) / max(1, n_cols))
    row_height = 0.26
    x_space = _label_width(x_labels, 7) + 0.15
    annotate = n_cols <= 16 and n_rows <= 25
    height = TITLE + n_rows * row_height + x_space + 0.1
    matrix_left = LEFT_PAD + _label_width(y_labels)

    def draw(figure, top):
        ax = _axes(
            figure,
            matrix_left,
            top - TITLE - n_rows * row_height,
            n_cols * cell_width,
            n_rows * row_height,
            label=f"{name}",
        )
        colors = _heatmap_colors(values)
        image = ax.imshow(values, aspect="auto", interpolation="nearest", **colors)
        ax.set_yticks(range(n_rows), y_labels, fontsize=TOKEN_FONT)
        if y_axis == "query":
            _color_unknown(ax.get_yticklabels(), pair.query_unknown)
        ax.set_xticks(range(n_cols), x_labels, fontsize=7, rotation=90 if max(map(len, x_labels)) > 4 else 0)
        ax.set_xlabel(x_axis.replace("_", " "), fontsize=8)
        ax.tick_params(length=0)
        ax.set_title(description, fontsize=10, loc="left")
        if annotate:
            middle = (colors["vmin"] + colors["vmax"]) / 2
            for i in range(n_rows):
                for j in range(n_cols):
                    value = values[i, j]
                    dark = value > middle if colors["cmap"] == "Greys" else value < middle
                    if colors["cmap"] == "RdBu_r":
                        dark = abs(value) > 0.6 * colors["vmax"]
                    ax.text(
                        j, i, _compact(value), ha="center", va="center", fontsize=6, color="white" if dark else "black"
                    )
        bar = _axes(
            figure,
            matrix_left + n_cols * cell_width + 0.12,
            top - TITLE - n_rows * row_height,
            0.12,
            n_rows * row_height,
        )
        figure.colorbar(image, cax=bar).ax.tick_params(labelsize=7)

    column.add(height, draw)


def _compact(value: float) -> str:
    if abs(value) < 0.005:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _bar_row(column, pair, name, values, axis, labels, description, left) -> None:
    """A 1-D stage (kernel features, per-term scores, components) as a bar chart."""
    bar_labels = pair.query_tokens[: len(values)] if axis == "query" else labels.get(axis, [])
    bar_labels = list(bar_labels) or [str(i + 1) for i in range(len(values))]
    width = min(column.width - left - RIGHT, max(3.0, 0.42 * len(values)))
    x_space = _label_width(bar_labels, 7) + 0.1
    height = TITLE + 1.5 + x_space + 0.1

    def draw(figure, top):
        ax = _axes(figure, left, top - TITLE - 1.5, width, 1.5, label=name)
        colors = ["#2e7d32" if v >= 0 else "#c62828" for v in values]
        ax.bar(range(len(values)), values, color=colors, width=0.7)
        ax.axhline(0, color="black", linewidth=0.6)
        rotate = 90 if max(map(len, bar_labels)) > 5 else 0
        ax.set_xticks(range(len(values)), bar_labels, fontsize=7, rotation=rotate)
        if axis == "query":
            _color_unknown(ax.get_xticklabels(), pair.query_unknown)
        ax.tick_params(labelsize=7)
        ax.set_xlim(-0.6, len(values) - 0.4)
        ax.set_title(description, fontsize=10, loc="left")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)

    column.add(height, draw)


# ---------------------------------------------------------------------------------------------------------------
# Wins and losses.


def wins_losses_figure(
    deltas: Sequence[QueryDelta], measure: str, name_a: str = "A", name_b: str = "B", listed: int = 5
) -> Figure:
    """Per-query differences `name_b - name_a` of `measure`, as bars sorted from the largest gain to the largest loss.

    Args:
        deltas: from `per_query_deltas` (any order).
        listed: how many of the largest gains and of the largest losses are written on the figure with their query
            ids (every bar is labelled instead when there are at most 40 queries).
    """
    require_matplotlib()
    ordered = sorted(deltas, key=lambda d: (-d.delta, d.query_id))
    values = np.array([d.delta for d in ordered])
    wins, losses = int((values > 0).sum()), int((values < 0).sum())
    ties = len(values) - wins - losses
    few = len(values) <= 40
    figure = _figure(12.0, 4.4 if few else 3.9)
    ax = figure.add_axes((0.075, 0.24 if few else 0.1, 0.9, 0.66 if few else 0.78), label="deltas")
    colors = np.where(values > 0, "#2e7d32", np.where(values < 0, "#c62828", "#9e9e9e"))
    ax.bar(np.arange(len(values)), values, width=0.8 if few else 1.0, color=colors)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlim(-0.7, len(values) - 0.3)
    ax.set_ylabel(f"{measure}: {_shorten(name_b, 28)} − {_shorten(name_a, 28)}", fontsize=9)
    mean = float(values.mean()) if len(values) else 0.0
    ax.set_title(
        f"Per-query {measure}, {name_b} vs {name_a}: {wins} wins, {losses} losses, {ties} ties "
        f"over {len(values)} queries (mean difference {mean:+.4f})",
        fontsize=10.5,
        loc="left",
    )
    if few:
        ax.set_xticks(range(len(values)), [d.query_id for d in ordered], rotation=90, fontsize=7)
        ax.set_xlabel("query", fontsize=9)
    else:
        ax.set_xticks([])
        ax.set_xlabel("queries, sorted by difference", fontsize=9)
        # Gains stand left of the middle and above zero, losses right and below, so the lists go in the other corners.
        gained = [f"{d.query_id} ({d.delta:+.3f})" for d in ordered[: min(listed, wins)]]
        worst = sorted(ordered, key=lambda d: (d.delta, d.query_id))[: min(listed, losses)]
        lost = [f"{d.query_id} ({d.delta:+.3f})" for d in worst]
        if gained:
            ax.text(
                0.99,
                0.97,
                "gained most: " + ", ".join(gained),
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=8,
                color="#2e7d32",
            )
        if lost:
            ax.text(
                0.01,
                0.03,
                "lost most: " + ", ".join(lost),
                transform=ax.transAxes,
                ha="left",
                va="bottom",
                fontsize=8,
                color="#c62828",
            )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)
    return figure


# ---------------------------------------------------------------------------------------------------------------
# Training curves.


def training_curves_figure(records: Sequence[dict], metric: str, best_epoch: int | None = None) -> Figure:
    """Training loss, dev metric, learning rate and gradient norm per epoch, from `metrics.jsonl` records."""
    require_matplotlib()
    epochs = [record["epoch"] for record in records]
    panels = [
        ("train_loss", "training loss (epoch mean)"),
        (f"dev_{metric}", f"dev {metric}"),
        ("lr", "learning rate (end of epoch)"),
        ("grad_norm", "gradient norm before clipping (epoch mean)"),
    ]
    figure = _figure(12.0, 3.2)
    for i, (key, title) in enumerate(panels):
        ax = figure.add_axes((0.05 + i * 0.245, 0.18, 0.19, 0.64), label=key)
        values = [record.get(key) for record in records]
        points = [(e, v) for e, v in zip(epochs, values, strict=True) if v is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3.5, color="#1f4e79")
        else:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        if best_epoch is not None and best_epoch > 0:
            ax.axvline(best_epoch, color="#c62828", linewidth=0.8, linestyle="--")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if epochs:
            ax.set_xticks(sorted(set(epochs)))
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    if best_epoch:
        figure.text(
            0.05, 0.94, f"dashed line: the best dev epoch ({best_epoch}), whose checkpoint is best.pt", fontsize=8
        )
    return figure
