"""The OpenAI-compatible simulator (benchmarks/simserver.py), tested as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time

import aiohttp
import httpx
import pytest

from benchmarks.simproc import SimProcess, free_port, start_simulator

SYSTEM = (
    "You are creating {k} more examples that follow the format of the example provided, but with a "
    "different content. The created examples must all have different answers. The output must be in "
    "unnumbered JSON format."
)
MC = {
    "Question": "What can you use to dry your hands?",
    "Options": ["a towel", "a bucket of water", "a sponge soaked in oil"],
    "Answer": "a towel",
}
MC_CTX = {
    "Question": "Where did the cat sleep?",
    "Context": "The cat slept on the warm windowsill all afternoon.",
    "Options": ["on the windowsill", "under the bed"],
    "Answer": "on the windowsill",
}
YN = {
    "Options": ["True", "False"],
    "Answer": "True",
    "Question": "Is the sun a star?",
    "Context": "The sun is the star at the centre of the solar system.",
}
YN_CLOSED = {"Options": ["True", "False"], "Answer": "False", "Question": "Do fish have fur?"}
DURATION = re.compile(r"^(\d+ms|\d+(\.\d+)?s|\d+m\d+(\.\d+)?s)$")
RL_HEADERS = (
    "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
)


def body(exemplar, k=5, system=None, **extra):
    sys_text = SYSTEM.format(k=k) if system is None else system
    user = exemplar if isinstance(exemplar, str) else json.dumps(exemplar)
    return {
        "model": "test-model",
        "messages": [{"role": "system", "content": sys_text}, {"role": "user", "content": user}],
        "temperature": 1.0,
        "top_p": 1.0,
        **extra,
    }


def chat(client, sim, exemplar=MC, k=5, headers=None, timeout=10.0, **extra):
    return client.post(sim.base_url + "/chat/completions", json=body(exemplar, k, **extra),
                       headers=headers, timeout=timeout)


def content_of(resp):
    return resp.json()["choices"][0]["message"]["content"]


def split_objects(content):
    """The paper's parser: objects separated by blank lines."""
    return [json.loads(p) for p in content.split("\n\n") if p.strip()]


def norm(q):
    return " ".join(q.split()).lower()


def extract_objects(text):
    """Lenient: every top-level {...} that parses, wherever it is (arrays, fences, lists, lines)."""
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return out
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        if isinstance(obj, dict) and "examples" in obj and isinstance(obj["examples"], list):
            out.extend(obj["examples"])
        else:
            out.append(obj)
        i = end


def is_paper_format(content, k, keys):
    try:
        objs = split_objects(content)
    except ValueError:
        return False
    return len(objs) == k and all(isinstance(o, dict) and list(o) == keys for o in objs)


@pytest.fixture(scope="module")
def sim():
    with start_simulator(seed=0) as s:
        yield s


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=10.0) as c:
        yield c


# --------------------------------------------------------------------------- content


def test_completion_shape_and_usage(sim, client):
    r = chat(client, sim, MC, k=5)
    assert r.status_code == 200
    d = r.json()
    assert d["object"] == "chat.completion" and d["id"] and isinstance(d["created"], int)
    assert d["model"] == "test-model"
    ch = d["choices"][0]
    assert ch["index"] == 0 and ch["finish_reason"] == "stop" and ch["message"]["role"] == "assistant"
    content = ch["message"]["content"]
    objs = split_objects(content)
    assert len(objs) == 5
    for o in objs:
        assert list(o) == list(MC)
        assert len(o["Options"]) == 3 and len(set(o["Options"])) == 3
        assert o["Answer"] in o["Options"]
        assert norm(o["Question"]) != norm(MC["Question"])
    b = body(MC, 5)
    chars = sum(len(m["content"]) for m in b["messages"])
    u = d["usage"]
    assert u["prompt_tokens"] == math.ceil(chars / 4)
    assert u["completion_tokens"] == max(1, math.ceil(len(content) / 4))
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_k_and_key_order(sim, client):
    objs = split_objects(content_of(chat(client, sim, MC_CTX, k=3)))
    assert len(objs) == 3
    for o in objs:
        assert list(o) == ["Question", "Context", "Options", "Answer"]
        assert isinstance(o["Context"], str) and o["Context"]
        assert len(o["Options"]) == 2 and o["Answer"] in o["Options"]
    # no K in the system message -> 5
    objs = split_objects(content_of(chat(client, sim, MC, system="Make more examples.")))
    assert len(objs) == 5


