"""Quality filters applied while creating, beyond the paper's method (issue 14): answer-position
debiasing for multiple choice, near-duplicate rejection, label balance. Verification is in
verify.py. Everything here but `Quality.screen` (which may await the sentence encoder) is pure
and synchronous, so the engine can run `admit` and its write with no await between them.

- Position debiasing (`OptionPlacer`): a created multiple-choice record's options are reordered
  before it is written, the label following its option. The label goes to the position furthest
  below its target share so far (uniform, or the human split's shares with --label_balance
  reference); ties and the order of the other options come from a hash of the run's seed and the
  question, so the placement is reproducible and a resumed run continues the same counts.
- Near-duplicates (`NearDuplicates`): a question whose embedding has a cosine above the
  threshold with an accepted question (or an earlier one of the same reply) is rejected; with no
  sentence encoder loaded, MinHash estimates of the Jaccard similarity of character 5-grams of
  the question's content words (lexical_key) stand in. Both use an index, not a scan of every
  pair (see VectorIndex and MinHashIndex).
- Label balance (`LabelBalance`): a record whose label (yes/no) or answer position (multiple
  choice without debiasing) would push that class's share above target + tolerance is rejected;
  the file meets the shares within the tolerance at every point of the run, the end included.

Reason codes, counted in the run summary's `rejected` like the parser's.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator, Sequence

import numpy as np

from .parse import DUPLICATE, question_key
from .records import YES_NO_OPTIONS, Record

NEAR_DUPLICATE = "near_duplicate"
LABEL_OVER_REPRESENTED = "label_over_represented"

NEAR_DUP_MODES = ("auto", "embedding", "minhash", "off")
BALANCE_MODES = ("uniform", "reference")
# Chosen by measurement on the human data (README.md, "Better data"; `python -m benchmarks.filters
# threshold`): the human dev questions of every dataset but WinoGrande (minimal pairs by design),
# fed back in a random order, are rejected under 1% of the time, pooled; 0.92 (cosine) and 0.6
# (Jaccard) are the lowest such thresholds, so they catch the most paraphrases while human-like
# data passes.
DEFAULT_COSINE = 0.92
DEFAULT_JACCARD = 0.6
DEFAULT_TOLERANCE = 0.02
# 128 permutations in 32 bands caught no more of the simulator's paraphrases (95.7% against 95.6%
# over four seeds of benchmarks.filters sim's run) at twice the cost
NUM_PERM, BANDS = 64, 16

Encode = Callable[[Sequence[str]], Awaitable[np.ndarray]]


def stable_hash(seed: int, text: str) -> int:
    """A 64-bit hash of (seed, text) that is the same in every process (unlike hash())."""
    digest = hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _draws(state: int) -> Iterator[int]:
    """32-bit numbers from a 64-bit seed (a linear congruential generator, Knuth's MMIX
    constants): cheap, and the same in every process."""
    while True:
        state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        yield state >> 32


# --- answer positions and labels ---------------------------------------------------------------


def class_of(record: Record) -> int:
    """What balance is kept over: the label for yes/no (0 True, 1 False), else the answer's
    position among the options."""
    if record.yes_no:
        return YES_NO_OPTIONS.index(record.label)
    return record.label_index


def class_names(yes_no: bool, num_options: int) -> list[str]:
    return list(YES_NO_OPTIONS) if yes_no else [str(i) for i in range(num_options)]


def reference_shares(records: Sequence[Record], yes_no: bool, num_options: int) -> list[float]:
    """Each class's share in human records of the same shape (yes/no labels, or answer
    positions of records with `num_options` options)."""
    counts = [0] * (2 if yes_no else num_options)
    for r in records:
        if r.yes_no == yes_no and (yes_no or len(r.options) == num_options):
            counts[class_of(r)] += 1
    total = sum(counts)
    return [c / total for c in counts] if total else []


class OptionPlacer:
    """Multiple choice: reorder each record's options so the answer positions follow `shares`."""

    def __init__(self, num_options: int, seed: int, shares: Sequence[float] | None = None) -> None:
        self.num_options = num_options
        self.seed = seed
        self.shares = list(shares) if shares else [1.0 / num_options] * num_options
        self.counts = [0] * num_options

    def observe(self, record: Record) -> None:
        """A record already in the output (resume) or just written."""
        if len(record.options) == self.num_options:
            self.counts[record.label_index] += 1

    def place(self, record: Record) -> Record:
        """The record with its options reordered; counts it."""
        k = len(record.options)
        if k != self.num_options:
            return record
        draws = _draws(stable_hash(self.seed, question_key(record.question)))
        n = sum(self.counts) + 1
        tie = [next(draws) for _ in range(k)]
        position = max(range(k), key=lambda i: (round(self.shares[i] * n - self.counts[i], 9),
                                                tie[i]))
        others = [o for i, o in enumerate(record.options) if i != record.label_index]
        for i in range(len(others) - 1, 0, -1):  # Fisher-Yates
            j = next(draws) % (i + 1)
            others[i], others[j] = others[j], others[i]
        options = (*others[:position], record.label, *others[position:])
        placed = Record(record.question, record.context, options, record.label)
        self.observe(placed)
        return placed


