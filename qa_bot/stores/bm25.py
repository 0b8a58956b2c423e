"""The one BM25 formula (Lucene's, bm25s' default): both stores and the answer layer use it.

The FAISS store passes K1 and B to bm25s, which computes the same idf internally; the Milvus
store rescores Milvus' candidates with :func:`term_scores` over collection-wide statistics;
answers weigh question tokens by :func:`idf`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

K1 = 1.5
B = 0.75


def idf(document_frequency: int, passages: int) -> float:
    """Inverse document frequency of a token found in `document_frequency` of `passages` passages."""
    return math.log(1 + (passages - document_frequency + 0.5) / (document_frequency + 0.5))


def score(query: Iterable[str], document: list[str], idfs: dict[str, float], average_length: float) -> float:
    """BM25 of one tokenised passage for the query tokens (tokens without an idf count 0)."""
    tf = Counter(document)
    norm = K1 * (1 - B + B * len(document) / max(average_length, 1e-9))
    return sum(idfs[t] * tf[t] / (tf[t] + norm) for t in query if t in idfs and tf[t])
