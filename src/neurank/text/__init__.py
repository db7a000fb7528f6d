"""Text to ids: the word tokenizer and the vocabulary (PAD id 0, UNK id 1)."""

from neurank.text.tokenizer import Tokenizer, TokenizerConfig
from neurank.text.vocab import PAD, PAD_ID, UNK, UNK_ID, Vocab

__all__ = ["PAD", "PAD_ID", "UNK", "UNK_ID", "Tokenizer", "TokenizerConfig", "Vocab"]
