"""Full-text search over a knowledge base: SQLite FTS5 (bm25) over words cut by jieba.

FTS5's own tokenizers cannot split Chinese into words, so both the entries and the query are
cut by jieba's search mode (which also yields the shorter words inside a long one: 住房公积金 →
住房, 公积, 积金, 公积金) and joined by spaces; FTS5's ``unicode61`` tokenizer then splits on
those spaces. A query matches an entry sharing any of its words (OR), ranked by bm25 with the
question weighing most, then the keywords (synonyms the reviewers add), then the answer. So
"提取公积金" finds "公积金提取". Built once per loaded base; read-only afterwards.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, Protocol

from knowledge.model import Entry

MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 32
MAX_MATCHES = 500  # rows taken from FTS5 before ranking by use and cutting to the page
WEIGHTS = (4.0, 3.0, 1.0)  # bm25 column weights: question, keywords, answer
# words that say nothing about the matter: dropped from queries (entries keep them)
STOPWORDS = frozenset(
    {
        "的",
        "了",
        "吗",
        "呢",
        "吧",
        "啊",
        "我",
        "我们",
        "你",
        "您",
        "要",
        "想",
        "请问",
        "请",
        "问",
        "一下",
        "怎么",
        "怎么办",
        "怎样",
        "如何",
        "什么",
        "哪里",
        "哪儿",
        "哪个",
        "可以",
        "能",
        "能不能",
        "需要",
        "办",
        "办理",
        "去",
        "在",
        "和",
        "与",
        "是",
        "有",
        "没有",
        "",
    }
)


class Segmenter(Protocol):
    """Cuts text into words."""

    def words(self, text: str) -> list[str]: ...


class JiebaSegmenter:
    """jieba's search-mode cut, its dictionary loaded once per process on first use (about a
    second, and some 60 MB: the 17 platforms of ``stack --platforms all`` share one)."""

    _tokenizer: ClassVar[Any] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def words(self, text: str) -> list[str]:
        cut = self._shared().cut_for_search(text.lower())
        return [word.strip() for word in cut if any(ch.isalnum() for ch in word)]

    @classmethod
    def _shared(cls) -> Any:
        with cls._lock:
            if cls._tokenizer is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)  # it logs the dictionary loading at DEBUG
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                cls._tokenizer = tokenizer
            return cls._tokenizer


@dataclass(frozen=True)
class Match:
    entry: Entry
    score: float  # bm25: lower is better


def _phrase(word: str) -> str:
    """A word as an FTS5 string: quoted, so no word is read as query syntax (OR, NEAR, *, ^)."""
    return '"' + word.replace('"', '""') + '"'


class SearchIndex:
    """An in-memory FTS5 table of one knowledge base's entries."""

    def __init__(self, entries: Sequence[Entry], segmenter: Segmenter) -> None:
        self.entries = tuple(entries)
        self._segmenter = segmenter
        # built in a worker thread, then read on the event loop only
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE VIRTUAL TABLE kb USING fts5("
            "question, keywords, answer, platform UNINDEXED, matter_type UNINDEXED,"
            " valid_from UNINDEXED, valid_until UNINDEXED, tokenize='unicode61 remove_diacritics 0')"
        )
        cut = segmenter.words
        self._db.executemany(
            "INSERT INTO kb(rowid, question, keywords, answer, platform, matter_type, valid_from, valid_until)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    row,
                    " ".join(cut(entry.question)),
                    " ".join(word for keyword in entry.keywords for word in (keyword.lower(), *cut(keyword))),
                    " ".join(cut(entry.answer)),
                    entry.platform,
                    entry.matter_type,
                    entry.valid_from.isoformat() if entry.valid_from else "",
                    entry.valid_until.isoformat() if entry.valid_until else "",
                )
                for row, entry in enumerate(self.entries)
            ],
        )
        self._db.commit()

    def query_words(self, query: str) -> list[str]:
        """The words of a query that are searched for (stop words dropped, bounded)."""
        words = [w for w in self._segmenter.words(query[:MAX_QUERY_CHARS]) if w not in STOPWORDS]
        return list(dict.fromkeys(words))[:MAX_QUERY_WORDS]

    def search(self, query: str, platforms: Sequence[str], matter_type: str, day: date) -> list[Match]:
        """Entries of ``platforms`` (and ``matter_type``, if not empty) valid on ``day`` that share
        a word with ``query``, best first (at most MAX_MATCHES)."""
        words = self.query_words(query)
        if not words or not platforms:
            return []
        marks = ",".join("?" * len(platforms))
        today = day.isoformat()
        rows = self._db.execute(
            f"SELECT rowid, bm25(kb, {', '.join(map(str, WEIGHTS))}) AS score FROM kb"  # noqa: S608 (only ?s)
            f" WHERE kb MATCH ? AND platform IN ({marks}) AND (? = '' OR matter_type = ?)"
            " AND (valid_from = '' OR valid_from <= ?) AND (valid_until = '' OR valid_until >= ?)"
            " ORDER BY score LIMIT ?",
            (" OR ".join(_phrase(w) for w in words), *platforms, matter_type, matter_type, today, today, MAX_MATCHES),
        ).fetchall()
        return [Match(self.entries[row], score) for row, score in rows]
