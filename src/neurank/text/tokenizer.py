"""The word tokenizer: text -> normalised word tokens, with optional stop words and Snowball stemming.

A token is a maximal run of letters and digits (Unicode categories L and N, i.e. `str.isalnum`); every other
non-space character is a one-character punctuation token, `_` included. "U.S.-based, (e.g.)" gives
`u . s . - based , ( e . g . )`, and numbers split at their separators ("3.5" -> `3 . 5`). Pure-punctuation
tokens are dropped by default (`drop_punctuation=True`), as is usual in IR: they carry no topical signal and
only lengthen every sequence. Text is lower-cased and accents are stripped (NFD, then every combining mark,
Unicode category M, is dropped), so "Café Résumé" -> `cafe resume`. Stop words (`stopwords="en"`: the list that
ships with bm25s, so the first stage and the re-rankers agree) are removed after normalisation, and Snowball
stemming (`stemmer="english"`, PyStemmer, extra `stem`) comes last.

Two backends produce the same tokens:

- `"regex"` (default): `str.lower`, `unicodedata` (only for non-ASCII text) and one compiled `re` pattern.
- `"hf"`: HuggingFace `tokenizers` normalizers NFD + Lowercase + StripAccents and a `Split` pre-tokenizer with
  the same pattern, run through `Tokenizer.encode_batch`.

Measured by `benchmarks/tokenizers_bench.py` (default config, best of 3 in one run, 2 shared CPU cores, Python 3.11,
tokenizers 0.23.3; WikiQA = the distinct questions and sentences of train+dev+test, NFCorpus = the distinct
dev+test documents):

    collection  texts   tokens   regex tokens/s  hf tokens/s  identical token lists (drop / keep punctuation)
    wikiqa      29,317  603,987  3,324,214       930,759      1.0000 / 1.0000
    nfcorpus     3,395  514,610  5,851,110       994,091      1.0000 / 1.0000

The regex backend is the default: it gives the same tokens on every text of both collections and is 3.6x (WikiQA)
to 5.9x (NFCorpus) faster. The whole regex pass over WikiQA (0.18 s) costs less than the hf backend's
`normalize_str` calls alone (0.22 s) or its reading of token strings back through offsets (0.18 s, needed because
its vocabulary-less model knows no token strings), before `encode_batch` itself (0.39 s on 2 threads). The regex
backend also needs no thread pool, so it is safe in forked DataLoader workers. Documented differences, absent from
these collections: Python's `str.lower` applies the Greek final-sigma rule ("ΟΔΟΣ" -> "οδος", hf: "οδοσ"), and
with `drop_punctuation=False` the characters U+001C..U+001F are spaces for Python but punctuation for hf.
`BertPreTokenizer` was tried for the hf backend and rejected: it keeps non-ASCII symbols glued to words ("105°F"
-> `105°f`, "£560" -> `£560`; 70 of the 29,317 WikiQA texts differ with punctuation dropped), so a query for "105"
would miss them; `Whitespace` groups punctuation runs ("(e.g.)" -> `( e . g .)`). Accent stripping drops every
combining mark, so the vowel signs of Indic scripts go too, as in BERT's uncased tokenizer.

Two settings added by issue 22, on by default and off for a tokenizer saved before them (`Tokenizer.from_dict` of a
dict without the key, as every checkpoint and BM25 index of those versions holds), so old files tokenize as they did:

- `drop_zero_width`: invisible format characters are removed first, so they no longer split a word silently
  ("ma<U+200B>chine" was `ma chine`, now `machine`): zero-width space, non-joiner and joiner (U+200B-U+200D), the
  direction marks (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), word joiner and invisible operators
  (U+2060-U+2064), zero-width no-break space / byte-order mark (U+FEFF), soft hyphen (U+00AD) and the Mongolian
  vowel separator (U+180E). BERT's tokenizer removes these with every other "format" character (category Cf); the
  list is spelt out (`ZERO_WIDTH`) so that both backends remove exactly the same characters whatever their Unicode
  tables.
- `split_cjk`: every Han ideograph, Hiragana and Katakana character is a token of its own (`CJK`). Chinese and
  Japanese are written without spaces, so a whole sentence was one token: it matched nothing, BM25 never found it,
  and a model saw one unknown word for the whole text. The Han ranges are those of BERT's `_is_chinese_char` (CJK
  Unified Ideographs, Extensions A-E, the compatibility ideographs), with the iteration marks U+3005-U+3007. Kana
  are split too, as Lucene's StandardTokenizer splits Hiragana: Japanese runs kanji and kana together with no space
  between words, and a word-level vocabulary matches a split katakana word character by character (a dictionary
  segmenter would do better, and is not a dependency we want). Hangul is not split: Korean puts spaces between
  words, so its words already are tokens (as in BERT and in Unicode word segmentation, UAX #29). Thai, Lao, Khmer
  and Myanmar are written without spaces too, but their characters are letters, not words or syllables; they stay
  runs, as in BERT.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, Literal

BACKENDS = ("regex", "hf")
STOPWORD_LISTS = ("en",)

# [^\W_] is exactly str.isalnum(); "_" is punctuation here, as in BERT.
_WORD = r"[^\W_]+"
_HF_WORD = r"[\p{L}\p{N}]+"

# What `drop_zero_width` removes and what `split_cjk` makes one token per character (see the module docstring), as
# inclusive code point ranges; both backends build their patterns from them.
ZERO_WIDTH = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x180E, 0x180E),  # Mongolian vowel separator
    (0x200B, 0x200F),  # zero-width space, non-joiner, joiner; left-to-right and right-to-left marks
    (0x202A, 0x202E),  # direction embeddings and overrides
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x2066, 0x2069),  # direction isolates
    (0xFEFF, 0xFEFF),  # zero-width no-break space (byte-order mark)
)
CJK = (
    (0x3005, 0x3007),  # iteration marks, ideographic zero
    (0x3040, 0x309F),  # Hiragana
    (0x30A0, 0x30FF),  # Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFF66, 0xFF9F),  # halfwidth Katakana
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2B73F),  # Extension C
    (0x2B740, 0x2B81F),  # Extension D
    (0x2B820, 0x2CEAF),  # Extension E
    (0x2F800, 0x2FA1F),  # CJK Compatibility Ideographs Supplement
)


def _python_class(ranges: Sequence[tuple[int, int]]) -> str:
    """The inside of a `re` character class holding `ranges`."""
    return "".join(f"\\U{lo:08x}" + (f"-\\U{hi:08x}" if hi != lo else "") for lo, hi in ranges)


def _onig_class(ranges: Sequence[tuple[int, int]]) -> str:
    """The inside of an Oniguruma (HuggingFace `tokenizers.Regex`) character class holding `ranges`."""
    return "".join(f"\\x{{{lo:x}}}" + (f"-\\x{{{hi:x}}}" if hi != lo else "") for lo, hi in ranges)


def _python_pattern(drop_punctuation: bool, split_cjk: bool) -> str:
    # One CJK character, or a run of the other letters and digits ([^\W_] is str.isalnum()).
    word = f"[{_python_class(CJK)}]|[^\\W_{_python_class(CJK)}]+" if split_cjk else _WORD
    return word if drop_punctuation else word + r"|\S"


def _onig_pattern(drop_punctuation: bool, split_cjk: bool) -> str:
    word = f"[{_onig_class(CJK)}]|[[\\p{{L}}\\p{{N}}]&&[^{_onig_class(CJK)}]]+" if split_cjk else _HF_WORD
    return word if drop_punctuation else word + r"|\S"


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """How text becomes tokens. Every field is saved with a checkpoint (see `Tokenizer.to_dict`).

    Args:
        lowercase: lower-case the text.
        strip_accents: decompose (NFD) and drop combining marks, so "é" -> "e".
        drop_punctuation: drop pure-punctuation tokens (default, usual for IR); keep them otherwise.
        stopwords: None, or "en" for the English stop words shipped with bm25s.
        stemmer: None, or a Snowball algorithm name for PyStemmer ("english", "porter", ...).
        backend: "regex" (default, fastest) or "hf" (HuggingFace tokenizers); both give the same tokens.
        drop_zero_width: remove invisible format characters (zero-width space and joiners, soft hyphen, byte-order
            mark, direction marks) before splitting, so they never split a word. False in a saved tokenizer without it.
        split_cjk: make every Han, Hiragana and Katakana character a token. False in a saved tokenizer without it.
    """

    lowercase: bool = True
    strip_accents: bool = True
    drop_punctuation: bool = True
    stopwords: Literal["en"] | None = None
    stemmer: str | None = None
    backend: Literal["regex", "hf"] = "regex"
    drop_zero_width: bool = True
    split_cjk: bool = True

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown tokenizer backend {self.backend!r}; expected one of {BACKENDS}")
        if self.stopwords is not None and self.stopwords not in STOPWORD_LISTS:
            raise ValueError(f"unknown stop word list {self.stopwords!r}; expected None or one of {STOPWORD_LISTS}")


class Tokenizer:
    """Turns text into word tokens as described by a `TokenizerConfig`.

    Example:
        >>> Tokenizer().tokenize("Café Résumé, U.S.-based")
        ['cafe', 'resume', 'u', 's', 'based']
    """

    def __init__(self, config: TokenizerConfig | None = None):
        self.config = config or TokenizerConfig()
        backend = _RegexBackend if self.config.backend == "regex" else _HFBackend
        self._split = backend(self.config)
        self._stopwords = _load_stopwords(self.config.stopwords)
        self._stemmer = _load_stemmer(self.config.stemmer)

    def tokenize(self, text: str) -> list[str]:
        """Return the tokens of one text ([] for an empty or all-punctuation text)."""
        return self.tokenize_batch([text])[0]

    def tokenize_batch(self, texts: Iterable[str]) -> list[list[str]]:
        """Return the tokens of each text, in order; faster than calling `tokenize` in a loop."""
        if isinstance(texts, str):
            raise TypeError("tokenize_batch expects a list of texts, got one str; use tokenize(text)")
        batch = self._split(list(texts))
        if self._stopwords:
            batch = [[token for token in tokens if token not in self._stopwords] for tokens in batch]
        if self._stemmer is not None:
            batch = [self._stemmer.stemWords(tokens) for tokens in batch]
        return batch

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain dict (JSON- and checkpoint-safe)."""
        return dataclasses.asdict(self.config)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from `to_dict()` output; unknown keys are an error.

        A missing key means what it meant to the version that wrote the dict: `SAVED_DEFAULTS` for the settings
        added since (so a checkpoint or index saved before them tokenizes as it did), the default for the others.
        """
        known = {field.name for field in dataclasses.fields(TokenizerConfig)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown tokenizer setting(s) {unknown}; expected keys among {sorted(known)}")
        return cls(TokenizerConfig(**{**SAVED_DEFAULTS, **data}))

    def __reduce__(self):
        # Rebuild from the config, so DataLoader workers can pickle a tokenizer holding a PyStemmer object.
        return (type(self), (self.config,))

    def __repr__(self) -> str:
        return f"Tokenizer({self.config})"


#: Settings added after tokenizers were first saved, with the value that a saved dict lacking them stands for.
SAVED_DEFAULTS: dict[str, Any] = {"drop_zero_width": False, "split_cjk": False}


def _strip_accents(text: str) -> str:
    if text.isascii():
        return text
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.category(ch).startswith("M"))


class _RegexBackend:
    def __init__(self, config: TokenizerConfig):
        self.lowercase = config.lowercase
        self.strip_accents = config.strip_accents
        self.pattern = re.compile(_python_pattern(config.drop_punctuation, config.split_cjk))
        self.zero_width = re.compile(f"[{_python_class(ZERO_WIDTH)}]") if config.drop_zero_width else None

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        findall = self.pattern.findall
        if self.zero_width is not None:
            remove = self.zero_width.sub
            texts = [text if text.isascii() else remove("", text) for text in texts]
        if self.lowercase:
            texts = [text.lower() for text in texts]
        if self.strip_accents:
            texts = [_strip_accents(text) for text in texts]
        return [findall(text) for text in texts]


class _HFBackend:
    def __init__(self, config: TokenizerConfig):
        from tokenizers import Regex, normalizers, pre_tokenizers
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers.models import WordLevel

        steps: list[normalizers.Normalizer] = []
        if config.drop_zero_width:
            steps.append(normalizers.Replace(Regex(f"[{_onig_class(ZERO_WIDTH)}]"), ""))
        steps += [normalizers.NFD()] if config.strip_accents else []
        steps += [normalizers.Lowercase()] if config.lowercase else []
        steps += [normalizers.StripAccents()] if config.strip_accents else []
        self.normalizer = normalizers.Sequence(steps) if steps else None
        # The normalizer runs outside the HF tokenizer so that offsets index the normalised text; the model has no
        # vocabulary (every token is "<unk>"), so the token strings are read back through those offsets.
        self.tokenizer = HFTokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>"))
        pattern = _onig_pattern(config.drop_punctuation, config.split_cjk)
        self.tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True)

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        if self.normalizer is not None:
            texts = [self.normalizer.normalize_str(text) for text in texts]
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [[text[start:end] for start, end in enc.offsets] for text, enc in zip(texts, encodings, strict=True)]


def _load_stopwords(name: str | None) -> frozenset[str]:
    if name is None:
        return frozenset()
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def _load_stemmer(algorithm: str | None):
    if algorithm is None:
        return None
    try:
        import Stemmer
    except ImportError as exc:
        raise ImportError(
            f"stemmer={algorithm!r} needs PyStemmer, which is not installed: pip install neurank[stem]"
        ) from exc
    if algorithm not in Stemmer.algorithms():
        raise ValueError(f"unknown stemmer {algorithm!r}; PyStemmer offers {', '.join(Stemmer.algorithms())}")
    return Stemmer.Stemmer(algorithm)
