"""Train the student's WordPiece tokenizer on the training templates (`tokenizers`, BERT-style).

Mask placeholders (<NUM>, <IP>, ...) are added tokens, so each is one token rather than three.
Only training-split text goes in: held-out templates must not shape the vocabulary.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from service.masking import MASK_RULES

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
PLACEHOLDERS = sorted({placeholder for placeholder, _ in MASK_RULES})


def train_wordpiece(texts: list[str], vocab_size: int = 4000, min_frequency: int = 2) -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, clean_text=True, strip_accents=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=SPECIAL_TOKENS)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.add_special_tokens(PLACEHOLDERS)
    return with_cls_sep(tokenizer)


def with_cls_sep(tokenizer: Tokenizer) -> Tokenizer:
    """Frame every encoding as [CLS] text [SEP], the layout the student is trained on."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return tokenizer
