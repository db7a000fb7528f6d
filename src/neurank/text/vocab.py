"""The vocabulary: a fixed, deterministic mapping between tokens and integer ids, saved as JSON.

Id 0 is PAD ("<pad>"), id 1 is UNK ("<unk>"); the regular tokens follow by frequency (descending), ties broken by
the token (ascending), so the same counts always give the same ids.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from neurank.collections.errors import FormatError
from neurank.collections.textio import atomic_write, require_file

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
SPECIALS = (PAD, UNK)


class Vocab:
    """Maps tokens to ids and back. PAD is id 0, UNK is id 1; unknown tokens encode to UNK.

    Args:
        tokens: the regular tokens in id order (ids 2, 3, ...), without PAD and UNK.
        counts: optional token -> corpus count, kept for inspection and saved with the vocabulary.
        min_freq, max_size: the build settings, recorded (not re-applied) so a saved file says how it was made.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        counts: Mapping[str, int] | None = None,
        *,
        min_freq: int = 1,
        max_size: int | None = None,
    ):
        self._id_to_token = [*SPECIALS, *tokens]
        self._token_to_id = {token: i for i, token in enumerate(self._id_to_token)}
        if len(self._token_to_id) != len(self._id_to_token):
            repeated = sorted(token for token, n in Counter(self._id_to_token).items() if n > 1)
            raise ValueError(f"vocabulary tokens must be unique and exclude {PAD!r}/{UNK!r}; repeated: {repeated[:10]}")
        self.counts = {token: int(counts[token]) for token in tokens if token in counts} if counts else {}
        self.min_freq = min_freq
        self.max_size = max_size

    @classmethod
    def from_counter(cls, counts: Mapping[str, int], *, min_freq: int = 1, max_size: int | None = None) -> Vocab:
        """Build from token counts.

        Args:
            counts: token -> count (a `Counter`); "<pad>" and "<unk>" entries are ignored.
            min_freq: keep tokens seen at least this often.
            max_size: the largest `len(vocab)`, PAD and UNK included (so at least 2); None for no limit.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < len(SPECIALS):
            raise ValueError(f"max_size must be >= {len(SPECIALS)} (it counts PAD and UNK), got {max_size}")
        kept = sorted(
            (token for token, count in counts.items() if count >= min_freq and token not in SPECIALS),
            key=lambda token: (-counts[token], token),
        )
        if max_size is not None:
            kept = kept[: max_size - len(SPECIALS)]
        return cls(kept, counts, min_freq=min_freq, max_size=max_size)

    @classmethod
    def build(cls, token_lists: Iterable[Iterable[str]], *, min_freq: int = 1, max_size: int | None = None) -> Vocab:
        """Count the tokens of tokenized texts and build a vocabulary (see `from_counter` for the settings)."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):
                raise TypeError("Vocab.build expects token lists (e.g. Tokenizer.tokenize_batch output), got a str")
            counts.update(tokens)
        return cls.from_counter(counts, min_freq=min_freq, max_size=max_size)

    def __len__(self) -> int:
        return len(self._id_to_token)

    def __contains__(self, token: object) -> bool:
        return token in self._token_to_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return (self._id_to_token, self.counts, self.min_freq, self.max_size) == (
            other._id_to_token,
            other.counts,
            other.min_freq,
            other.max_size,
        )

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, min_freq={self.min_freq}, max_size={self.max_size})"

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order, PAD and UNK first."""
        return list(self._id_to_token)

    def token_to_id(self, token: str) -> int:
        """Return the id of `token`, or UNK_ID when it is not in the vocabulary."""
        return self._token_to_id.get(token, UNK_ID)

    def id_to_token(self, token_id: int) -> str:
        """Return the token with id `token_id`; IndexError when there is none."""
        if not 0 <= token_id < len(self._id_to_token):
            raise IndexError(f"token id {token_id} out of range for a vocabulary of {len(self)} tokens")
        return self._id_to_token[token_id]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Map tokens to ids; unknown tokens become UNK_ID."""
        get = self._token_to_id.get
        return [get(token, UNK_ID) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids back to tokens (PAD ids decode to "<pad>"); accepts lists, numpy arrays and 1-d tensors."""
        return [self.id_to_token(int(token_id)) for token_id in ids]

    def to_dict(self) -> dict[str, Any]:
        """Return the vocabulary as a JSON-safe dict: tokens in id order, their counts and the build settings."""
        return {
            "tokens": self.tokens,
            "counts": [self.counts.get(token, 0) for token in self._id_to_token],
            "min_freq": self.min_freq,
            "max_size": self.max_size,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str | Path = "<vocabulary dict>") -> Vocab:
        """Rebuild a vocabulary from `to_dict()` output; a FormatError naming `source` says what is wrong."""
        expected = 'a JSON object with "tokens" (a list of strings) and optional "counts", "min_freq", "max_size"'
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise FormatError(source, None, expected, _shown(data))
        tokens, counts = data["tokens"], data.get("counts")
        if not all(isinstance(token, str) for token in tokens):
            raise FormatError(source, None, '"tokens" to hold only strings', _shown(tokens))
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise FormatError(source, None, f'"tokens" to start with {PAD!r} (id 0) and {UNK!r} (id 1)', _shown(tokens))
        if counts is not None and (
            not isinstance(counts, list) or len(counts) != len(tokens) or not all(type(n) is int for n in counts)
        ):
            expected = f'"counts" to be a list of {len(tokens)} integers, one per token'
            raise FormatError(source, None, expected, _shown(counts))
        min_freq, max_size = data.get("min_freq", 1), data.get("max_size")
        if type(min_freq) is not int or not (max_size is None or type(max_size) is int):
            raise FormatError(source, None, '"min_freq" to be an integer and "max_size" an integer or null')
        try:
            return cls(
                tokens[len(SPECIALS) :],
                dict(zip(tokens, counts or [], strict=False)),
                min_freq=min_freq,
                max_size=max_size,
            )
        except ValueError as exc:
            raise FormatError(source, None, "unique tokens", str(exc)) from None

    def save(self, path: str | Path) -> None:
        """Write the vocabulary to `path` as JSON; the file is replaced only once the new one is complete."""
        with atomic_write(path) as handle:
            json.dump(self.to_dict(), handle, ensure_ascii=False, indent=1)
            handle.write("\n")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """Read a vocabulary written by `save`; FileNotFoundError or FormatError naming the file if it is unusable."""
        path = require_file(path, "vocabulary file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise FormatError(path, None, "a UTF-8 JSON vocabulary file", str(exc)) from None
        except json.JSONDecodeError as exc:
            raise FormatError(path, exc.lineno, f"a JSON vocabulary file ({exc.msg} at column {exc.colno})") from None
        return cls.from_dict(data, source=path)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return f"an object with keys {sorted(value)[:8]}"
    return repr(value[:5]) if isinstance(value, list) else f"a {type(value).__name__}"