@pytest.mark.parametrize("exemplar", [YN, YN_CLOSED], ids=["open", "closed"])
def test_yes_no_options_preserved(sim, client, exemplar):
    objs = split_objects(content_of(chat(client, sim, exemplar, k=5)))
    assert len(objs) == 5
    for o in objs:
        assert list(o) == list(exemplar)
        assert o["Options"] == ["True", "False"]
        assert o["Answer"] in ("True", "False")


def test_questions_unique_across_requests(sim, client):
    before = sim.stats()["questions_served"]
    seen = set()
    for i in range(30):
        ex = (MC, YN, MC_CTX)[i % 3]
        for o in split_objects(content_of(chat(client, sim, ex, k=5))):
            q = norm(o["Question"])
            assert q not in seen
            assert q not in {norm(MC["Question"]), norm(YN["Question"]), norm(MC_CTX["Question"])}
            seen.add(q)
    assert len(seen) == 150
    assert sim.stats()["questions_served"] - before == 150
    lengths = {len(q.split()) for q in seen}
    assert len(lengths) >= 3  # varied length


@pytest.mark.parametrize("fmt", [
    {"type": "json_object"},
    {"type": "json_schema", "json_schema": {"name": "examples", "schema": {"type": "object"}}},
])
def test_json_modes(sim, client, fmt):
    r = chat(client, sim, YN, k=4, response_format=fmt)
    assert r.status_code == 200
    d = json.loads(content_of(r))
    assert list(d) == ["examples"] and len(d["examples"]) == 4
    for o in d["examples"]:
        assert list(o) == list(YN) and o["Options"] == ["True", "False"]


def test_a_prompt_that_is_not_an_exemplar_gets_a_plain_reply(sim, client):
    """A model answers anything (the creator's one-token limits read is such a prompt)."""
    for user in ("Reply with OK.", "[1, 2, 3]", '{"Question": "unterminated'):
        r = chat(client, sim, user)
        assert r.status_code == 200
        assert content_of(r) == "OK, understood."
    r = chat(client, sim, "Reply with OK.", max_tokens=1)
    assert r.json()["usage"]["completion_tokens"] == 1


def test_bad_requests_400(sim, client):
    r = client.post(sim.base_url + "/chat/completions", content=b"{not json")
    assert r.status_code == 400
    r = client.post(sim.base_url + "/chat/completions", json={"model": "m"})
    assert r.status_code == 400


def test_max_tokens_truncates(sim, client):
    r = chat(client, sim, MC, k=5, max_tokens=10)
    d = r.json()
    assert d["choices"][0]["finish_reason"] == "length"
    assert d["usage"]["completion_tokens"] == 10
    assert len(content_of(r)) == 40


def test_models_and_stats_reset(sim, client):
    r = client.get(sim.base_url + "/models")
    assert r.status_code == 200
    d = r.json()
    assert d["object"] == "list" and d["data"][0]["object"] == "model" and d["data"][0]["id"]
    chat(client, sim)
    st = sim.stats()
    for key in ("requests", "ok", "rate_limited", "quota_exceeded", "unauthorized", "errors_5xx",
                "timeouts", "drops", "malformed", "duplicates", "empty", "wrong_format", "garbage",
                "prompt_tokens", "completion_tokens", "in_flight", "max_in_flight", "questions_served"):
        assert key in st
    assert st["requests"] >= 1 and st["ok"] >= 1 and st["prompt_tokens"] > 0
    sim.reset()
    st = sim.stats()
    assert st["requests"] == 0 and st["ok"] == 0 and st["completion_tokens"] == 0 and st["in_flight"] == 0


# --------------------------------------------------------------------------- latency


def test_latency_model():
    with start_simulator(ttft=0.25, tpot=0.001) as s, httpx.Client() as c:
        t = time.perf_counter()
        r = chat(c, s, MC, k=5)
        elapsed = time.perf_counter() - t
        assert r.status_code == 200
        ct = r.json()["usage"]["completion_tokens"]
        assert elapsed >= 0.25 + ct * 0.001 - 0.01
        assert elapsed < 0.25 + ct * 0.001 + 1.5


