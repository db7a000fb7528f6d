"""The pooled cosine as a fine-tuned bi-encoder: its vectors cached while it scores (eval mode, no gradients) and
never while it trains, and documents split into passages (MaxP, FirstP), each encoded alone. On the tiny BERT folder
the tests write (tests/conftest.py); nothing is downloaded."""

from __future__ import annotations

import pytest
import torch

from neurank.config import ConfigError
from neurank.inference.scorer import pad_ids
from neurank.models import build_model, model_config_to_dict
from neurank.text import WordPieceEncoder

from .test_cedr import PAIRS, encode, encoder_calls, uncached_twin

pytest.importorskip("transformers")

LONG = "the thames flows through london and on to the sea at last where hamlet is a tragedy of paris and france"


def fine_tuned(folder, vocab_size, **options):
    torch.manual_seed(0)
    return build_model("pooled_cosine", vocab_size, {"hf_model": str(folder), **options})


def test_a_fine_tuned_bi_encoder_encodes_each_text_once_while_it_scores(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = fine_tuned(tiny_bert_folder, encoder.vocab_size).eval()
    batch = encode(encoder, PAIRS)
    calls = encoder_calls(model)
    with torch.no_grad():
        first = model(*batch)
        assert model.cache_size == 6  # 3 distinct queries and 3 distinct documents, from one call per side
        assert torch.equal(model(*batch), first) and len(calls) == 2
        torch.testing.assert_close(uncached_twin(model)(*batch), first, atol=1e-6, rtol=0)
    with torch.inference_mode():
        assert torch.equal(model(*batch), first) and len(calls) == 2


def test_training_steps_never_read_the_store_and_new_weights_get_their_own(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = fine_tuned(tiny_bert_folder, encoder.vocab_size)
    batch = encode(encoder, PAIRS)
    model.eval()
    with torch.no_grad():
        before = model(*batch)
    calls = encoder_calls(model)
    model.eval()
    model(*batch).sum().backward()  # gradients on: computed, not read from the store
    assert len(calls) == 2 and model.encoder.embeddings.word_embeddings.weight.grad is not None
    model.train()
    with torch.no_grad():
        model(*batch)  # training mode (dropout): computed too
    assert len(calls) == 4
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model(*batch).sum().backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        after = model(*batch)
        torch.testing.assert_close(uncached_twin(model)(*batch), after, atol=1e-6, rtol=0)
    assert not torch.allclose(after, before)
    assert model.cache_size == 6  # the old weights' store was let go, the new one holds the batch's texts


def test_cache_false_and_freeze_keep_their_meaning(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    off = fine_tuned(tiny_bert_folder, encoder.vocab_size, cache=False).eval()
    calls = encoder_calls(off)
    with torch.no_grad():
        off(*encode(encoder, PAIRS))
        off(*encode(encoder, PAIRS))
    assert len(calls) == 4 and off.cache_size == 0
    frozen = fine_tuned(tiny_bert_folder, encoder.vocab_size, freeze=True).train()
    frozen(*encode(encoder, PAIRS))  # a frozen encoder caches even in training mode, gradients on
    assert frozen.cache_size == 6


def scores_of(model, encoder, pairs):
    with torch.no_grad():
        return model(*encode(encoder, pairs))


def test_maxp_is_the_best_score_of_the_passages_each_scored_as_a_document_alone(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    options = {"passages": "maxp", "passage_len": 6, "passage_stride": 4}
    maxp = fine_tuned(tiny_bert_folder, encoder.vocab_size, **options).eval()
    whole = fine_tuned(tiny_bert_folder, encoder.vocab_size).eval()  # the same weights, no passages
    query = "who wrote hamlet"
    pieces = encoder.encode_docs([LONG])[0]
    assert len(pieces) > 14  # four passages or more
    passages = [pieces[start : start + 6] for start in range(0, len(pieces) - 2, 4)]
    query_ids, query_mask = pad_ids(encoder.encode_queries([query]) * len(passages))
    doc_ids, doc_mask = pad_ids(passages)
    with torch.no_grad():
        alone = whole(query_ids, doc_ids, query_mask, doc_mask)  # each passage scored as a document of its own
    assert scores_of(maxp, encoder, [(query, LONG)])[0] == pytest.approx(float(alone.max()), abs=1e-5)
    assert int(alone.argmax()) > 0  # not the first passage: the max is taken over them
    firstp = fine_tuned(tiny_bert_folder, encoder.vocab_size, **{**options, "passages": "firstp"}).eval()
    assert scores_of(firstp, encoder, [(query, LONG)])[0] == pytest.approx(float(alone[0]), abs=1e-5)
    # A document that fits one passage scores as without passages, whatever else shares its batch.
    short = [("who wrote hamlet", "hamlet is the play"), (query, LONG)]
    assert len(encoder.encode_docs([short[0][1]])[0]) <= 6
    assert scores_of(maxp, encoder, short)[0] == pytest.approx(float(scores_of(whole, encoder, short)[0]), abs=1e-5)


def test_padding_never_changes_a_maxp_score(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = fine_tuned(tiny_bert_folder, encoder.vocab_size, passages="maxp", passage_len=5, passage_stride=3).eval()
    pairs = [*PAIRS, ("who wrote hamlet", LONG)]
    query_ids, doc_ids, query_mask, doc_mask = encode(encoder, pairs)
    with torch.no_grad():
        expected = model(query_ids, doc_ids, query_mask, doc_mask)
        padded = torch.nn.functional.pad(doc_ids, (0, 9))
        padded_mask = torch.nn.functional.pad(doc_mask, (0, 9))
        torch.testing.assert_close(model(query_ids, padded, query_mask, padded_mask), expected, atol=1e-5, rtol=0)
        twin = uncached_twin(model)
        torch.testing.assert_close(twin(query_ids, padded, query_mask, padded_mask), expected, atol=1e-5, rtol=0)


def test_a_checkpoints_options_keep_the_passages(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = fine_tuned(tiny_bert_folder, encoder.vocab_size, passages="firstp", passage_len=7, passage_stride=7)
    options = model_config_to_dict(model.config)
    assert (options["passages"], options["passage_len"], options["passage_stride"]) == ("firstp", 7, 7)


@pytest.mark.parametrize(
    "options, named",
    [({"passages": "bestp"}, "passages"), ({"passage_len": 0}, "passage_len"), ({"passage_stride": 200}, "stride")],
)
def test_bad_passage_options_are_refused_by_name(options, named):
    with pytest.raises(ConfigError, match=named):
        build_model("pooled_cosine", 50, options)


def test_flops_count_each_passage_a_maxp_document_has(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    whole = fine_tuned(tiny_bert_folder, encoder.vocab_size)
    maxp = fine_tuned(tiny_bert_folder, encoder.vocab_size, passages="maxp", passage_len=8, passage_stride=4)
    firstp = fine_tuned(tiny_bert_folder, encoder.vocab_size, passages="firstp", passage_len=8, passage_stride=4)
    assert firstp.flops_per_pair(4, 20) == whole.flops_per_pair(4, 8)
    # 20 pieces: passages at 0, 4, 8, 12 (the one at 12 reaches the end)
    per_passage = whole.flops_per_pair(4, 8) - whole.flops_per_pair(4, 0) + whole.flops_per_pair(0, 0) // 2
    assert maxp.flops_per_pair(4, 20) == whole.flops_per_pair(4, 8) + 3 * per_passage


def scored(folder, **options):
    """The encoder, PAIRS' batch, and a model in eval mode that has scored it once (its store filled), its scores."""
    encoder = WordPieceEncoder.from_folder(folder)
    batch = encode(encoder, PAIRS)
    model = fine_tuned(folder, encoder.vocab_size, **options).eval()
    with torch.no_grad():
        scores = model(*batch)
    return encoder, batch, model, scores


def test_a_fine_tuned_models_stores_go_with_it_and_a_frozen_ones_stay(tiny_bert_folder):
    import gc

    from neurank.models import cedr

    encoder, batch, model, _ = scored(tiny_bert_folder)
    assert len(cedr._SHARED_STORES) == 1
    del model
    gc.collect()
    assert cedr._SHARED_STORES == {}  # nothing else reads those weights

    _, _, frozen, expected = scored(tiny_bert_folder, freeze=True)
    del frozen
    gc.collect()
    tuned = fine_tuned(tiny_bert_folder, encoder.vocab_size).eval()  # the same starting weights: the same store
    with torch.no_grad():
        tuned(*batch)
    optimizer = torch.optim.SGD(tuned.parameters(), lr=1.0)
    tuned.train()
    tuned(*batch).sum().backward()
    optimizer.step()
    tuned.eval()
    with torch.no_grad():
        tuned(*batch)  # new weights: a store of its own; the frozen model's store stays
    del tuned
    gc.collect()
    again = fine_tuned(tiny_bert_folder, encoder.vocab_size, freeze=True).eval()
    calls = encoder_calls(again)
    with torch.no_grad():
        assert torch.equal(again(*batch), expected) and calls == []
    assert len(cedr._SHARED_STORES) == 1  # the trained weights' store went with the model


def test_weights_changed_without_a_version_count_are_hashed_again_at_the_next_pass(tiny_bert_folder):
    _, batch, model, _ = scored(tiny_bert_folder)
    model.train()
    for parameter in model.encoder.parameters():
        parameter.data.add_(0.01)  # through .data: no version count moves (a fused optimiser's step does the same)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(*batch), uncached_twin(model)(*batch), atol=1e-6, rtol=0)


def test_a_passage_longer_than_the_window_is_refused(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    window = fine_tuned(tiny_bert_folder, encoder.vocab_size).max_positions
    fine_tuned(tiny_bert_folder, encoder.vocab_size, passages="maxp", passage_len=window - 2, passage_stride=8)
    with pytest.raises(ConfigError, match=rf"passage_len: {window - 1} word pieces do not fit .* at most {window - 2}"):
        fine_tuned(tiny_bert_folder, encoder.vocab_size, passages="maxp", passage_len=window - 1, passage_stride=8)
