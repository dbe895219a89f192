"""The simulator's data-quality behaviours (issue 14): paraphrases of earlier questions, wrong
answers, skewed labels, human records fed back, and deterministic answers to verification
prompts. In-process (aiohttp test client), no subprocess."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter

import pytest
from aiohttp.test_utils import TestClient, TestServer

from benchmarks.simserver import SimConfig, build_app, paraphrase
from creator.records import Record
from creator.task import detect_format, render_messages
from creator.verify import read_answer, verify_messages

YES_NO = Record("Is the sky blue?", None, ("True", "False"), "True")
MC = Record("Which is red?", None, ("sky", "apple", "grass", "sea", "coal"), "apple")


def norm(q: str) -> str:
    return " ".join(q.split()).lower()


def test_paraphrase_always_changes_the_text_and_keeps_most_of_it():
    rng = random.Random(0)
    questions = ["Would a red fox cross the frozen river during the winter?",
                 "Is Miami a city on the American West Coast?", "blankets", "How to bake bread.",
                 "Can people buy a big house near the beach?"]
    for q in questions * 40:
        p = paraphrase(q, rng)
        assert norm(p) != norm(q), (q, p)
        words = set(re.findall(r"\w+", q.lower()))
        assert len(words & set(re.findall(r"\w+", p.lower()))) >= len(words) / 2, (q, p)


async def _session(config: SimConfig, fn):
    client = TestClient(TestServer(build_app(config)))
    await client.start_server()
    try:
        return await fn(client)
    finally:
        await client.close()


async def _chat(client, messages, **extra):
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": messages,
                                                           **extra})
    assert resp.status == 200
    return (await resp.json())["choices"][0]["message"]["content"]


def _objects(text: str) -> list[dict]:
    return [json.loads(part) for part in text.split("\n\n")]


def test_injected_paraphrases_and_wrong_answers_are_listed():
    async def go(client):
        messages = render_messages(YES_NO, detect_format(YES_NO), 5)
        served = []
        for _ in range(40):
            served += _objects(await _chat(client, messages))
        injected = await (await client.get("/stats/injected")).json()
        stats = await (await client.get("/stats")).json()
        return served, injected, stats

    served, injected, stats = asyncio.run(_session(
        SimConfig(seed=1, p_paraphrase=0.3, p_mislabel=0.25), go))
    questions = [o["Question"] for o in served]
    assert stats["paraphrases"] == len(injected["paraphrases"]) > 20
    assert stats["mislabelled"] == len(injected["mislabelled"]) > 20
    last = {q: i for i, q in enumerate(questions)}
    for source, para in injected["paraphrases"]:
        assert para in questions and source in questions
        assert questions.index(source) < last[para]  # of an EARLIER question
    assert set(injected["mislabelled"]) <= set(questions)


def test_label_skew_and_human_records():
    async def go(client):
        yn = render_messages(YES_NO, detect_format(YES_NO), 5)
        mc = render_messages(MC, detect_format(MC), 5)
        a = [o for _ in range(60) for o in _objects(await _chat(client, yn))]
        b = [o for _ in range(60) for o in _objects(await _chat(client, mc))]
        return a, b

    yes_no, mc = asyncio.run(_session(SimConfig(seed=2, label_skew=0.8), go))
    assert 0.72 < Counter(o["Answer"] for o in yes_no)["True"] / len(yes_no) < 0.88
    assert 0.72 < sum(o["Options"][0] == o["Answer"] for o in mc) / len(mc) < 0.88


def test_questions_from_feeds_a_human_file_back(tmp_path):
    rows = [{"question": f"Is {i} even?", "context": None, "options": ["True", "False"],
             "label": i % 2 == 0} for i in range(30)]
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    async def go(client):
        messages = render_messages(YES_NO, detect_format(YES_NO), 5)
        return [o for _ in range(6) for o in _objects(await _chat(client, messages))]

    served = asyncio.run(_session(SimConfig(seed=3, questions_from=str(path)), go))
    assert sorted(o["Question"] for o in served) == sorted(r["question"] for r in rows)
    truth = {r["question"]: str(r["label"]) for r in rows}
    assert all(o["Answer"] == truth[o["Question"]] for o in served)


@pytest.mark.parametrize("error_rate", [0.0, 0.3])
def test_verification_prompts_get_the_true_answer_but_at_the_error_rate(error_rate):
    async def go(client):
        messages = render_messages(MC, detect_format(MC), 5)
        served = [o for _ in range(20) for o in _objects(await _chat(client, messages))]
        answers = []
        for obj in served:
            record = Record(obj["Question"], None, tuple(obj["Options"]), obj["Answer"])
            text = await _chat(client, verify_messages(record, seed=0))
            answers.append((obj["Answer"], read_answer(text, record.options)))
        stats = await (await client.get("/stats")).json()
        return answers, stats

    answers, stats = asyncio.run(_session(SimConfig(seed=4, verify_error_rate=error_rate), go))
    wrong = sum(a != b for a, b in answers) / len(answers)
    assert all(b is not None for _, b in answers)
    assert abs(wrong - error_rate) < 0.1
    assert stats["verify_requests"] == len(answers) and stats["questions_served"] == 100
    # the same question asked again in a fresh server with the same seed gets the same answers
    again, _ = asyncio.run(_session(SimConfig(seed=4, verify_error_rate=error_rate), go))
    assert again == answers