def _concurrent(base_url, payloads, limit=0, timeout=30.0):
    async def run():
        conn = aiohttp.TCPConnector(limit=limit)
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout)) as sess:
            async def one(p):
                async with sess.post(base_url + "/chat/completions", json=p) as r:
                    return r.status, await r.json()
            return await asyncio.gather(*(one(p) for p in payloads))
    return asyncio.run(run())


def test_max_concurrency_queues():
    with start_simulator(ttft=0.2, max_concurrency=1) as s:
        t = time.perf_counter()
        res = _concurrent(s.base_url, [body(MC)] * 3)
        assert [st for st, _ in res] == [200] * 3
        assert time.perf_counter() - t >= 0.58


def test_500_concurrent_zero_latency(sim):
    sim.reset()
    res = _concurrent(sim.base_url, [body(YN, k=2)] * 500)
    assert all(st == 200 for st, _ in res)
    qs = [o["Question"] for _, d in res for o in split_objects(d["choices"][0]["message"]["content"])]
    assert len(qs) == 1000 and len(set(map(norm, qs))) == 1000
    st = sim.stats()
    assert st["ok"] == 500 and st["in_flight"] == 0


def test_concurrent_requests_overlap():
    with start_simulator(ttft=0.5) as s:
        t = time.perf_counter()
        res = _concurrent(s.base_url, [body(YN_CLOSED, k=1)] * 300)
        elapsed = time.perf_counter() - t
        assert all(st == 200 for st, _ in res)
        assert elapsed < 5.0
        assert s.stats()["max_in_flight"] >= 250


# --------------------------------------------------------------------------- rate limits


def test_rpm_limit_and_refill():
    with start_simulator(rpm=60) as s, httpx.Client() as c:
        remaining, r = [], None
        for _ in range(120):  # 60 fit at once (+ whatever refills meanwhile, 1/s)
            r = chat(c, s, YN_CLOSED, k=1)
            if r.status_code != 200:
                break
            assert r.headers["x-ratelimit-limit-requests"] == "60"
            assert DURATION.match(r.headers["x-ratelimit-reset-requests"])
            remaining.append(int(r.headers["x-ratelimit-remaining-requests"]))
        assert remaining[0] == 59 and 60 <= len(remaining) < 120
        assert "x-ratelimit-limit-tokens" not in r.headers  # no TPM limit configured
        assert r.status_code == 429
        err = r.json()["error"]
        assert err["type"] == "requests" and err["code"] == "rate_limit_exceeded"
        assert err["message"].startswith("Rate limit reached for requests")
        assert r.headers["Retry-After"] == "1"
        ms = int(r.headers["retry-after-ms"])
        assert 1 <= ms <= 1000
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        assert DURATION.match(r.headers["x-ratelimit-reset-requests"])
        time.sleep(ms / 1000 + 0.05)
        assert chat(c, s, YN_CLOSED, k=1).status_code == 200
        st = s.stats()
        assert st["rate_limited"] == 1 and st["ok"] == len(remaining) + 1


def test_tpm_limit():
    with start_simulator(tpm=3000) as s, httpx.Client() as c:
        r = chat(c, s, MC, k=20, max_tokens=2000)
        assert r.status_code == 200
        u = r.json()["usage"]
        assert u["completion_tokens"] > 400
        assert r.headers["x-ratelimit-limit-tokens"] == "3000"
        assert "x-ratelimit-limit-requests" not in r.headers
        rem = int(r.headers["x-ratelimit-remaining-tokens"])
        # reserved prompt + max_tokens, refunded the unused part: charged prompt + completion
        assert abs(rem - (3000 - u["total_tokens"])) <= 30
        assert DURATION.match(r.headers["x-ratelimit-reset-tokens"])
        # ask for more than what is left (but less than the limit): 429 tokens with a hint
        r = chat(c, s, MC, k=2, max_tokens=1)
        p2 = r.json()["usage"]["prompt_tokens"]
        want = int(r.headers["x-ratelimit-remaining-tokens"]) - p2 + 300
        r = chat(c, s, MC, k=2, max_tokens=want)
        assert r.status_code == 429
        err = r.json()["error"]
        assert err["type"] == "tokens" and err["code"] == "rate_limit_exceeded"
        assert err["message"].startswith("Rate limit reached for tokens")
        ra = int(r.headers["Retry-After"])
        ms = int(r.headers["retry-after-ms"])
        assert 3 <= ra <= 8 and ra == math.ceil(ms / 1000)  # ~300 tokens at 50 tokens/s
        assert int(r.headers["x-ratelimit-remaining-tokens"]) < want + u["prompt_tokens"]
        # a request that can never fit
        r = chat(c, s, MC, k=2, max_tokens=5000)
        assert r.status_code == 429
        assert "Request too large" in r.json()["error"]["message"]
        assert "Retry-After" not in r.headers
        st = s.stats()
        assert st["rate_limited"] == 2 and st["too_large"] == 1 and st["truncated"] == 1


