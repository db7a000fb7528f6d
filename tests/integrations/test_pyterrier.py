"""The PyTerrier re-ranker: result frames in and out (scores, 0-based ranks, order, empty frames, missing columns),
the first-stage score taken as the checkpoint records it, and a pipeline from a BM25 run read by PyTerrier,
evaluated with `pt.Experiment`, whose per-document scores are `neurank rerank`'s on the same run."""

from __future__ import annotations

import importlib
import sys
import warnings

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pt = pytest.importorskip("pyterrier")

from neurank.cli import main  # noqa: E402
from neurank.collections import Doc, Query, ScoredDoc, load_collection  # noqa: E402
from neurank.evaluation import evaluate  # noqa: E402
from neurank.inference import BaseReranker, load_reranker  # noqa: E402
from neurank.inference.first_stage import FirstStageError, FirstStageWarning, bm25_first_stage  # noqa: E402
from neurank.integrations.pyterrier import MissingColumnError, NeurankReranker  # noqa: E402
from neurank.text import Tokenizer, Vocab, WordEncoder  # noqa: E402

FRAME = [
    ("q1", "who wrote hamlet", "d1", "paris is the capital of france", 3.0),
    ("q1", "who wrote hamlet", "d2", "hamlet was written by shakespeare", 1.0),
    ("q1", "who wrote hamlet", "d3", "the thames flows through london", 2.0),
    ("q0", "what is the capital of france", "d1", "paris is the capital of france", 0.5),
    ("q0", "what is the capital of france", "d4", "berlin is in germany", 1.5),
]


def result_frame(rows=FRAME, **extra):
    frame = pd.DataFrame(rows, columns=["qid", "query", "docno", "text", "score"])
    frame["rank"] = frame.groupby("qid", sort=False)["score"].rank(ascending=False, method="first").astype(int) - 1
    for name, values in extra.items():
        frame[name] = values
    return frame


class OverlapReranker(BaseReranker):
    """A stand-in ranker that needs no training: a candidate's score is the number of distinct words it shares with
    the query (plus its normalised first-stage score when `reads` is set), fused with the first stage when
    `fusion_alpha` is set."""

    def __init__(self, reads=False, fusion_alpha=None):
        texts = [row[1] for row in FRAME] + [row[3] for row in FRAME]
        tokenizer = Tokenizer()
        self.encoder = WordEncoder(tokenizer, Vocab.build(tokenizer.tokenize_batch(texts)))
        self.fusion_alpha = fusion_alpha
        self.first_stage = bm25_first_stage()
        self.batch_size = 8
        self.reads = reads

    @property
    def reads_first_stage_feature(self):
        return self.reads

    def _score_run(self, examples, batch_size):
        return [
            # float32, as a real model's scores (`Scorer`)
            ScoredDoc(ex.query_id, doc_id, float(np.float32(len(set(ex.query) & set(doc)) + self.reads * score)))
            for ex in examples
            for doc_id, doc, score in zip(ex.doc_ids, ex.docs, ex.scores, strict=True)
        ]


def test_scores_every_row_and_ranks_each_query_best_first():
    reranker = OverlapReranker()
    frame = result_frame(title=["a", "b", "c", "d", "e"])
    out = NeurankReranker(reranker).transform(frame)

    expected = reranker.predict([(row[1], row[3]) for row in FRAME])
    by_pair = dict(zip(zip(out["qid"], out["docno"], strict=True), out["score"], strict=True))
    assert [by_pair[(row[0], row[2])] for row in FRAME] == pytest.approx(expected.tolist(), abs=0)
    # Queries keep their order; within each, rank is 0-based by descending score and the rows follow it.
    assert out["qid"].tolist() == ["q1"] * 3 + ["q0"] * 2
    for _, group in out.groupby("qid", sort=False):
        assert group["rank"].tolist() == list(range(len(group)))
        assert group["score"].is_monotonic_decreasing
    assert out.loc[out["qid"] == "q1", "docno"].iloc[0] == "d2"  # the hamlet sentence, last in the BM25 order
    # Every other column travels with its row.
    assert dict(zip(out["docno"] + out["qid"], out["title"], strict=True))["d2q1"] == "b"
    assert out["score"].dtype == np.float64 and out["rank"].dtype.kind == "i"
    assert frame["score"].tolist() == [row[4] for row in FRAME]  # the input frame is left as it was


def test_empty_frame_gives_an_empty_frame_with_score_and_rank():
    empty = result_frame().iloc[:0].drop(columns=["score", "rank"])
    out = NeurankReranker(OverlapReranker()).transform(empty)
    assert out.empty
    assert list(out.columns) == ["qid", "query", "docno", "text", "score", "rank"]
    assert out["score"].dtype == np.float64 and out["rank"].dtype == np.int64


