"""A training run as one self-contained HTML page: its configuration, its curves, its results against BM25, the
per-query wins and losses, and the explain figure of a few queries.

    neurank report runs/wikiqa                     # writes runs/wikiqa/report.html

It reads what `neurank train` leaves in the run folder: `best.pt` (the model, its vocabulary and the whole
experiment config), `last.pt` (how far training went) and `metrics.jsonl` (one record per epoch). The results are
computed now, by re-ranking the chosen split with the checkpoint and evaluating it with `neurank.evaluation`: by
default the dev split, on which the checkpoint (and any fusion weight) was chosen, so its figures flatter the model;
`split="test"` gives the held-out figures. Images are embedded as base64 PNG and the styles are inline, so the page
needs nothing but itself; it is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import base64
import copy
import datetime
import html
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import neurank
from neurank.collections import ANSWER_SELECTION, Collection, ScoredDoc
from neurank.collections.textio import atomic_write, marked_by
from neurank.config import ExperimentConfig, config_from_dict
from neurank.evaluation import compare, evaluate
from neurank.explain import NoInteractionMatrixError, explain_candidate, per_query_deltas, summarise_deltas
from neurank.inference.checkpoint import load_checkpoint
from neurank.inference.reranker import Reranker
from neurank.retrieval import bm25_run
from neurank.training.tracking import read_metrics_lines


@dataclass
class RunResults:
    """One split re-ranked with the checkpoint, next to BM25.

    Attributes:
        rows: run name -> {measure: value}; "BM25" first, then the model alone, then the model fused with BM25
            when the checkpoint has a fusion weight.
        p_values: run name -> {measure: (p t-test, p randomisation)} against BM25.
        runs: run name -> the run itself.
    """

    split: str
    queries: int
    measures: list[str]
    rows: dict[str, dict[str, float]]
    p_values: dict[str, dict[str, tuple[float | None, float | None]]]
    runs: dict[str, list[ScoredDoc]] = field(repr=False)
    final: str = ""


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a `metrics.jsonl`, in file order; [] when the file is missing.

    Raises:
        ValueError: the file is not UTF-8 or a line is not a JSON record with an epoch (naming the file and the line).
    """
    return [record for _, record in read_metrics_lines(path)]


def evaluate_run_dir(
    reranker: Reranker, collection: Collection, config: ExperimentConfig, split: str, measures: list[str] | None = None
) -> RunResults:
    """Re-rank `split` with the checkpoint (alone, and fused when it has a fusion weight) and evaluate against BM25.

    BM25 gives the candidates as in training: every given candidate (answer selection) or the top
    `config.data.candidates` (ad-hoc), and BM25 itself is evaluated on that same list.
    """
    measures = measures or list(collection.measures)
    qrels = collection.split(split).qrels
    depth = config.data.candidates
    first_stage = bm25_run(collection, split, k=depth)
    rerank_depth = None if collection.task == ANSWER_SELECTION else depth
    alone = copy.copy(reranker)
    alone.fusion_alpha = None
    model = config.model
    runs = {"BM25": first_stage, model: alone.rerank_collection(collection, split, first_stage, depth=rerank_depth)}
    final = model
    if reranker.fusion_alpha is not None:
        final = f"{model} + BM25 (fusion, alpha {reranker.fusion_alpha:g})"
        runs[final] = reranker.rerank_collection(collection, split, first_stage, depth=rerank_depth)
    rows = {name: evaluate(run, qrels, measures) for name, run in runs.items()}
    p_values = {}
    for name, run in list(runs.items())[1:]:
        comparisons = compare(first_stage, run, qrels, measures)
        p_values[name] = {m: (c.p_ttest, c.p_randomisation) for m, c in comparisons.items()}
    queries = len({q.query_id for q in qrels if q.relevance > 0})
    return RunResults(split, queries, list(rows["BM25"]), rows, p_values, runs, final)