def test_no_retry_after():
    with start_simulator("--no_retry_after", rpm=1) as s, httpx.Client() as c:
        assert chat(c, s).status_code == 200
        r = chat(c, s)
        assert r.status_code == 429
        assert "Retry-After" not in r.headers and "retry-after-ms" not in r.headers
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        assert r.json()["error"]["type"] == "requests"


# --------------------------------------------------------------------------- auth / quota


def test_api_key():
    with start_simulator(api_key="sk-sim-123") as s, httpx.Client() as c:
        for h in (None, {"Authorization": "Bearer nope"}):
            r = chat(c, s, headers=h)
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "invalid_api_key"
            assert c.get(s.base_url + "/models", headers=h).status_code == 401
        good = {"Authorization": "Bearer sk-sim-123"}
        assert chat(c, s, headers=good).status_code == 200
        assert c.get(s.base_url + "/models", headers=good).status_code == 200
        assert s.stats()["unauthorized"] == 4


def test_quota():
    with start_simulator(quota=2) as s, httpx.Client() as c:
        assert chat(c, s).status_code == 200
        assert chat(c, s).status_code == 200
        for _ in range(2):
            r = chat(c, s)
            assert r.status_code == 429
            err = r.json()["error"]
            assert err["type"] == "insufficient_quota" and err["code"] == "insufficient_quota"
            assert "Retry-After" not in r.headers
        st = s.stats()
        assert st["ok"] == 2 and st["quota_exceeded"] == 2


# --------------------------------------------------------------------------- faults


def test_fault_500():
    with start_simulator(p_500=1, seed=1) as s, httpx.Client() as c:
        codes = set()
        for _ in range(8):
            r = chat(c, s)
            codes.add(r.status_code)
            assert r.json()["error"]["type"] == "server_error"
        assert codes <= {500, 502, 503} and len(codes) >= 2
        assert s.stats()["errors_5xx"] == 8


def test_fault_timeout_does_not_block():
    with start_simulator(p_timeout=1, hang_s=1.0) as s, httpx.Client() as c:
        with pytest.raises(httpx.TimeoutException):
            chat(c, s, timeout=0.3)
        # other requests and endpoints are served while requests hang
        t = time.perf_counter()
        assert c.get(s.base_url + "/models", timeout=2).status_code == 200
        assert time.perf_counter() - t < 0.5
        t = time.perf_counter()
        res = _concurrent(s.base_url, [body(MC)] * 4)
        assert time.perf_counter() - t < 2.5  # hung in parallel, not one after another
        assert all(st == 504 for st, _ in res)
        st = s.stats()
        assert st["timeouts"] == 5 and st["ok"] == 0


def test_fault_drop():
    with start_simulator(p_drop=1) as s:
        for _ in range(6):
            with httpx.Client() as c, pytest.raises(httpx.TransportError):
                chat(c, s, timeout=5)
        with httpx.Client() as c:
            assert c.get(s.base_url + "/models").status_code == 200
        st = s.stats()
        assert st["drops"] == 6 and st["ok"] == 0 and st["in_flight"] == 0


