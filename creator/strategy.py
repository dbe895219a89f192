"""The settings of the paper: given what a request created, which exemplar to request next.

One object per setting. Concurrency comes from here: naive repeats the one exemplar as often as
asked, random/diverse/similar run several independent chains (each follows the paper's rule on
its own results; all share one dedup set), tree expands many frontier nodes at once, shallowest
first. The engine asks `next_job()` whenever it may send another request.
"""

from __future__ import annotations

import heapq
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

import numpy as np

from .records import Record

SETTINGS = ("naive", "random", "diverse", "similar", "tree")
ROOT_ID = 0  # the original exemplar; created records are numbered from 1


@dataclass(eq=False, slots=True)
class Node:
    """A record and where it sits: who it was created from, how deep, on which chain."""

    id: int
    record: Record
    parent: int | None = None
    depth: int = 0
    chain: int = 0
    vector: np.ndarray | None = field(default=None, repr=False)  # kept only while it is needed


@dataclass(frozen=True)
class Job:
    """One request to make: ask for more examples like `exemplar`."""

    exemplar: Node
    chain: int


# encodes questions to L2-normalised vectors, off the event loop
Encoder = Callable[[Sequence[str]], Awaitable[np.ndarray]]


def pick_by_similarity(query: np.ndarray, candidates: np.ndarray, most_similar: bool) -> int:
    """Index of the candidate most (or least) cosine-similar to query; vectors are normalised."""
    scores = candidates @ query
    return int(np.argmax(scores) if most_similar else np.argmin(scores))


