"""Tokenizer behaviour, identical for both backends, and the config round trip."""

from __future__ import annotations

import json
import pickle
import sys

import pytest

from neurank.text import Tokenizer, TokenizerConfig
from neurank.text.tokenizer import BACKENDS

SENTENCES = [
    "Café Résumé",
    "U.S.-based, (e.g.)",
    "In 1999, 3.5% of 1,000 people earned $40,000 (≈ €37k) at 105°F.",
    "Naïve façade: Ångström, Øresund, Dvořák and São Paulo's piñata!",
    "snake_case, don't, co-operate... “quoted” — dash",
    "Straße İstanbul ＦＵＬＬ width ﬁne x² ½",
    "Москва, Ελλάδα, 北京市, and ヨーロッパ.",
    "tabs\tand\nnewlines\r\n  spaces\u00a0nbsp\u200bzero-width",
    "東京タワーに行きました。ｶﾀｶﾅ 한국어 문장입니다 々〆〇 𠀀𪜀 ภาษาไทย",
    "ma\u200bchine le\u00adarn\u200ding \ufeffbom \u200eltr\u202brtl\u202c\u2060joined\u2066iso\u2069 \u180e",
    "",
    "   ",
    "...!?",
]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def tok(backend: str, **settings) -> Tokenizer:
    return Tokenizer(TokenizerConfig(backend=backend, **settings))


def test_accents_are_stripped_and_text_lowercased(backend):
    assert tok(backend).tokenize("Café Résumé") == ["cafe", "resume"]
    assert tok(backend).tokenize("Naïve Ångström Dvořák") == ["naive", "angstrom", "dvorak"]


def test_lowercase_and_accent_stripping_can_be_turned_off(backend):
    assert tok(backend, lowercase=False, strip_accents=False).tokenize("Café Résumé") == ["Café", "Résumé"]
    assert tok(backend, lowercase=False).tokenize("Café") == ["Cafe"]
    assert tok(backend, strip_accents=False).tokenize("Café") == ["café"]


def test_punctuation_splits_words_and_is_dropped_by_default(backend):
    assert tok(backend).tokenize("U.S.-based, (e.g.)") == ["u", "s", "based", "e", "g"]
    assert tok(backend).tokenize("snake_case don't") == ["snake", "case", "don", "t"]


def test_punctuation_can_be_kept_as_single_character_tokens(backend):
    tokens = tok(backend, drop_punctuation=False).tokenize("U.S.-based, (e.g.)")
    assert tokens == ["u", ".", "s", ".", "-", "based", ",", "(", "e", ".", "g", ".", ")"]
    assert tok(backend, drop_punctuation=False).tokenize("wait...!") == ["wait", ".", ".", ".", "!"]


def test_numbers_split_at_separators_and_symbols(backend):
    tokens = tok(backend).tokenize("In 1999, 3.5% of 1,000 people paid £560 at 105°F.")
    assert tokens == ["in", "1999", "3", "5", "of", "1", "000", "people", "paid", "560", "at", "105", "f"]


@pytest.mark.parametrize("text", ["", "   ", "\t\n", "...!?", "— “ ”"])
def test_empty_or_punctuation_only_text_gives_no_tokens(backend, text):
    assert tok(backend).tokenize(text) == []
    assert tok(backend).tokenize_batch([text, "a"]) == [[], ["a"]]


def test_english_stop_words_are_the_bm25s_list(backend):
    from bm25s.stopwords import STOPWORDS_EN

    tokenizer = tok(backend, stopwords="en")
    assert tokenizer.tokenize("The cat is on the mat, and it was THERE") == ["cat", "mat"]
    assert tokenizer.tokenize(" ".join(STOPWORDS_EN)) == []
    assert tok(backend).tokenize("the cat") == ["the", "cat"]


def test_snowball_stemming_follows_stop_word_removal(backend):
    pytest.importorskip("Stemmer")
    tokenizer = tok(backend, stopwords="en", stemmer="english")
    assert tokenizer.tokenize("The runners were running into the hills") == ["runner", "were", "run", "hill"]
    assert tok(backend, stemmer="english").tokenize("Résumés") == ["resum"]


def test_missing_pystemmer_tells_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "Stemmer", None)  # makes `import Stemmer` raise ImportError
    with pytest.raises(ImportError, match=r"pip install neurank\[stem\]"):
        Tokenizer(TokenizerConfig(stemmer="english"))
    assert Tokenizer().tokenize("still works") == ["still", "works"]


def test_unknown_settings_are_rejected():
    with pytest.raises(ValueError, match="backend"):
        TokenizerConfig(backend="spacy")
    with pytest.raises(ValueError, match="stop word list"):
        TokenizerConfig(stopwords="fr")
    with pytest.raises(TypeError, match="list of texts"):
        Tokenizer().tokenize_batch("one text")


def test_unknown_stemmer_lists_the_algorithms():
    pytest.importorskip("Stemmer")
    with pytest.raises(ValueError, match="unknown stemmer 'klingon'.*english"):
        Tokenizer(TokenizerConfig(stemmer="klingon"))


@pytest.mark.parametrize("split_cjk", [True, False])
@pytest.mark.parametrize("drop_zero_width", [True, False])
@pytest.mark.parametrize("drop_punctuation", [True, False])
def test_backends_agree(drop_punctuation, drop_zero_width, split_cjk):
    settings = {"drop_punctuation": drop_punctuation, "drop_zero_width": drop_zero_width, "split_cjk": split_cjk}
    regex, hf = (tok(backend, **settings) for backend in BACKENDS)
    assert regex.tokenize_batch(SENTENCES) == hf.tokenize_batch(SENTENCES)