class LabelBalance:
    """Keeps every class's share within `tolerance` of its target share in a file of `total`
    records by refusing records: a record of class c is allowed when, counting it (n records),
      - count(c) <= max((share(c) + tolerance) n, share(c) n + 1): no class runs above its
        band at any point (the one record of slack lets a run start), and
      - the records still to come can bring every other class d up to
        ceil((share(d) - tolerance) total): a rare class cannot be asked for, only waited for,
        so room is kept for it.
    At the end (n = total >= 1 / tolerance) every class is within the tolerance."""

    def __init__(self, shares: Sequence[float], tolerance: float, total: int) -> None:
        self.shares = list(shares)
        self.tolerance = tolerance
        self.total = total
        self.floors = [math.ceil((s - tolerance) * total - 1e-9) for s in shares]
        self.counts = [0] * len(shares)
        # records being verified, counted as if written, so that verification is not spent on
        # records their class will have no room for by the time the votes are in
        self.pending = [0] * len(shares)

    def allows(self, record: Record, with_pending: bool = False) -> bool:
        c = class_of(record)
        if c >= len(self.counts):
            return True
        counts = list(self.counts)
        if with_pending:
            counts = [a + b for a, b in zip(self.counts, self.pending)]
        counts[c] += 1
        n, share = sum(counts), self.shares[c]
        if counts[c] > max((share + self.tolerance) * n, share * n + 1) + 1e-9:
            return False
        owed = sum(max(0, floor - count) for floor, count in zip(self.floors, counts))
        return owed <= max(0, self.total - n)

    def reserve(self, record: Record, amount: int = 1) -> None:
        c = class_of(record)
        if c < len(self.pending):
            self.pending[c] += amount

    def add(self, record: Record) -> None:
        c = class_of(record)
        if c < len(self.counts):
            self.counts[c] += 1


# --- near-duplicate indexes ----------------------------------------------------------------------


