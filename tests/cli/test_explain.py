"""`neurank explain` (a pair of texts, a query and document of a collection, two runs compared) and `neurank report`,
and their one-line errors."""

import dataclasses
import json

from neurank.collections import Qrel, ScoredDoc
from neurank.collections.trec import write_qrels, write_run
from neurank.explain import figures
from neurank.training import train


def test_explain_a_pair_of_texts(cli, trained, tmp_path):
    output = tmp_path / "pair.svg"
    status, out, err = cli(
        "explain",
        trained / "best.pt",
        "--query",
        "who wrote hamlet",
        "--doc",
        "hamlet is a tragedy by shakespeare",
        "--output",
        output,
        "--json",
    )
    assert status == 0, err
    result = json.loads(out)
    assert result["query_tokens"] == ["who", "wrote", "hamlet"] and result["model_name"] == "match_pyramid"
    assert result["doc_tokens"] == ["hamlet", "is", "a", "tragedy", "by", "shakespeare"]
    assert result["stages"]["interactions"]["axes"] == ["channel", "query", "doc"]
    assert output.read_text(encoding="utf-8").lstrip().startswith("<?xml") and result["output"] == str(output)


def test_explain_by_ids_from_a_collection(cli, trained, tiny_data_dir, tmp_path):
    status, out, err = cli(
        "explain",
        trained / "best.pt",
        "--collection",
        "wikiqa",
        "--split",
        "test",
        "--query-id",
        "1",
        "--doc-id",
        "0",
        "--data-dir",
        tiny_data_dir,
        "--output",
        tmp_path / "q1.png",
        "--json",
    )
    assert status == 0, err
    result = json.loads(out)
    assert (result["query_id"], result["doc_id"], result["relevance"], result["candidates"]) == ("1", "0", 1, 3)
    assert (tmp_path / "q1.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_two_runs(cli, tmp_path):
    qrels = [Qrel("1", "a", 1), Qrel("2", "b", 1)]
    write_qrels(qrels, tmp_path / "qrels")
    write_run([ScoredDoc("1", "x", 2.0), ScoredDoc("1", "a", 1.0), ScoredDoc("2", "b", 1.0)], tmp_path / "a.run")
    write_run([ScoredDoc("1", "a", 2.0), ScoredDoc("1", "x", 1.0), ScoredDoc("2", "y", 1.0)], tmp_path / "b.run")
    status, out, err = cli(
        "explain",
        "--compare",
        tmp_path / "a.run",
        tmp_path / "b.run",
        "--qrels",
        tmp_path / "qrels",
        "--measure",
        "RR",
        "--output",
        tmp_path / "wl.png",
        "--json",
    )
    assert status == 0, err
    result = json.loads(out)
    assert (result["wins"], result["losses"], result["ties"]) == (1, 1, 0)
    assert result["gained"][0]["query_id"] == "1" and result["lost"][0]["query_id"] == "2"
    assert (tmp_path / "wl.png").is_file()
    again = ("explain", "--compare", tmp_path / "a.run", tmp_path / "b.run", "--qrels", tmp_path / "qrels")
    # The figure the first run wrote: its writer field says neurank, so a rerun replaces it.
    status, out, _ = cli(*again, "--output", tmp_path / "wl.png")
    assert status == 0 and "1 wins, 1 losses, 0 ties over 2 queries" in out and "gained most" in out
    (tmp_path / "wl.png").write_bytes(b"\x89PNG not neurank's")  # a user's figure at the same path
    status, _, err = cli(*again, "--output", tmp_path / "wl.png")
    assert status == 2 and "--overwrite" in err and (tmp_path / "wl.png").read_bytes() == b"\x89PNG not neurank's"


def test_errors_are_one_line(cli, trained, tiny_config, tmp_path):
    status, _, err = cli("explain")
    assert status == 2 and "give a checkpoint" in err
    status, _, err = cli("explain", trained / "best.pt", "--query", "q")
    assert status == 2 and "--query and --doc" in err
    status, _, err = cli("explain", "--compare", "a", "b")
    assert status == 2 and "--qrels" in err
    status, _, err = cli("explain", tmp_path / "missing.pt", "--query", "q", "--doc", "d")
    assert status == 2 and "missing.pt: checkpoint not found" in err
    status, _, err = cli("explain", trained / "best.pt", "--query", "q", "--doc", "d", "--output", tmp_path / "x.gif")
    assert status == 2 and "unsupported figure format '.gif'" in err
    config = dataclasses.replace(
        tiny_config, model="arci", model_config={}, train=dataclasses.replace(tiny_config.train, epochs=1)
    )
    train(config, tmp_path / "arci", progress=False)
    status, _, err = cli("explain", tmp_path / "arci" / "best.pt", "--query", "q", "--doc", "d")
    assert status == 2 and "arci is representation-based" in err and "Traceback" not in err


def test_report_command(cli, trained, tmp_path):
    status, out, err = cli("report", trained, "--output", tmp_path / "report.html", "--explain", "1", "--json")
    assert status == 0, err
    assert json.loads(out)["output"] == str(tmp_path / "report.html")
    assert "<h2>Inside the model</h2>" in (tmp_path / "report.html").read_text(encoding="utf-8")
    status, _, err = cli("report", tmp_path / "nothing")
    assert status == 2 and "checkpoint not found" in err


def test_help_says_a_figure_neurank_wrote_is_replaced_and_overwrite_replaces_any_other(cli, tmp_path):
    status, out, _ = cli("explain", "--help")
    text = " ".join(out.replace("│", " ").split())  # rich boxes and wraps the help
    assert status == 0 and "A figure neurank wrote (its writer field says neurank) is replaced" in text
    assert "any other existing file needs --overwrite" in text and "carry no mark" not in text
    # test_compare_two_runs shows a rerun replacing its figure and a user's PNG refused; here --overwrite on a user's.
    write_qrels([Qrel("1", "a", 1)], tmp_path / "qrels")
    write_run([ScoredDoc("1", "a", 1.0)], tmp_path / "a.run")
    figure = tmp_path / "wl.svg"
    figure.write_text("<svg>a user's own</svg>", encoding="utf-8")
    compare = ["explain", "--compare", tmp_path / "a.run", tmp_path / "a.run", "--qrels", tmp_path / "qrels"]
    status, _, err = cli(*compare, "--output", figure)
    assert status == 2 and "was not written by neurank" in err and figure.read_text() == "<svg>a user's own</svg>"
    status, _, err = cli(*compare, "--output", figure, "--overwrite")
    assert status == 0, err
    assert figures.is_neurank_figure(figure)
    status, _, err = cli(*compare, "--output", figure)  # now neurank's own: a rerun replaces it
    assert status == 0, err