def test_zero_width_characters_are_dropped_so_they_never_split_a_word(backend):
    text = "ma\u200bchine le\u00adarn\u200cing \ufeffdeep\u200d\u2060net \u200fsoft\u202eware\u202c"
    assert tok(backend).tokenize(text) == ["machine", "learning", "deepnet", "software"]
    assert tok(backend, drop_punctuation=False).tokenize(text) == ["machine", "learning", "deepnet", "software"]
    # Off (and so in a tokenizer saved before the setting), each of them split the word it was in.
    assert tok(backend, drop_zero_width=False).tokenize(text) == [
        *("ma", "chine", "le", "arn", "ing", "deep", "net", "soft", "ware")
    ]


def test_chinese_and_japanese_characters_are_one_token_each(backend):
    tokenizer = tok(backend)
    assert tokenizer.tokenize("北京市是中国的首都") == list("北京市是中国的首都")
    # Kana too (the voicing mark goes with the other combining marks, as accents do): Japanese has no spaces.
    assert tokenizer.tokenize("東京タワーに行きました") == list("東京タワーに行きました")
    assert tokenizer.tokenize("ｶﾀｶﾅ 𠀀x") == ["ｶ", "ﾀ", "ｶ", "ﾅ", "𠀀", "x"]  # halfwidth kana, Extension B
    assert tokenizer.tokenize("BM25在2009年") == ["bm25", "在", "2009", "年"]  # runs of other letters stay whole
    # Korean separates words with spaces, and Thai's letters are not words: both stay runs.
    assert len(tokenizer.tokenize("한국어 문장입니다")) == 2 and tokenizer.tokenize("ภาษาไทย") == ["ภาษาไทย"]
    assert tok(backend, split_cjk=False).tokenize("北京市是中国的首都, hello") == ["北京市是中国的首都", "hello"]


def test_a_saved_tokenizer_without_the_new_settings_tokenizes_as_before(backend):
    # Checkpoints and BM25 indexes written before issue 22 hold `to_dict()` without the two keys.
    before = {"lowercase": True, "strip_accents": True, "drop_punctuation": True, "stopwords": None}
    old = Tokenizer.from_dict({**before, "stemmer": None, "backend": backend})
    assert old.config.drop_zero_width is False and old.config.split_cjk is False
    assert old.tokenize("ma\u200bchine 東京タワー") == ["ma", "chine", "東京タワー"]
    new = Tokenizer(TokenizerConfig(backend=backend))
    assert new.to_dict()["drop_zero_width"] is True and new.to_dict()["split_cjk"] is True
    assert Tokenizer.from_dict(new.to_dict()).config == new.config  # a tokenizer saved since keeps its settings


def test_backends_differ_only_where_documented():
    regex, hf = tok("regex"), tok("hf")
    # Python's str.lower applies the Greek final-sigma rule; HF lower-cases character by character.
    assert regex.tokenize("ΟΔΟΣ") == ["οδος"]
    assert hf.tokenize("ΟΔΟΣ") == ["οδοσ"]
    # U+001C..U+001F are whitespace to Python, punctuation to HF; with punctuation dropped both give the same.
    assert regex.tokenize("a\x1cb") == hf.tokenize("a\x1cb") == ["a", "b"]
    assert tok("hf", drop_punctuation=False).tokenize("a\x1cb") == ["a", "\x1c", "b"]
    assert tok("regex", drop_punctuation=False).tokenize("a\x1cb") == ["a", "b"]


def test_tokenize_batch_matches_tokenize(backend):
    tokenizer = tok(backend, stopwords="en")
    assert tokenizer.tokenize_batch(iter(SENTENCES)) == [tokenizer.tokenize(text) for text in SENTENCES]
    assert tokenizer.tokenize_batch([]) == []


def test_to_dict_round_trip_through_json():
    config = TokenizerConfig(lowercase=False, drop_punctuation=False, stopwords="en", backend="hf")
    data = json.loads(json.dumps(Tokenizer(config).to_dict()))
    rebuilt = Tokenizer.from_dict(data)
    assert rebuilt.config == config
    assert rebuilt.tokenize_batch(SENTENCES) == Tokenizer(config).tokenize_batch(SENTENCES)
    # A missing key means what it meant when the dict was written: the settings added since are off.
    assert Tokenizer.from_dict({}).config == TokenizerConfig(drop_zero_width=False, split_cjk=False)
    with pytest.raises(ValueError, match="unknown tokenizer setting"):
        Tokenizer.from_dict({**data, "casefold": True})


def test_pickles_for_dataloader_workers():
    pytest.importorskip("Stemmer")
    tokenizer = Tokenizer(TokenizerConfig(stemmer="english", stopwords="en"))
    clone = pickle.loads(pickle.dumps(tokenizer))
    assert clone.config == tokenizer.config
    assert clone.tokenize("Running the races") == ["run", "race"]


@pytest.mark.integration
def test_backends_agree_on_wikiqa_dev(shared_data):
    texts = {}
    with open(shared_data / "wikiqa" / "WikiQA-dev.tsv", encoding="utf-8", newline="") as handle:
        next(handle)
        for line in handle:
            fields = line.rstrip("\r\n").split("\t")
            texts[fields[0]], texts[fields[4]] = fields[1], fields[5]
    texts = list(texts.values())
    for drop_punctuation in (True, False):
        regex, hf = (tok(backend, drop_punctuation=drop_punctuation) for backend in BACKENDS)
        assert regex.tokenize_batch(texts) == hf.tokenize_batch(texts)