def build_report(
    run_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    split: str | None = None,
    explain: int = 3,
    device: str = "cpu",
    checkpoint: str = "best.pt",
    figures_dir: str | Path | None = None,
) -> str:
    """The report of a training run as an HTML string.

    Args:
        run_dir: a folder written by `neurank train` (best.pt, last.pt, metrics.jsonl).
        data_dir: where the collection lives (default: the run's own `data.data_dir`, then $NEURANK_DATA, ./data).
        split: the split to evaluate and explain (default: the run's dev split).
        explain: how many queries get an explain figure: the largest gains and losses against BM25, alternately.
        checkpoint: the checkpoint file inside `run_dir`.
        figures_dir: also save every figure there as a PNG file (training-curves.png, wins-losses.png,
            explain-query-ID.png).
    Raises:
        FileNotFoundError: `run_dir` has no such checkpoint.
    """
    from neurank.collections.registry import load_collection
    from neurank.explain import figures

    figures.require_matplotlib()
    run_dir = Path(run_dir)
    checkpoint_path = run_dir / checkpoint
    state = load_checkpoint(checkpoint_path)
    last = load_checkpoint(run_dir / "last.pt") if (run_dir / "last.pt").is_file() else state
    config = config_from_dict(state["config"], source=str(checkpoint_path))
    split = split or config.data.dev_split
    records = read_metrics(run_dir / "metrics.jsonl")
    collection = load_collection(
        config.data.collection, data_dir or config.data.data_dir, fold=config.data.fold, folds=config.data.folds
    )
    reranker = Reranker.from_checkpoint(checkpoint_path, device=device)
    results = evaluate_run_dir(reranker, collection, config, split, None)
    metric = state.get("metric") or results.measures[0]

    page = _Page(f"{REPORT_TITLE}{run_dir.name or run_dir}", figures_dir)
    page.paragraph(
        f"Run folder <code>{html.escape(str(run_dir))}</code>, checkpoint <code>{html.escape(checkpoint)}</code>; "
        f"written {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by neurank {html.escape(neurank.__version__)}."
    )
    page.section("Summary")
    page.table(["", ""], _summary_rows(state, last, config, metric), header=False)
    page.section("Configuration")
    page.details(
        "experiment config, as training read it (stored in the checkpoint)",
        yaml.safe_dump(config.to_dict(), sort_keys=False),
    )
    page.details(
        f"{state['model_name']} config with every default filled in",
        yaml.safe_dump(state["model_config"], sort_keys=False, default_flow_style=None),
    )

    page.section("Training curves")
    if records:
        page.figure(figures.training_curves_figure(records, metric, state.get("best_epoch")), "training-curves")
        columns = list(records[0])
        page.table(columns, [[_cell(r.get(c)) for c in columns] for r in records])
    else:
        page.paragraph("No <code>metrics.jsonl</code> in the run folder.")
    if (run_dir / "tensorboard").is_dir():
        page.paragraph(
            "Per-step loss, learning rate and gradient norm: "
            f"<code>tensorboard --logdir {html.escape(str(run_dir / 'tensorboard'))}</code>"
        )

    page.section(f"Results on {collection.name} {split} ({results.queries} queries) against BM25")
    page.paragraph(_split_note(config, split, reranker))
    headers = ["run"] + results.measures
    rows = [[name] + [f"{values[m]:.4f}" for m in results.measures] for name, values in results.rows.items()]
    for name, p_values in results.p_values.items():
        rows.append(
            [f"p, {name} vs BM25 (t-test / randomisation)"] + [f"{_p(t)} / {_p(r)}" for t, r in p_values.values()]
        )
    page.table(headers, rows)

    primary = results.measures[0]
    deltas = per_query_deltas(results.runs["BM25"], results.runs[results.final], collection.split(split).qrels, primary)
    summary = summarise_deltas(deltas, top=5)
    page.section(f"Per-query {primary}: {results.final} against BM25")
    page.figure(figures.wins_losses_figure(deltas, primary, "BM25", results.final), "wins-losses")
    queries = collection.split(split).queries
    for title, key in (("Gained most", "gained"), ("Lost most", "lost")):
        page.paragraph(f"<b>{title}</b>")
        page.table(
            ["query", "text", "BM25", results.final, "difference"],
            [
                [
                    r["query_id"],
                    _short(queries[r["query_id"]].text, 90),
                    f"{r['a']:.4f}",
                    f"{r['b']:.4f}",
                    f"{r['delta']:+.4f}",
                ]
                for r in summary[key]
            ],
        )

    page.section("Inside the model")
    _explain_section(page, reranker, collection, split, results, deltas, explain, config)
    return page.render()