class VectorIndex:
    """The highest cosine of a query with the added rows (all L2-normalised).

    Below `exact_below` rows, and without faiss, an exact scan over a growing numpy array; past
    it an HNSW graph (faiss, one thread): a reply's 5 queries cost 1.5 ms at 50k human questions
    where the scan costs 14 ms, and the scan grows with the rows while the graph barely does
    (benchmarks/filters.py index)."""

    def __init__(self, dim: int, exact_below: int = 20000, hnsw: bool | None = None) -> None:
        self.dim = dim
        self.n = 0
        self._rows = np.zeros((1024, dim), dtype=np.float32)
        self.exact_below = exact_below
        self._hnsw: Any = None
        self._use_hnsw = hnsw
        if hnsw is None:
            try:
                import faiss  # noqa: F401

                self._use_hnsw = True
            except ImportError:
                self._use_hnsw = False

    @property
    def kind(self) -> str:
        return "hnsw" if self._hnsw is not None else "exact"

    def _start_hnsw(self) -> None:
        import faiss

        faiss.omp_set_num_threads(1)  # the event loop needs the other core
        index = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        index.hnsw.efSearch = 64
        index.add(self._rows[: self.n])
        self._hnsw = index
        self._rows = np.zeros((0, self.dim), dtype=np.float32)  # the graph holds them now

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if self._hnsw is not None:
            self._hnsw.add(vectors)
            self.n += len(vectors)
            return
        need = self.n + len(vectors)
        if need > len(self._rows):
            grown = np.zeros((max(need, 2 * len(self._rows)), self.dim), dtype=np.float32)
            grown[: self.n] = self._rows[: self.n]
            self._rows = grown
        self._rows[self.n : need] = vectors
        self.n = need
        if self._use_hnsw and self.n >= self.exact_below:
            self._start_hnsw()

    def max_similarity(self, queries: np.ndarray) -> np.ndarray:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        best = np.full(len(queries), -np.inf, dtype=np.float32)
        if self.n == 0 or not len(queries):
            return best
        if self._hnsw is not None:
            scores, _ = self._hnsw.search(queries, 1)
            return scores[:, 0].astype(np.float32)
        for start in range(0, self.n, 65536):
            block = self._rows[start : min(self.n, start + 65536)]
            np.maximum(best, (queries @ block.T).max(axis=1), out=best)
        return best


# English function words (NLTK's list is the model, plus the modals it lacks): a paraphrase swaps,
# drops and adds them freely ("Would a ..." / "Could the ..."), so they are noise to a lexical
# measure and, in a short question, most of its 5-grams. Negations stay: they change the meaning.
FUNCTION_WORDS = frozenset("""
a an the this that these those i me my myself we our ours ourselves you your yours yourself
yourselves he him his himself she her hers herself it its itself they them their theirs themselves
what which who whom whose why how when where is are was were be been being am have has had having
do does did doing will would shall should can could may might must of at by for with about
against between into through during before after above below to from up down in out on off over
under again further then once here there all any both each few more most other some such only own
same so than too very just and but if or because as until while nor
""".split())  # noqa: SIM905 (128 words read better as text)
_CONTRACTIONS = ((re.compile(r"\bwon't\b"), "will not"),
                 (re.compile(r"\bcan(?:'t|not)\b"), "can not"), (re.compile(r"n't\b"), " not"))
_WORD = re.compile(r"[^\W_]+")  # letters and digits, any script


def lexical_key(question: str) -> str:
    """What MinHash compares: the question's words, case folded, punctuation gone, "n't" spelt
    "not", function words left out (all kept if nothing else is left), one space apart."""
    text = question.casefold().replace("\u2019", "'")
    for pattern, spelt in _CONTRACTIONS:
        text = pattern.sub(spelt, text)
    words = _WORD.findall(text)
    return " ".join([w for w in words if w not in FUNCTION_WORDS] or words)


