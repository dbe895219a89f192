"""creator/filters.py: position debiasing, label balance, the near-duplicate indexes and the whole
screen/admit/restore cycle, on hand-made records (no server, no encoder)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import numpy as np
import pytest

from creator.filters import (
    DEFAULT_JACCARD,
    LABEL_OVER_REPRESENTED,
    NEAR_DUPLICATE,
    Candidate,
    LabelBalance,
    MinHasher,
    MinHashIndex,
    OptionPlacer,
    Quality,
    QualityOptions,
    VectorIndex,
    class_of,
    lexical_key,
    reference_shares,
    stable_hash,
)
from creator.parse import DUPLICATE
from creator.records import YES_NO_OPTIONS, Record


def mc(q: str, label_at: int = 0, k: int = 5) -> Record:
    options = tuple(f"{q} option {i}" for i in range(k))
    return Record(q, None, options, options[label_at])


def yn(q: str, label: bool) -> Record:
    return Record(q, None, YES_NO_OPTIONS, "True" if label else "False")


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


# --- position debiasing --------------------------------------------------------------------------


def test_placer_balances_positions_of_a_fully_biased_model_and_keeps_each_label():
    placer = OptionPlacer(5, seed=7)
    records = [mc(f"question {i}", label_at=0) for i in range(2000)]  # always option 0
    placed = [placer.place(r) for r in records]
    for before, after in zip(records, placed):
        assert after.label == before.label  # the label follows its option
        assert sorted(after.options) == sorted(before.options)
        assert after.question == before.question
    shares = Counter(r.label_index for r in placed)
    assert all(abs(shares[i] / 2000 - 0.2) <= 0.001 for i in range(5)), shares


def test_placer_is_reproducible_and_resumes_from_the_file():
    records = [mc(f"q{i}", label_at=i % 2) for i in range(300)]
    first = OptionPlacer(5, seed=3)
    whole = [first.place(r) for r in records]
    # a second run over the same records places them the same way
    again = OptionPlacer(5, seed=3)
    assert [again.place(r) for r in records] == whole
    # a resumed run: the first 120 are read back from the file, the rest placed as before
    resumed = OptionPlacer(5, seed=3)
    for r in whole[:120]:
        resumed.observe(r)
    assert [resumed.place(r) for r in records[120:]] == whole[120:]
    # another seed, another order
    other = OptionPlacer(5, seed=4)
    assert [other.place(r) for r in records] != whole


def test_placer_follows_given_shares():
    placer = OptionPlacer(2, seed=1, shares=[0.7, 0.3])
    placed = [placer.place(mc(f"q{i}", 1, k=2)) for i in range(1000)]
    assert Counter(r.label_index for r in placed)[0] == 700


def test_stable_hash_is_stable():
    assert stable_hash(1, "abc") == stable_hash(1, "abc") != stable_hash(2, "abc")
    assert stable_hash(0, "x") == 0x89E95ECA2EBF7289  # the same in every process and version


# --- label balance -------------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [0.5, 0.8, 0.95, 1.0])
def test_label_balance_keeps_shares_within_tolerance(skew):
    rng = random.Random(0)
    balance = LabelBalance([0.5, 0.5], tolerance=0.02, total=2000)
    for i in range(50000):
        record = yn(f"q{i}", rng.random() < skew)
        if balance.allows(record):
            balance.add(record)
        n = sum(balance.counts)
        # no label above its band at any point (one record of slack while the run is small)
        assert max(balance.counts) <= max(0.52 * n, 0.5 * n + 1) + 1e-9
        if n == 2000:
            break
    n = sum(balance.counts)
    if skew < 1.0:
        assert n == 2000
        assert abs(balance.counts[0] / n - 0.5) <= 0.02 + 1e-9
    else:  # a model that never says False: only the record of slack above its share
        assert balance.counts == [2, 0]


@pytest.mark.parametrize("seed", range(5))
def test_label_balance_keeps_room_for_rare_classes(seed):
    """Five classes, one of them rare: at the end every share is within the tolerance; the
    common classes are never above their band on the way."""
    rng = random.Random(seed)
    balance = LabelBalance([0.2] * 5, tolerance=0.02, total=1000)
    weights = [0.6, 0.2, 0.1, 0.07, 0.03]
    for i in range(300000):
        record = mc(f"q{i}", rng.choices(range(5), weights)[0])
        if balance.allows(record):
            balance.add(record)
        n = sum(balance.counts)
        assert max(balance.counts) <= max(0.22 * n, 0.2 * n + 1) + 1e-9
        if n == 1000:
            break
    assert sum(balance.counts) == 1000
    assert all(abs(c / 1000 - 0.2) <= 0.02 + 1e-9 for c in balance.counts), balance.counts


def test_label_balance_does_not_reject_what_is_already_balanced():
    balance = LabelBalance([0.5, 0.5], tolerance=0.02, total=1000)
    for i in range(1000):
        record = yn(f"q{i}", i % 2 == 0)
        assert balance.allows(record)
        balance.add(record)


def test_reference_shares_of_labels_and_positions():
    human = [yn("a", True), yn("b", True), yn("c", False), yn("d", True)]
    assert reference_shares(human, True, 2) == [0.75, 0.25]
    mcs = [mc("a", 0), mc("b", 2), mc("c", 2), mc("d", 2, k=3)]  # the 3-option one is skipped
    assert reference_shares(mcs, False, 5) == [1 / 3, 0, 2 / 3, 0, 0]
    assert class_of(yn("x", False)) == 1 and class_of(mc("y", 3)) == 3


# --- near-duplicate indexes ---------------------------------------------------------------------


@pytest.mark.parametrize("hnsw", [False, True])
def test_vector_index_finds_the_nearest_row(hnsw):
    if hnsw:
        pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    rows = unit(rng.normal(size=(3000, 64)))
    index = VectorIndex(64, exact_below=1000, hnsw=hnsw)
    for start in range(0, 3000, 100):
        index.add(rows[start : start + 100])
    assert index.n == 3000 and index.kind == ("hnsw" if hnsw else "exact")
    # a query close to row 1234 (cosine ~0.95) and a random one
    close = unit(rows[1234:1235] + 0.33 * unit(rng.normal(size=(1, 64))))
    far = unit(rng.normal(size=(1, 64)))
    exact = (np.concatenate([close, far]) @ rows.T).max(axis=1)
    got = index.max_similarity(np.concatenate([close, far]))
    assert got[0] == pytest.approx(exact[0], abs=1e-4) and got[0] > 0.9
    assert got[1] < 0.7
    assert VectorIndex(64, hnsw=hnsw).max_similarity(far)[0] == -np.inf  # empty index


def test_minhash_estimates_jaccard_and_the_index_finds_near_copies():
    hasher = MinHasher()
    a = "Would a red fox cross the frozen river during the winter?"
    b = "would  a red fox cross the frozen river during winter?"  # near copy
    c = "What is the capital city of the country north of Spain?"
    sig = hasher.signatures([a, b, c])
    assert (sig[0] == hasher.signatures([a.upper()])[0]).all()  # case and spaces do not count
    same_ab = (sig[0] == sig[1]).mean()
    assert same_ab > 0.7 and (sig[0] == sig[2]).mean() < 0.2
    index = MinHashIndex()
    index.add(sig[:1])
    got = index.max_similarity(sig[1:])
    assert got[0] == pytest.approx(same_ab) and got[1] < 0.3


def test_lexical_key_keeps_the_content_words():
    assert lexical_key("Would the  Sun's light reach Mars?") == "sun s light reach mars"
    # what a paraphrase changes freely: case, punctuation, articles, modals, "n't"
    assert lexical_key("Isn't a cat, usually, an animal ?") == \
        lexical_key("is not cat usually animal")
    assert lexical_key("It can't; it won't; it cannot.") == "not not not"
    assert lexical_key("Is it what it is?") == "is it what it is"  # only function words: kept
    assert lexical_key("Où est la gare n°5 ?") == "où est la gare n 5"


def _simulator_questions(n: int, seed: int) -> list[str]:
    """Questions built as the simulator builds its made-up ones (benchmarks/simserver.py)."""
    from benchmarks import simserver as sim

    rng = random.Random(seed)
    out = []
    for i in range(n):
        def words():
            return {"adj": rng.choice(sim._ADJ), "adj2": rng.choice(sim._ADJ),
                    "noun": rng.choice(sim._NOUN), "noun2": rng.choice(sim._NOUN),
                    "verb": rng.choice(sim._VERB), "place": rng.choice(sim._PLACE),
                    "time": rng.choice(sim._TIME)}
        q = rng.choice(sim._Q_TEMPLATES).format(n=i + 1, **words())
        q += "".join(rng.choice(sim._TAILS).format(**words()) for _ in range(rng.randint(0, 2)))
        out.append(q + "?")
    return out


def test_minhash_catches_95_percent_of_the_simulators_paraphrases():
    """Issue 14's line for the lexical check: the simulator's paraphrases (synonyms, a lead-in,
    contractions, an article dropped, the question mark) of questions already indexed are found
    above the default threshold >= 95% of the time (95.8% here; 5-grams of the question as
    written, the measure before lexical_key, find 90.3%), while other questions are not."""
    from benchmarks.simserver import paraphrase

    questions = _simulator_questions(1500, seed=11)
    rng = random.Random(12)
    paraphrases = [paraphrase(q, rng) for q in questions]
    hasher, index = MinHasher(), MinHashIndex()
    index.add(hasher.signatures(questions[:1000]))
    found = index.max_similarity(hasher.signatures(paraphrases[:1000]))
    assert (found > DEFAULT_JACCARD).mean() >= 0.95
    unrelated = index.max_similarity(hasher.signatures(questions[1000:]))
    assert (unrelated > DEFAULT_JACCARD).mean() < 0.01


def test_minhash_index_recall_at_the_threshold():
    """Pairs above the threshold are found through the bands (a scan would find them all)."""
    hasher = MinHasher()
    rng = random.Random(5)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi".split()
    texts = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(400)]
    variants = [t.replace(t.split()[3], "omicron", 1) for t in texts]  # one word changed
    index = MinHashIndex()
    index.add(hasher.signatures(texts))
    sigs = hasher.signatures(variants)
    found = index.max_similarity(sigs)
    scanned = np.array([(index._sigs[: index.n] == s).mean(axis=1).max() for s in sigs])
    above = scanned > 0.7
    assert above.sum() > 100
    assert (found[above] == scanned[above]).mean() > 0.99
    # at the default threshold (0.6) a pair shares a band with probability 0.89 at least
    near = (scanned > 0.6) & (scanned <= 0.7)
    if near.sum() > 20:
        assert (found[near] == scanned[near]).mean() > 0.8


# --- the whole cycle ------------------------------------------------------------------------------


def fake_encoder(table: dict[str, np.ndarray]):
    calls = []

    async def encode(texts):
        calls.append(list(texts))
        return np.stack([table[t] for t in texts])

    return encode, calls


def test_quality_rejects_near_duplicates_in_the_reply_and_against_the_index():
    rng = np.random.default_rng(1)
    base = unit(rng.normal(size=(4, 32)))
    near0 = unit(base[0:1] + 0.1 * unit(rng.normal(size=(1, 32))))[0]  # cosine ~0.99 with 0
    table = {"q0": base[0], "q1": base[1], "q2": base[2], "q0 again": near0, "q3": base[3]}
    encode, calls = fake_encoder(table)
    q = Quality.build(QualityOptions(near_dup="embedding", near_dup_threshold=0.9), True, 2, 0,
                      encode=encode)
    rejected: Counter = Counter()

    async def go():
        cands = await q.screen([yn("q0", True), yn("q1", False), yn("q0 again", True)], rejected)
        kept, passed = q.admit(cands, set(), 10, rejected)
        assert [c.record.question for c in kept] == ["q0", "q1"] and passed == 2
        assert rejected == Counter({NEAR_DUPLICATE: 1})
        # the next reply repeats a near copy of an accepted question
        cands = await q.screen([yn("q0 again", False), yn("q2", True)], rejected)
        kept, passed = q.admit(cands, set(), 10, rejected)
        assert [c.record.question for c in kept] == ["q2"]
        assert rejected[NEAR_DUPLICATE] == 2

    asyncio.run(go())
    assert q.near.size == 3


def test_admit_rechecks_what_other_requests_added_while_this_one_awaited():
    table = {"a": unit(np.eye(8)[0:1])[0], "b": unit(np.eye(8)[1:2])[0]}
    encode, _ = fake_encoder(table)
    q = Quality.build(QualityOptions(near_dup="embedding"), True, 2, 0, encode=encode)
    rejected: Counter = Counter()

    async def go():
        first = await q.screen([yn("a", True)], rejected)
        second = await q.screen([yn("a", True), yn("b", False)], rejected)  # screened meanwhile
        kept, _ = q.admit(first, set(), 10, rejected)
        seen = {"a"}
        kept2, passed2 = q.admit(second, seen, 10, rejected)
        assert [c.record.question for c in kept2] == ["b"] and passed2 == 1
        assert rejected[DUPLICATE] == 1

    asyncio.run(go())


def test_admit_places_options_and_stops_at_room():
    q = Quality.build(QualityOptions(shuffle_options=True), False, 5, 3)
    rejected: Counter = Counter()
    cands = [Candidate(mc(f"q{i}", 0)) for i in range(8)]
    kept, passed = q.admit(cands, set(), 5, rejected)
    assert passed == 8 and len(kept) == 5
    assert sorted(c.record.label_index for c in kept) == [0, 1, 2, 3, 4]


def test_label_balance_with_shuffling_places_instead_of_rejecting():
    q = Quality.build(QualityOptions(shuffle_options=True, label_balance="reference"), False, 5,
                      3, reference=[0.4, 0.15, 0.15, 0.15, 0.15])
    assert q.balance is None and q.placer is not None
    kept, _ = q.admit([Candidate(mc(f"q{i}", 2)) for i in range(200)], set(), 200, Counter())
    assert Counter(c.record.label_index for c in kept)[0] == 80


def test_screen_reserves_room_for_records_being_verified():
    q = Quality.build(QualityOptions(label_balance="uniform", label_tolerance=0.0), True, 2, 0)
    rejected: Counter = Counter()

    async def go():
        a = await q.screen([yn("t1", True), yn("t2", True)], rejected)
        b = await q.screen([yn("t3", True)], rejected)  # the two before are counted already
        return a, b

    a, b = asyncio.run(go())
    # two Trues in a row are allowed (one record of slack above the share), a third is not,
    # though neither of the two is written yet
    assert len(a) == 2 and b == [] and rejected[LABEL_OVER_REPRESENTED] == 1
    q.release(a)
    assert q.balance.pending == [0, 0]


def test_restore_rebuilds_counts_and_index_from_the_file():
    records = [yn(f"Is number {i} even?", i % 3 == 0) for i in range(50)]
    opts = QualityOptions(near_dup="minhash", label_balance="uniform")
    q = Quality.build(opts, True, 2, 0)
    asyncio.run(q.restore(records))
    assert q.near.size == 50 and sum(q.balance.counts) == 50
    rejected: Counter = Counter()
    cands = asyncio.run(q.screen([yn("is number 7 even ?", False)], rejected))
    assert cands == [] and rejected[NEAR_DUPLICATE] == 1
    state = q.state()
    assert state["near_duplicate_index"] == {"kind": "minhash", "size": 50, "threshold": 0.6}
    assert state["target_shares"] == {"True": 0.5, "False": 0.5}


def test_everything_off_only_deduplicates_and_cuts():
    q = Quality.build(QualityOptions(shuffle_options=False, near_dup="off"), False, 5, 0)
    assert not q.active
    cands = [Candidate(mc("same", 0)), Candidate(mc("SAME ", 1)), Candidate(mc("other", 0))]
    kept, passed = q.admit(cands, set(), 10, Counter())
    assert [c.record for c in kept] == [mc("same", 0), mc("other", 0)] and passed == 2


# --- the options ----------------------------------------------------------------------------------


def test_options_are_checked_for_the_api_as_for_the_command_line():
    from creator.errors import InputError
    from creator.options import check

    assert check("verify", None) == 0 and check("near_dup", None) == "auto"
    assert check("near_dup_threshold", None) == 0.92 and check("label_balance", None) is None
    assert check("shuffle_options", None) is None  # None: on where options vary per example
    for name, bad in (("verify", -1), ("verify", 1.5), ("near_dup", "exact"),
                      ("label_balance", "skewed"), ("near_dup_threshold", 1.5),
                      ("minhash_threshold", 1.0), ("label_tolerance", -0.1),
                      ("shuffle_options", "yes")):
        with pytest.raises(InputError, match=name):
            check(name, bad)


def test_auto_near_dup_uses_the_encoder_only_where_it_is_loaded_anyway():
    from creator.api import quality_options
    from creator.options import BY_NAME, check

    def opts(**given):
        return quality_options({n: check(n, given.get(n)) if n in given or not BY_NAME[n].required
                                else None for n in BY_NAME})

    assert opts(setting="tree").near_dup == "minhash"
    assert opts(setting="diverse").near_dup == "embedding"
    assert opts(setting="naive", near_dup="embedding").near_dup == "embedding"
    assert opts(setting="similar", near_dup="off").near_dup == "off"
    assert opts(setting="tree").shuffle_options is True
    assert opts(setting="tree", shuffle_options=False).shuffle_options is False
