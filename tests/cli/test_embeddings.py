"""`neurank embeddings train`: word2vec on the tiny collection, written in word2vec text format."""

import json


def test_embeddings_train_writes_word2vec_text(cli, tmp_path, tiny_data_dir):
    output = tmp_path / "vectors.txt"
    status, out, err = cli(
        "embeddings",
        "train",
        "wikiqa",
        "--output",
        output,
        "--dim",
        8,
        "--epochs",
        1,
        "--data-dir",
        tiny_data_dir,
        "--json",
    )
    assert status == 0, err
    result = json.loads(out)
    header = output.read_text().splitlines()[0].split()
    assert int(header[0]) == result["words"] and header[1] == "8"
    assert result["collection"] == "wikiqa" and result["dim"] == 8 and result["output"] == str(output)
    assert not list(tmp_path.glob(".vectors.txt*"))  # written under a temporary name, then renamed