class MinHasher:
    """MinHash signatures of the character n-grams of the question's lexical_key:
    each n-gram's polynomial hash h goes through `num_perm` multiply-shift hash functions
    ((a h + b) mod 2^64) >> 32, and a signature keeps each function's minimum; the share of
    equal entries of two signatures estimates the Jaccard similarity of their n-gram sets.
    Vectorised over all the n-grams of a batch of texts (benchmarks/filters.py index)."""

    _SEGMENT = np.uint64(41)  # n-gram hashes < 257^5 < 2^41; the text's number above them

    def __init__(self, num_perm: int = NUM_PERM, ngram: int = 5, seed: int = 1) -> None:
        if 257**ngram >= 2**41:
            raise ValueError("ngram must be at most 5")
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.ngram = ngram
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def signatures(self, texts: Sequence[str], chunk: int = 256) -> np.ndarray:
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        for first in range(0, len(texts), chunk):
            part = texts[first : first + chunk]
            out[first : first + len(part)] = self._signatures(part)
        return out

    def _signatures(self, texts: Sequence[str]) -> np.ndarray:
        n = self.ngram
        keys = [lexical_key(t).encode().ljust(n) for t in texts]  # every text has an n-gram
        lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
        data = np.frombuffer(b"".join(keys), dtype=np.uint8).astype(np.uint64)
        windows = len(data) - n + 1
        hashes = np.zeros(windows, dtype=np.uint64)
        for i in range(n):
            hashes = hashes * np.uint64(257) + data[i : i + windows]
        text = np.repeat(np.arange(len(keys), dtype=np.uint64), lengths)[:windows]
        starts = np.cumsum(lengths) - lengths
        inside = np.arange(windows) - starts[text.astype(np.int64)] <= \
            (lengths - n)[text.astype(np.int64)]  # the n-gram does not cross into the next text
        grams = np.unique((text[inside] << self._SEGMENT) | hashes[inside])  # per text, distinct
        owner = (grams >> self._SEGMENT).astype(np.int64)
        grams &= np.uint64((1 << 41) - 1)
        with np.errstate(over="ignore"):
            values = (grams[:, None] * self.a + self.b) >> np.uint64(32)
        first_of_text = np.searchsorted(owner, np.arange(len(keys)))
        return np.minimum.reduceat(values, first_of_text, axis=0).astype(np.uint32)


