"""Text to ids: the word tokenizer and the vocabulary (PAD id 0, UNK id 1), and a pretrained model's word pieces,
behind the `TextEncoder` interface."""

from neurank.text.encoder import (
    ENCODERS,
    TextEncoder,
    WordEncoder,
    WordPieceEncoder,
    check_hf_tokenizer_files,
    encoder_from_dict,
    load_hf_tokenizer,
    special_token_ids,
)
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
    "WordPieceEncoder",
    "check_hf_tokenizer_files",
    "encoder_from_dict",
    "load_hf_tokenizer",
    "special_token_ids",
]
