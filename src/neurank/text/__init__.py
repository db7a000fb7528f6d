"""Text to ids: the word tokenizer and the vocabulary (PAD id 0, UNK id 1), behind the `TextEncoder` interface."""

from neurank.text.encoder import ENCODERS, TextEncoder, WordEncoder, encoder_from_dict
from neurank.text.tokenizer import Tokenizer, TokenizerConfig
from neurank.text.vocab import PAD, PAD_ID, UNK, UNK_ID, Vocab

__all__ = [
    "ENCODERS",
    "PAD",
    "PAD_ID",
    "UNK",
    "UNK_ID",
    "TextEncoder",
    "Tokenizer",
    "TokenizerConfig",
    "Vocab",
    "WordEncoder",
    "encoder_from_dict",
]