REPORT_TITLE = "neurank report: "


def is_report(path: str | Path) -> bool:
    """Whether `path` is an HTML page `neurank report` wrote (its `<title>neurank report: ...`), so that a rerun may
    replace it."""
    return marked_by(f"<title>{REPORT_TITLE}")(Path(path))


def write_report(run_dir: str | Path, output: str | Path | None = None, **options) -> Path:
    """Build the report of `run_dir` (see `build_report` for the options) and write it atomically.

    Returns:
        The path written: `output`, else `run_dir/report.html`.
    """
    output = Path(output) if output is not None else Path(run_dir) / "report.html"
    text = build_report(run_dir, **options)
    with atomic_write(output) as handle:
        handle.write(text)
    return output


def _summary_rows(state: dict, last: dict, config: ExperimentConfig, metric: str) -> list[list[str]]:
    minutes = float(last.get("seconds", 0.0)) / 60
    rows = [
        ["model", f"{state['model_name']}"],
        [
            "collection",
            f"{config.data.collection} (train on {config.data.train_split}, select on {config.data.dev_split})",
        ],
        ["best dev " + metric, f"{state['best_metric']:.4f} at epoch {state['best_epoch']} (best.pt)"],
        ["trained", f"{last['epoch']} of {config.train.epochs} epochs, {last['step']} steps, {minutes:.1f} min"],
        [
            "fusion with BM25",
            "none" if state.get("fusion_alpha") is None else f"alpha {state['fusion_alpha']:g} (chosen on dev)",
        ],
        ["parameters", f"{sum(v.numel() for v in state['state_dict'].values()):,} values in the state dict"],
        [
            "vocabulary",
            f"{len(state['vocab'].get('tokens', [])):,} tokens" if isinstance(state.get("vocab"), dict) else "-",
        ],
    ]
    return rows


def _split_note(config: ExperimentConfig, split: str, reranker: Reranker) -> str:
    if split == config.data.dev_split:
        chosen = "the checkpoint" + (" and the fusion weight were" if reranker.fusion_alpha is not None else " was")
        return (
            f"This is the dev split, on which {chosen} chosen: these figures flatter the model. "
            f"<code>neurank report RUN_DIR --split {html.escape(config.data.test_split)}</code> "
            "gives the held-out ones."
        )
    dev = html.escape(config.data.dev_split)
    return f"The {html.escape(split)} split; model selection (and any fusion weight) read only {dev}."