@pytest.mark.parametrize(
    ("dropped", "named"),
    [
        (["text"], "'text' (the candidates' texts"),
        (["query"], "'query' (the query text"),
        (["docno", "text"], "columns 'docno' (PyTerrier result frames carry it); 'text'"),
    ],
)
def test_missing_column_is_one_error_naming_it(dropped, named):
    ranker = NeurankReranker(OverlapReranker())
    with pytest.raises(MissingColumnError) as error:
        ranker.transform(result_frame().drop(columns=dropped))
    assert named in str(error.value) and "the frame has qid" in str(error.value)
    # PyTerrier's own validation reads it as an input validation error.
    assert isinstance(error.value, pt.validate.InputValidationError)


def test_text_field_names_the_text_column():
    frame = result_frame().rename(columns={"text": "body"})
    out = NeurankReranker(OverlapReranker(), text_field="body").transform(frame)
    assert len(out) == len(frame)
    with pytest.raises(MissingColumnError, match="'body'"):
        NeurankReranker(OverlapReranker(), text_field="body").transform(result_frame())


def test_repeated_pairs_and_missing_texts_are_named():
    ranker = NeurankReranker(OverlapReranker())
    with pytest.raises(ValueError, match=r"row 3 repeats qid 'q1', docno 'd1'"):
        ranker.transform(result_frame([*FRAME[:3], FRAME[0]]))
    frame = result_frame()
    frame.loc[4, "text"] = None
    with pytest.raises(ValueError, match=r"row 4 \(qid 'q0', docno 'd4'\) has no text in column 'text'"):
        ranker.transform(frame)


def test_loading_options_go_with_a_path_only():
    with pytest.raises(TypeError, match="device apply when loading a model from a path"):
        NeurankReranker(OverlapReranker(), device="cpu")
    with pytest.raises(ValueError, match="first_stage must be one of auto, run"):
        NeurankReranker(OverlapReranker(), first_stage="frame")


@pytest.mark.parametrize("use", [{"reads": True}, {"fusion_alpha": 0.5}], ids=["feature", "fusion"])
def test_first_stage_score_is_taken_as_the_checkpoint_records_it(use):
    reranker = OverlapReranker(**use)
    frame = result_frame()
    queries = {row[0]: Query(row[0], row[1]) for row in FRAME}
    pool: dict[str, list[Doc]] = {}
    for row in FRAME:
        pool.setdefault(row[0], []).append(Doc(row[2], row[3]))
    bm25 = {(r.query_id, r.doc_id): r.score for r in bm25_first_stage().score_pool(queries, pool)}

    def scores(out):
        return [
            dict(zip(zip(out["qid"], out["docno"], strict=True), out["score"], strict=True))[(row[0], row[2])]
            for row in FRAME
        ]

    # The frame's scores are another first stage's: "auto" replaces them by the checkpoint's BM25, with a warning.
    with pytest.warns(FirstStageWarning, match="recomputed it over the run's candidates"):
        auto = scores(NeurankReranker(reranker).transform(frame))
    # `predict` returns float32, while fusion's interpolation is float64 in runs (as `neurank rerank` writes them).
    expected = reranker.predict([(row[1], row[3], bm25[(row[0], row[2])]) for row in FRAME])
    assert auto == pytest.approx(expected.tolist(), rel=1e-6)

    # BM25 scores in the frame are used as they are, silently; without a score column they are computed.
    as_bm25 = frame.assign(score=[bm25[(row[0], row[2])] for row in FRAME])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scores(NeurankReranker(reranker).transform(as_bm25)) == auto
        assert scores(NeurankReranker(reranker).transform(frame.drop(columns=["score"]))) == auto

    # "run": the frame's own scores, whatever they are.
    own = scores(NeurankReranker(reranker, first_stage="run").transform(frame))
    assert own == pytest.approx(reranker.predict([(row[1], row[3], row[4]) for row in FRAME]).tolist(), rel=1e-6)
    assert own != auto
    with pytest.raises(FirstStageError, match="constant within every query"):
        NeurankReranker(reranker, first_stage="run").transform(frame.assign(score=1.0))
    with pytest.raises(FirstStageError, match="from the frame's 'score' column, and the frame has none"):
        NeurankReranker(reranker, first_stage="run").transform(frame.drop(columns=["score"]))


def test_a_ranker_that_reads_no_first_stage_score_ignores_it():
    reranker = OverlapReranker()
    frame = result_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        given = NeurankReranker(reranker).transform(frame)
        without = NeurankReranker(reranker).transform(frame.drop(columns=["score"]))
    assert given["score"].tolist() == without["score"].tolist()


def test_without_pyterrier_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyterrier", None)  # what an environment without the package shows
    monkeypatch.delitem(sys.modules, "neurank.integrations.pyterrier")
    with pytest.raises(ImportError, match=r'pyterrier is missing\): pip install -e "\.\[pyterrier\]" in the neurank'):
        importlib.import_module("neurank.integrations.pyterrier")