class MinHashIndex:
    """Locality-sensitive hashing over MinHash signatures: the signature is cut into `bands`
    bands; rows that share a whole band are candidates, and the candidates' signatures give the
    estimated Jaccard similarity. With 64 permutations in 16 bands of 4, a pair shares a band
    with probability 1 - (1 - J^4)^16: 0.89 at Jaccard 0.6, 0.96 at 0.65, 0.9985 at 0.7."""

    def __init__(self, num_perm: int = NUM_PERM, bands: int = BANDS) -> None:
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of bands")
        self.num_perm = num_perm
        self.bands = bands
        self.rows = num_perm // bands
        # one 64-bit key per band: a random linear combination of its values (mod 2^64)
        self._mix = np.random.default_rng(2).integers(1, 2**63, size=self.rows, dtype=np.uint64)
        self._buckets: list[dict[int, list[int]]] = [defaultdict(list) for _ in range(bands)]
        self._sigs = np.zeros((1024, num_perm), dtype=np.uint32)
        self.n = 0

    def _keys(self, sigs: np.ndarray) -> list[list[int]]:
        bands = sigs.astype(np.uint64).reshape(len(sigs), self.bands, self.rows)
        with np.errstate(over="ignore"):
            return (bands * self._mix).sum(axis=2).tolist()

    def add(self, sigs: np.ndarray) -> None:
        sigs = np.asarray(sigs, dtype=np.uint32).reshape(-1, self.num_perm)
        while self.n + len(sigs) > len(self._sigs):
            self._sigs = np.concatenate([self._sigs, np.zeros_like(self._sigs)])
        self._sigs[self.n : self.n + len(sigs)] = sigs
        for keys in self._keys(sigs):
            for bucket, key in zip(self._buckets, keys):
                bucket[key].append(self.n)
            self.n += 1

    def max_similarity(self, sigs: np.ndarray) -> np.ndarray:
        sigs = np.asarray(sigs, dtype=np.uint32).reshape(-1, self.num_perm)
        best = np.zeros(len(sigs), dtype=np.float32)
        for i, keys in enumerate(self._keys(sigs)):
            candidates: set[int] = set()
            for bucket, key in zip(self._buckets, keys):
                found = bucket.get(key)
                if found:
                    candidates.update(found)
            if candidates:
                rows = self._sigs[np.fromiter(candidates, dtype=np.int64, count=len(candidates))]
                best[i] = np.count_nonzero(rows == sigs[i], axis=1).max() / self.num_perm
        return best


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise estimated Jaccard similarity of two sets of signatures (len(a) x len(b))."""
    return (a[:, None, :] == b[None, :, :]).mean(axis=2)


class NearDuplicates:
    """Rejects questions too similar to an accepted one: cosine of sentence embeddings
    (`encode` given) or estimated Jaccard of character 5-grams (MinHash)."""

    def __init__(self, threshold: float, encode: Encode | None = None, dim: int = 384) -> None:
        self.threshold = threshold
        self.encode = encode
        self.kind = "embedding" if encode is not None else "minhash"
        self.hasher = MinHasher() if encode is None else None
        self.index: VectorIndex | MinHashIndex | None = (
            MinHashIndex() if self.hasher is not None else None)
        self.dim = dim

    async def features(self, questions: Sequence[str]) -> np.ndarray:
        if self.encode is not None:
            vectors = np.asarray(await self.encode(list(questions)), dtype=np.float32)
            if self.index is None:
                self.index = VectorIndex(vectors.shape[1] if vectors.ndim == 2 else self.dim)
            return vectors
        assert self.hasher is not None
        return self.hasher.signatures(questions)

    def similarity_to_index(self, features: np.ndarray) -> np.ndarray:
        if self.index is None or not len(features):
            return np.full(len(features), -np.inf, dtype=np.float32)
        return self.index.max_similarity(features)

    def pairwise(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.encode is not None:
            return a @ b.T
        return estimated_jaccard(a, b)

    def add(self, features: np.ndarray) -> None:
        if not len(features):
            return
        if self.index is None:
            self.index = VectorIndex(features.shape[1])
        self.index.add(features)

    @property
    def size(self) -> int:
        return self.index.n if self.index is not None else 0


# --- the whole: what the engine calls ------------------------------------------------------------


@dataclass
class QualityOptions:
    """The filters of one run (from the options table; see RunConfig)."""

    shuffle_options: bool = False
    near_dup: str = "off"  # embedding | minhash | off (auto is resolved before the run)
    near_dup_threshold: float = DEFAULT_COSINE
    minhash_threshold: float = DEFAULT_JACCARD
    label_balance: str | None = None  # uniform | reference | None
    label_tolerance: float = DEFAULT_TOLERANCE
    verify: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Candidate:
    record: Record
    feature: np.ndarray | None = None


@dataclass
class Quality:
    """The filters of one run and their state, rebuilt from the output on resume."""

    options: QualityOptions
    yes_no: bool
    num_options: int
    seed: int
    placer: OptionPlacer | None = None
    balance: LabelBalance | None = None
    near: NearDuplicates | None = None
    target_shares: list[float] | None = None
    rejected_here: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, options: QualityOptions, yes_no: bool, num_options: int, seed: int,
              reference: list[float] | None = None, encode: Encode | None = None,
              target: int = 0) -> "Quality":
        """reference: the human split's class shares (needed for label_balance reference);
        target: the number of records the file will hold (label balance plans for it)."""
        q = cls(options, yes_no, num_options, seed)
        k = 2 if yes_no else num_options
        if options.label_balance == "reference":
            if not reference or len(reference) != k:
                raise ValueError("label_balance reference needs the human split's shares")
            q.target_shares = list(reference)
        elif options.label_balance == "uniform":
            q.target_shares = [1.0 / k] * k
        if options.shuffle_options and not yes_no:
            q.placer = OptionPlacer(num_options, seed, q.target_shares)
        elif q.target_shares is not None:
            q.balance = LabelBalance(q.target_shares, options.label_tolerance, target)
        if options.near_dup == "embedding":
            if encode is None:
                raise ValueError("near_dup embedding needs a sentence encoder")
            q.near = NearDuplicates(options.near_dup_threshold, encode)
        elif options.near_dup == "minhash":
            q.near = NearDuplicates(options.minhash_threshold)
        return q

    @property
    def active(self) -> bool:
        return bool(self.placer or self.balance or self.near)

    @property
    def awaits(self) -> bool:
        """Whether screening awaits (the encoder), so admit must recheck what others added."""
        return self.near is not None and self.near.encode is not None

    async def restore(self, records: Sequence[Record], chunk: int = 4096) -> None:
        """The state of an existing output: counts, and the index of its questions."""
        for r in records:
            if self.placer is not None:
                self.placer.observe(r)
            if self.balance is not None:
                self.balance.add(r)
        if self.near is not None:
            for start in range(0, len(records), chunk):
                part = [r.question for r in records[start : start + chunk]]
                self.near.add(await self.near.features(part))

    async def screen(self, records: Sequence[Record], rejected: Any) -> list[Candidate]:
        """Features, and an early look at what admit will refuse (so that verification is not
        spent on it): near-duplicates of accepted questions or of earlier ones of this reply,
        and over-represented labels."""
        if not records:
            return []
        features = to_index = pairs = None
        if self.near is not None:  # one query of the index and one matrix for the whole reply
            features = await self.near.features([r.question for r in records])
            to_index = self.near.similarity_to_index(features) > self.near.threshold
            pairs = self.near.pairwise(features, features) > self.near.threshold
        out = []
        rows: list[int] = []  # the reply's questions kept so far
        for i, record in enumerate(records):
            if features is not None and (to_index[i] or pairs[i, rows].any()):
                rejected[NEAR_DUPLICATE] += 1
            elif self.balance is not None and not self.balance.allows(record, with_pending=True):
                rejected[LABEL_OVER_REPRESENTED] += 1
            else:
                out.append(Candidate(record, features[i] if features is not None else None))
                rows.append(i)
                if self.balance is not None:
                    self.balance.reserve(record)
        return out

    def release(self, candidates: Sequence[Candidate]) -> None:
        """The screened candidates' reservations end (call before admit, with no await
        between)."""
        if self.balance is not None:
            for cand in candidates:
                self.balance.reserve(cand.record, -1)

    def _near_duplicate(self, cand: Candidate, others: list[Any]) -> bool:
        if self.near is None or cand.feature is None:
            return False
        threshold = self.near.threshold
        feature = cand.feature[None, :]
        if self.near.similarity_to_index(feature)[0] > threshold:
            return True
        others = [o for o in others if o is not None]
        return bool(others) and bool(self.near.pairwise(feature, np.stack(others)).max()
                                     > threshold)

    def admit(self, candidates: Sequence[Candidate], seen: set[str], room: int,
              rejected: Any, recheck: bool = True) -> tuple[list[Candidate], int]:
        """Synchronous: the final checks against everything accepted so far (other requests may
        have added records while this one awaited: `recheck`), then placement and indexing of
        the kept ones. Returns the candidates to write (at most `room`, options placed) and how
        many passed every check."""
        kept: list[Record] = []
        kept_features: list[Any] = []
        kept_keys: set[str] = set()
        passed = 0
        for cand in candidates:
            record = cand.record
            key = question_key(record.question)
            if key in seen or key in kept_keys:
                rejected[DUPLICATE] += 1
                continue
            if recheck and self._near_duplicate(cand, kept_features):
                rejected[NEAR_DUPLICATE] += 1
                continue
            if self.balance is not None and not self.balance.allows(record):
                rejected[LABEL_OVER_REPRESENTED] += 1
                continue
            passed += 1
            if len(kept) >= room:
                continue
            if self.placer is not None:
                record = self.placer.place(record)
            if self.balance is not None:
                self.balance.add(record)
            kept.append(record)
            kept_features.append(cand.feature)
            kept_keys.add(key)
        if self.near is not None and kept:
            self.near.add(np.stack(kept_features))
        return [Candidate(r, f) for r, f in zip(kept, kept_features)], passed

    def state(self) -> dict[str, Any]:
        """For the run summary."""
        out: dict[str, Any] = {"options": self.options.to_json()}
        names = class_names(self.yes_no, self.num_options)
        counts = (self.placer.counts if self.placer is not None else
                  self.balance.counts if self.balance is not None else None)
        if counts is not None:
            total = sum(counts)
            out["class_shares"] = {n: (c / total if total else None)
                                   for n, c in zip(names, counts)}
        if self.target_shares is not None:
            out["target_shares"] = dict(zip(names, self.target_shares))
        if self.near is not None:
            out["near_duplicate_index"] = {"kind": self.near.kind, "size": self.near.size,
                                           "threshold": self.near.threshold}
        return out