def test_fault_malformed():
    with start_simulator(p_malformed=1) as s, httpx.Client() as c:
        for _ in range(6):
            content = content_of(chat(c, s, MC, k=5))
            good = [o for o in extract_objects(content)
                    if isinstance(o, dict) and all(k in o for k in ("Question", "Options", "Answer"))]
            assert len(good) < 5
            assert not is_paper_format(content, 5, list(MC))
        assert s.stats()["malformed"] == 6


def test_fault_duplicate():
    with start_simulator(p_duplicate=1) as s, httpx.Client() as c:
        seen = set()
        for _ in range(6):
            objs = split_objects(content_of(chat(c, s, YN, k=5)))
            assert len(objs) == 5 and all(list(o) == list(YN) for o in objs)
            qs = [norm(o["Question"]) for o in objs]
            dup = (len(set(qs)) < len(qs) or norm(YN["Question"]) in qs or any(q in seen for q in qs))
            assert dup
            seen.update(qs)
        assert s.stats()["duplicates"] == 6


def test_fault_empty():
    with start_simulator(p_empty=1) as s, httpx.Client() as c:
        r = chat(c, s)
        assert r.status_code == 200 and content_of(r) == ""
        assert r.json()["usage"]["completion_tokens"] == 1
        assert s.stats()["empty"] == 1


def test_fault_wrong_format():
    with start_simulator(p_wrong_format=1) as s, httpx.Client() as c:
        for _ in range(10):
            content = content_of(chat(c, s, MC_CTX, k=4))
            assert not is_paper_format(content, 4, list(MC_CTX))
            objs = extract_objects(content)  # but the objects are all there and valid
            assert len(objs) == 4 and all(list(o) == list(MC_CTX) for o in objs)
        assert s.stats()["wrong_format"] == 10


def test_fault_garbage():
    with start_simulator(p_garbage=1) as s, httpx.Client() as c:
        content = content_of(chat(c, s))
        assert content.strip() and "{" not in content and "[" not in content
        assert s.stats()["garbage"] == 1


def test_fault_burst():
    with start_simulator(p_empty=0.2, fault_burst=4, seed=5) as s, httpx.Client() as c:
        empties = [content_of(chat(c, s, YN_CLOSED, k=1)) == "" for _ in range(40)]
        # every burst is 4 consecutive faulty replies (the last one may be cut by the end)
        runs, cur = [], 0
        for e in empties + [False]:
            if e:
                cur += 1
            elif cur:
                runs.append(cur)
                cur = 0
        assert runs and all(r % 4 == 0 for r in runs[:-1])


# --------------------------------------------------------------------------- determinism / lifecycle


def _replies(flags):
    with start_simulator(**flags) as s, httpx.Client() as c:
        return [content_of(chat(c, s, ex, k=3)) for ex in (MC, YN, MC_CTX, YN_CLOSED)]


def test_seed_determinism():
    flags = {"seed": 7, "p_duplicate": 0.3, "p_wrong_format": 0.3, "p_malformed": 0.2}
    a, b = _replies(flags), _replies(flags)
    assert a == b
    assert _replies({**flags, "seed": 8}) != a


def test_sigterm_with_hanging_request():
    s = SimProcess(["--p_timeout", "1", "--hang_s", "300"])
    s.start()
    try:
        t = threading.Thread(target=lambda: _ignore(lambda: httpx.post(
            s.base_url + "/chat/completions", json=body(MC), timeout=10)), daemon=True)
        t.start()
        deadline = time.time() + 5
        while s.stats()["in_flight"] < 1 and time.time() < deadline:
            time.sleep(0.02)
        t0 = time.perf_counter()
        assert s.stop() == 0
        assert time.perf_counter() - t0 < 4.0
    finally:
        s.stop()


def _ignore(fn):
    try:
        fn()
    except httpx.HTTPError:
        pass


def test_restart_on_same_port():
    port = free_port()
    with start_simulator(port=port) as s, httpx.Client() as c:
        assert s.port == port and s.base_url == f"http://127.0.0.1:{port}/v1"
        assert chat(c, s).status_code == 200
        s.kill()
        assert not s.alive
        with pytest.raises(httpx.TransportError):
            chat(c, s, timeout=2)
        s.restart(delay=0.1)
        assert s.alive and s.port == port
        assert chat(c, s).status_code == 200
        assert s.stats()["ok"] == 1  # a fresh process