def _explain_section(page, reranker, collection, split, results: RunResults, deltas, count: int, config) -> None:
    from neurank.explain import figures

    if count <= 0:
        page.paragraph("No explain figures were asked for.")
        return
    # A transformer without a matrix (the cross-encoder, the pooled cosine) still shows what it read and its score.
    matrixless = not getattr(reranker.model, "has_interaction_matrix", True)
    if matrixless and getattr(reranker.model, "pretrained_part", None) is None:
        page.paragraph(
            f"{html.escape(config.model)} is representation-based: the query and the document are encoded separately, "
            "so there is no interaction matrix to show."
        )
        return
    gains = [d for d in deltas if d.delta > 0]
    losses = sorted((d for d in deltas if d.delta < 0), key=lambda d: (d.delta, d.query_id))
    chosen = []
    for gain, loss in zip(gains, losses, strict=False):  # alternate while both last; the rest follows
        chosen += [gain, loss]
    chosen += gains[len(losses) :] + losses[len(gains) :]
    if not chosen:
        chosen = deltas
    final_run = results.runs[results.final]
    page.paragraph(
        f"For the queries where {html.escape(results.final)} gained and lost most against BM25 (alternately), the "
        "document it ranked first: "
        + (
            "the word pieces and sequences the model read, and its score."
            if matrixless
            else "the interaction matrix with the tokens the model read, then each stage of the model."
        )
    )
    for delta in chosen[:count]:
        ranked = sorted((r for r in final_run if r.query_id == delta.query_id), key=lambda r: -r.score)
        if not ranked:
            continue
        doc_id = ranked[0].doc_id
        try:
            pair = explain_candidate(
                reranker,
                collection,
                split,
                delta.query_id,
                doc_id,
                depth=config.data.candidates,
                model_name=config.model,
            )
        except NoInteractionMatrixError as error:
            page.paragraph(html.escape(str(error)))
            return
        verdict = "gained" if delta.delta > 0 else "lost"
        page.paragraph(
            f"<b>Query {html.escape(delta.query_id)}</b> ({verdict} {abs(delta.delta):.4f} {results.measures[0]}): "
            f"{html.escape(pair.query)}<br>its first document, {html.escape(doc_id)}, "
            f"has relevance {pair.relevance}."
        )
        page.figure(figures.pair_figure(pair), f"explain-query-{delta.query_id}")


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Page:
    """A minimal HTML page builder: sections, paragraphs, tables and embedded PNG figures, nothing external."""

    STYLE = """
    body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1500px;
           padding: 0 1.5em; color: #222; line-height: 1.45; }
    h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
    table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
    th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
    th { background: #f4f4f4; } summary { cursor: pointer; margin: 0.4em 0; }
    pre { background: #f8f8f8; padding: 0.6em; font-size: 0.85em; overflow-x: auto; }
    img { max-width: 100%; height: auto; display: block; margin: 0.5em 0 1.5em; }
    code { background: #f4f4f4; padding: 0 0.2em; }
    """

    def __init__(self, title: str, figures_dir: str | Path | None = None):
        self.title = title
        self.figures_dir = None if figures_dir is None else Path(figures_dir)
        self.parts = [f"<h1>{html.escape(title)}</h1>"]

    def section(self, title: str) -> None:
        self.parts.append(f"<h2>{html.escape(title)}</h2>")

    def paragraph(self, markup: str) -> None:
        """`markup` is trusted HTML: callers escape whatever came from data."""
        self.parts.append(f"<p>{markup}</p>")

    def details(self, summary: str, text: str) -> None:
        """A collapsible block of preformatted text (open by default)."""
        self.parts.append(
            f"<details open><summary>{html.escape(summary)}</summary><pre>{html.escape(text)}</pre></details>"
        )

    def table(self, headers: list[str], rows: list[list[str]], header: bool = True) -> None:
        """Cells are text, escaped here."""
        lines = ["<table>"]
        if header:
            lines.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>")
        for row in rows:
            lines.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>")
        lines.append("</table>")
        self.parts.append("\n".join(lines))

    def figure(self, figure, name: str) -> None:
        """Embed `figure` as a base64 PNG (and save it as `figures_dir/name.png` when asked)."""
        from neurank.explain.figures import figure_bytes

        png = figure_bytes(figure, "png")
        if self.figures_dir is not None:
            with atomic_write(self.figures_dir / f"{name}.png", "wb") as handle:
                handle.write(png)
        data = base64.b64encode(png).decode("ascii")
        self.parts.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">')

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n"
            f"<style>{self.STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
        )