class Strategy(ABC):
    def __init__(self, root: Node, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.pending = 0  # requests handed out and not yet answered

    def next_job(self) -> Job | None:
        job = self._next_job()
        if job is not None:
            self.pending += 1
        return job

    async def on_result(self, job: Job, created: list[Node]) -> None:
        """`created`: the records this request added to the set (after validation and dedup)."""
        self.pending -= 1
        await self._on_result(job, created)

    def on_failure(self, job: Job) -> None:
        """The request produced nothing at all (it failed): the chain keeps its exemplar."""
        self.pending -= 1
        self._on_failure(job)

    @abstractmethod
    def _next_job(self) -> Job | None: ...

    async def _on_result(self, job: Job, created: list[Node]) -> None:
        return None

    def _on_failure(self, job: Job) -> None:
        return None

    async def restore(self, nodes: list[Node]) -> None:
        """Rebuild the state from the records of an earlier run, in file order."""
        return None

    def claim(self, jobs: Sequence[Job]) -> None:
        """After restore: jobs an earlier session handed out that are still outstanding (in a
        batch at the provider) are pending again, and their exemplars are not handed out
        twice."""
        self.pending += len(jobs)
        self._claim(jobs)

    def _claim(self, jobs: Sequence[Job]) -> None:
        return None


class Naive(Strategy):
    """Always the original exemplar."""

    def _next_job(self) -> Job:
        return Job(self.root, 0)


class Chains(Strategy):
    """Independent chains that each pick their next exemplar from their own last results."""

    def __init__(self, root: Node, rng: random.Random, num_chains: int) -> None:
        super().__init__(root, rng)
        self.current = [root] * num_chains
        self.idle = list(range(num_chains - 1, -1, -1))  # pop() hands out chain 0 first

    def _next_job(self) -> Job | None:
        if not self.idle:
            return None
        chain = self.idle.pop()
        return Job(self.current[chain], chain)

    async def _on_result(self, job: Job, created: list[Node]) -> None:
        if created:
            self.current[job.chain] = await self.choose(job.exemplar, created)
        self.idle.append(job.chain)

    def _on_failure(self, job: Job) -> None:
        self.idle.append(job.chain)

    def _claim(self, jobs: Sequence[Job]) -> None:
        busy = {job.chain for job in jobs}
        self.idle = [chain for chain in self.idle if chain not in busy]
        for job in jobs:
            if job.chain < len(self.current):
                self.current[job.chain] = job.exemplar

    @abstractmethod
    async def choose(self, current: Node, created: list[Node]) -> Node: ...

    async def restore(self, nodes: list[Node]) -> None:
        """Each chain resumes from what its last request created, chosen by the same rule."""
        by_id = {self.root.id: self.root, **{n.id: n for n in nodes}}
        # a request's records are written together and each chain's next request starts from
        # one of them, so a chain's last batch is its last run of records with one parent
        batches: dict[int, list[Node]] = {}
        for node in nodes:
            batch = batches.get(node.chain)
            if batch and batch[-1].parent == node.parent:
                batch.append(node)
            else:
                batches[node.chain] = [node]
        for chain, batch in batches.items():
            parent = by_id.get(batch[0].parent if batch[0].parent is not None else ROOT_ID)
            if chain < len(self.current) and parent is not None:
                self.current[chain] = await self.choose(parent, batch)


class RandomChains(Chains):
    async def choose(self, current: Node, created: list[Node]) -> Node:
        return self.rng.choice(created)


class SimilarityChains(Chains):
    """diverse: the created record LEAST similar to the current exemplar; similar: the MOST."""

    def __init__(
        self, root: Node, rng: random.Random, num_chains: int, encode: Encoder, most_similar: bool
    ) -> None:
        super().__init__(root, rng, num_chains)
        self.encode = encode
        self.most_similar = most_similar

    async def restore(self, nodes: list[Node]) -> None:
        # the root is every chain's first exemplar: encode it once, before chains race for it
        self.root.vector = (await self.encode([self.root.record.question]))[0]
        await super().restore(nodes)

    async def choose(self, current: Node, created: list[Node]) -> Node:
        # each question is encoded once: the chosen record keeps its vector for the next turn
        # and the others' vectors are dropped, so memory does not grow with the run
        if current.vector is None:
            current.vector = (await self.encode([current.record.question]))[0]
        if all(n.vector is not None for n in created):  # the engine's near-duplicate filter
            vectors = np.stack([n.vector for n in created])  # encoded them already
        else:
            vectors = await self.encode([n.record.question for n in created])
        best = created[pick_by_similarity(current.vector, vectors, self.most_similar)]
        for node in created:
            node.vector = None
        best.vector = vectors[created.index(best)]
        if current is not self.root:
            current.vector = None
        return best


class Tree(Strategy):
    """Breadth-first: every created record is a child node; all nodes of one depth are expanded,
    in shuffled order, before any of the next depth. Many nodes are expanded at once."""

    def __init__(self, root: Node, rng: random.Random) -> None:
        super().__init__(root, rng)
        self.frontier: list[tuple[int, float, int, Node]] = []
        self._push(root)

    def _push(self, node: Node) -> None:
        heapq.heappush(self.frontier, (node.depth, self.rng.random(), node.id, node))

    def _next_job(self) -> Job | None:
        if not self.frontier:
            if self.pending:
                return None  # children may still come
            # every branch died out: grow the tree again from its root
            self._push(self.root)
        node = heapq.heappop(self.frontier)[3]
        return Job(node, 0)

    async def _on_result(self, job: Job, created: list[Node]) -> None:
        for child in created:
            self._push(child)

    def _on_failure(self, job: Job) -> None:
        self._push(job.exemplar)  # not expanded yet: try it again in its turn

    def _claim(self, jobs: Sequence[Job]) -> None:
        taken = {job.exemplar.id for job in jobs}
        self.frontier = [entry for entry in self.frontier if entry[3].id not in taken]
        heapq.heapify(self.frontier)

    def next_depth(self) -> int | None:
        """The depth the next job would come from (None: nothing waits in the frontier)."""
        return self.frontier[0][0] if self.frontier else None

    async def restore(self, nodes: list[Node]) -> None:
        expanded = {n.parent for n in nodes}
        self.frontier = []
        if ROOT_ID not in expanded:
            self._push(self.root)
        for node in nodes:
            if node.id not in expanded:
                self._push(node)


def make_strategy(
    setting: str, root: Node, seed: int, num_chains: int, encode: Encoder | None
) -> Strategy:
    rng = random.Random(seed)
    if setting == "naive":
        return Naive(root, rng)
    if setting == "random":
        return RandomChains(root, rng, num_chains)
    if setting in ("diverse", "similar"):
        if encode is None:
            raise ValueError(f"the {setting} setting needs a sentence encoder")
        return SimilarityChains(root, rng, num_chains, encode, most_similar=setting == "similar")
    if setting == "tree":
        return Tree(root, rng)
    raise ValueError(f"unknown setting {setting!r}; choose from {', '.join(SETTINGS)}")