def _cli(*args):
    """`neurank ARGS` in-process; typer ends it with SystemExit, whose status must be 0."""
    with pytest.raises(SystemExit) as exit_:
        main([str(arg) for arg in args])
    assert not exit_.value.code, f"neurank {' '.join(map(str, args))} exited with {exit_.value.code}"


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", ["trained", "fused_checkpoint"])
def test_pipeline_from_a_bm25_run_matches_neurank_rerank(checkpoint, request, tiny_data_dir, tmp_path):
    model = request.getfixturevalue(checkpoint)
    model = model / "best.pt" if model.is_dir() else model
    bm25_path, cli_path = tmp_path / "bm25.run", tmp_path / "neurank.run"
    _cli("search", "wikiqa", "--split", "test", "--data-dir", tiny_data_dir, "--output", bm25_path)
    _cli("rerank", model, "wikiqa", "--split", "test", "--run", bm25_path, "--data-dir", tiny_data_dir,
         "--device", "cpu", "--output", cli_path)  # fmt: skip

    test = load_collection("wikiqa", tiny_data_dir).split("test")
    topics = pd.DataFrame({"qid": list(test.queries), "query": [q.text for q in test.queries.values()]})
    texts = pd.DataFrame(
        [(qid, doc.doc_id, doc.text) for qid, docs in (test.candidates or {}).items() for doc in docs],
        columns=["qid", "docno", "text"],
    )
    qrels = pd.DataFrame([(r.query_id, r.doc_id, r.relevance) for r in test.qrels], columns=["qid", "docno", "label"])
    bm25 = pt.Transformer.from_df(pt.io.read_results(str(bm25_path), topics=topics))
    join_texts = pt.apply.generic(lambda frame: frame.merge(texts, on=["qid", "docno"], how="left"))
    pipeline = bm25 >> join_texts >> NeurankReranker(model, device="cpu")

    table = pt.Experiment(
        [bm25, pipeline], topics, qrels, eval_metrics=["map", "ndcg_cut_10"], names=["bm25", "nr"], plan="tree"
    )
    ours = pipeline.transform(topics)
    cli_run = pt.io.read_results(str(cli_path))
    both = ours.merge(cli_run, on=["qid", "docno"], suffixes=("", "_cli"), validate="one_to_one")
    assert len(both) == len(ours) == len(cli_run) == sum(len(docs) for docs in (test.candidates or {}).values())
    assert both["score"].tolist() == both["score_cli"].tolist()  # identical, not merely close
    assert both["rank"].tolist() == (both["rank_cli"] - 1).tolist()  # TREC ranks start at 1, PyTerrier's at 0

    cli_metrics = evaluate([ScoredDoc(q, d, s) for q, d, s in cli_run[["qid", "docno", "score"]].itertuples(False)],
                           test.qrels, ["AP", "nDCG@10"])  # fmt: skip
    reranked = table.set_index("name").loc["nr"]
    assert reranked["map"] == pytest.approx(cli_metrics["AP"], abs=1e-9)
    assert reranked["ndcg_cut_10"] == pytest.approx(cli_metrics["nDCG@10"], abs=1e-9)


@pytest.mark.slow
def test_loaded_reranker_and_path_give_the_same_scores(trained):
    frame = result_frame()
    from_path = NeurankReranker(trained / "best.pt", device="cpu", batch_size=2).transform(frame)
    loaded = NeurankReranker(load_reranker(trained / "best.pt", device="cpu")).transform(frame)
    assert from_path["score"].tolist() == loaded["score"].tolist()
    assert from_path["rank"].tolist() == loaded["rank"].tolist()


@pytest.mark.slow
def test_a_query_without_bm25_terms_is_re_ranked(fused_checkpoint):
    # "the" is a stop word to the checkpoint's BM25 and "???" has no token at all: BM25 scores every candidate 0, and
    # the fused model still ranks them, as `Reranker.rank` does.
    reranker = load_reranker(fused_checkpoint, device="cpu")
    texts = ["hamlet was written by shakespeare", "the", "", "!!!", "paris is the capital of france"]
    rows = [(f"q{n}", query, f"d{i}", text) for n, query in enumerate(["the", "???"]) for i, text in enumerate(texts)]
    frame = pd.DataFrame(rows, columns=["qid", "query", "docno", "text"])
    out = NeurankReranker(reranker).transform(frame)
    assert len(out) == len(frame) and np.isfinite(out["score"]).all()
    for query_id, query in (("q0", "the"), ("q1", "???")):
        ranked = reranker.rank(query, texts)
        assert all(0.0 <= r.score <= 1.0 for r in ranked)  # fused: in [0, 1]
        got = out[out["qid"] == query_id]
        assert got["docno"].tolist() == [f"d{r.doc_id}" for r in ranked]
        assert got["score"].tolist() == pytest.approx([r.score for r in ranked], abs=1e-6)
