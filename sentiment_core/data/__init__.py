"""Reviews as tensors: where they come from (``sources``, ``aclimdb``), train / valid / test splits
(``splits``), tokenizers and the vocabulary (``text``), numericalized corpora cached on disk
(``corpus``) and length-bucketed batches (``batching``)."""

from .batching import Batch, batch_indices, make_batch
from .corpus import Corpus, EncodedSplit, load_corpus
from .sources import SOURCES, load_splits
from .splits import Split, Splits
from .text import TOKENIZERS, Vocabulary, get_tokenizer

__all__ = ["Batch", "batch_indices", "make_batch", "Corpus", "EncodedSplit", "load_corpus", "SOURCES", "load_splits",
           "Split", "Splits", "TOKENIZERS", "Vocabulary", "get_tokenizer"]
