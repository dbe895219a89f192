"""The diverse and similar settings choose the least / most cosine-similar created record, each
question is encoded once, and a chain keeps its exemplar when a request creates nothing. Fixed
vectors, no model: these pin the choice itself, whatever encoder makes the vectors."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from creator.strategy import ROOT_ID, Node, SimilarityChains, make_strategy, pick_by_similarity
from creator.task import Record


def unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


# the exemplar points along x; the candidates at known angles from it
VECTORS = {
    "exemplar": unit(1, 0, 0),
    "near": unit(1, 0.1, 0),  # cosine 0.995: the most similar
    "middle": unit(1, 1, 0),  # 0.707
    "orthogonal": unit(0, 0, 1),  # 0.0
    "opposite-ish": unit(-1, 0.2, 0.1),  # -0.976: the least similar
    "far": unit(-0.2, 1, 0),  # -0.196
}


class FixedEncoder:
    """Looks each question up in VECTORS (or in `extra`) and records every text it encodes."""

    def __init__(self, extra: dict[str, np.ndarray] | None = None) -> None:
        self.table = {**VECTORS, **(extra or {})}
        self.calls: list[list[str]] = []

    async def __call__(self, texts):
        self.calls.append(list(texts))
        await asyncio.sleep(0)  # a real encoder yields to the event loop
        return np.stack([self.table[t] for t in texts])

    @property
    def texts(self) -> list[str]:
        return [t for call in self.calls for t in call]


def rec(q: str) -> Record:
    return Record(question=q, context=None, options=["True", "False"], label="True")


def nodes(*questions: str, start: int = 1, parent: int = ROOT_ID, chain: int = 0) -> list[Node]:
    return [Node(start + i, rec(q), parent=parent, depth=1, chain=chain)
            for i, q in enumerate(questions)]


def chains(setting: str, encoder: FixedEncoder, num_chains: int = 1,
           root_q: str = "exemplar") -> SimilarityChains:
    root = Node(ROOT_ID, rec(root_q))
    strategy = make_strategy(setting, root, seed=0, num_chains=num_chains, encode=encoder)
    assert isinstance(strategy, SimilarityChains)
    asyncio.run(strategy.restore([]))
    return strategy


def one_round(strategy: SimilarityChains, created: list[Node]) -> Node:
    async def go() -> Node:
        job = strategy.next_job()
        assert job is not None
        await strategy.on_result(job, created)
        return strategy.current[job.chain]

    return asyncio.run(go())


CANDIDATES = ("middle", "near", "far", "opposite-ish", "orthogonal")


@pytest.mark.parametrize("order", [CANDIDATES, tuple(reversed(CANDIDATES)),
                                   ("opposite-ish", "near", "middle", "orthogonal", "far")])
def test_pick_by_similarity_takes_the_extreme_cosine(order):
    query = VECTORS["exemplar"]
    candidates = np.stack([VECTORS[q] for q in order])
    assert order[pick_by_similarity(query, candidates, most_similar=True)] == "near"
    assert order[pick_by_similarity(query, candidates, most_similar=False)] == "opposite-ish"


@pytest.mark.parametrize("order", [CANDIDATES, tuple(reversed(CANDIDATES))])
def test_diverse_chooses_the_least_similar_and_similar_the_most(order):
    for setting, expected in (("diverse", "opposite-ish"), ("similar", "near")):
        strategy = chains(setting, FixedEncoder())
        chosen = one_round(strategy, nodes(*order))
        assert chosen.record.question == expected, setting
        # the chosen record keeps its vector for the next turn: it is not encoded again
        assert chosen.vector is not None
        assert np.allclose(chosen.vector, VECTORS[expected])


def test_the_next_choice_is_made_against_the_new_exemplar():
    # second round: similarity to the record chosen in the first round, not to the root.
    # Against "opposite-ish", "back" (close to it) is the most similar and "root-like" the least;
    # against the root it would be the other way round.
    extra = {"back": unit(-1, 0.25, 0.1), "root-like": unit(1, 0.05, 0)}
    enc = FixedEncoder(extra)
    diverse = chains("diverse", enc)
    assert one_round(diverse, nodes(*CANDIDATES)).record.question == "opposite-ish"
    second = nodes("root-like", "back", start=10, parent=4)
    assert one_round(diverse, second).record.question == "root-like"

    # "near" is 5.7 degrees from the root; "beyond-near" 5.6 degrees past it and "on-root" 6.9
    # degrees the other way (and 1.1 from the root)
    enc = FixedEncoder({"beyond-near": unit(1, 0.2, 0), "on-root": unit(1, -0.02, 0)})
    similar = chains("similar", enc)
    assert one_round(similar, nodes(*CANDIDATES)).record.question == "near"
    second = nodes("on-root", "beyond-near", start=10, parent=2)
    assert one_round(similar, second).record.question == "beyond-near"


def test_each_question_is_encoded_once():
    extra = {f"q{i}": unit(1, i, 0.5 * i) for i in range(12)}
    enc = FixedEncoder(extra)
    strategy = chains("diverse", enc, num_chains=2)
    for r in range(3):
        one_round(strategy, nodes(*[f"q{4 * r + i}" for i in range(4)], start=1 + 4 * r))
    texts = enc.texts
    assert len(texts) == len(set(texts))  # no text twice
    assert texts[0] == "exemplar" and len(texts) == 1 + 12  # the root once, then every record


def test_a_chain_keeps_its_exemplar_when_nothing_was_created():
    enc = FixedEncoder()
    strategy = chains("similar", enc)
    assert one_round(strategy, []).id == ROOT_ID
    assert enc.texts == ["exemplar"]  # nothing to choose from: nothing encoded


def test_chains_choose_independently():
    enc = FixedEncoder({"a": unit(1, 0.3, 0), "b": unit(0.2, 1, 0)})
    strategy = chains("similar", enc, num_chains=2)

    async def go():
        j0, j1 = strategy.next_job(), strategy.next_job()
        assert (j0.chain, j1.chain) == (0, 1) and strategy.next_job() is None
        await asyncio.gather(strategy.on_result(j0, nodes("a", "far", chain=0)),
                             strategy.on_result(j1, nodes("orthogonal", "b", start=3, chain=1)))

    asyncio.run(go())
    assert [n.record.question for n in strategy.current] == ["a", "b"]


def test_similarity_settings_need_an_encoder():
    with pytest.raises(ValueError, match="sentence encoder"):
        make_strategy("diverse", Node(ROOT_ID, rec("x")), 0, 1, None)


def test_random_chains_do_not_encode():
    strategy = make_strategy("random", Node(ROOT_ID, rec("x")), 0, 1, None)
    strategy.rng = random.Random(1)

    async def go():
        job = strategy.next_job()
        await strategy.on_result(job, nodes("a", "b", "c"))
        return strategy.current[0]

    assert asyncio.run(go()).record.question in {"a", "b", "c"}
