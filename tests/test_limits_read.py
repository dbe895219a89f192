"""Reading a server's limits first (client.LIMITS_READ): one request of one token, whose headers
come back in the time to a first token instead of a whole reply's. End to end against the
simulator with slow replies; the cases it cannot show (a server that refuses max_tokens of 1, the
budgets) against a small aiohttp server in the test's own loop, on 127.0.0.1."""

from __future__ import annotations

import asyncio

import httpx
import orjson
from aiohttp import web

import creatorproc
from benchmarks.simproc import start_simulator
from creator.client import ChatClient
from creator.endpoints import Endpoint
from creator.ratelimit import RetryPolicy
from creator.spend import Spend
from creatorproc import check_records, read_summary, run_creator

YESNO = creatorproc.example_args("yesno_close")


def test_a_limit_stated_in_headers_paces_from_the_first_token_not_the_first_reply(tmp_path):
    """600 RPM enforced per second, stated in OpenAI's headers; replies of ~5 s. The run's first
    request went alone until a reply came; now a one-token request's reply (0.2 s) states the
    limit and the pace starts then: the first 4 s admit ~30 requests, not 1. (4: the first is the
    read's second, which may end as its reply comes.)"""
    out = tmp_path / "out.jsonl"
    with start_simulator(rpm=600, limit_mode="fixed", window_s=1, ttft=0.2, tpot=0.03,
                         seed=5) as sim:
        r = run_creator(*YESNO, "--setting", "naive", "--target", "400", "--concurrency", "64",
                        "--output", str(out), "--base_url", sim.base_url, cwd=tmp_path,
                        timeout=90)
        stats = sim.stats()
        timeline = httpx.get(sim.root_url + "/stats/timeline", timeout=10).json()
    assert r.returncode == 0, r.stderr
    check_records(out, 400)
    summary = read_summary(out)
    endpoint = summary["config"]["endpoints"][0]
    assert endpoint["limit_reads"] == 1
    assert endpoint["stated_limits"]["requests"]["limit"] == 600
    assert stats["rate_limited"] == 0
    assert summary["requests"] == stats["requests"]  # the read is a request like any other
    first = next(i for i, n in enumerate(timeline["admitted"]) if n)
    assert sum(timeline["admitted"][first:first + 4]) >= 20, timeline["admitted"][:6]


class Server:
    """/v1/chat/completions that answers max_tokens of 1 with `read_status` and anything else
    with a reply; every reply states 600 RPM in OpenAI's headers."""

    def __init__(self, read_status: int = 200, read_delay_s: float = 0.0) -> None:
        self.read_status = read_status
        self.read_delay_s = read_delay_s
        self.asked: list[int] = []  # each request's max_tokens, in order

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.asked.append(body.get("max_tokens"))
        headers = {"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "599",
                   "x-ratelimit-reset-requests": "100ms"}
        if body.get("max_tokens") == 1 and self.read_delay_s:
            await asyncio.sleep(self.read_delay_s)
        if body.get("max_tokens") == 1 and self.read_status != 200:
            error = {"error": {"message": "max_tokens is too small", "code": "invalid_value"}}
            return web.Response(status=self.read_status, body=orjson.dumps(error),
                                content_type="application/json", headers=headers)
        completion = 1 if body.get("max_tokens") == 1 else 20
        reply = {"choices": [{"message": {"content": "OK"}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 10, "completion_tokens": completion}}
        return web.Response(body=orjson.dumps(reply), content_type="application/json",
                            headers=headers)


async def _run(server: Server, spend: Spend | None, calls: int = 2, timeout: float = 10.0,
               **endpoint: float) -> ChatClient:
    """`calls` completions through a ChatClient that read the limits first (`endpoint`: the
    Endpoint's limits, if any given)."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        client = ChatClient([Endpoint(f"http://127.0.0.1:{port}/v1", **endpoint)], "m",
                            RetryPolicy(max_retries=2), timeout=timeout)
        client.spend = spend
        async with client:
            client.read_limits()
            for _ in range(calls):
                await client.complete([{"role": "user", "content": "hi"}], max_tokens=50)
        return client
    finally:
        await runner.cleanup()


def test_the_creator_reads_limits_stated_under_cerebras_s_and_fireworks_names(tmp_path):
    """Names none of the dialects read before d6c2482 and the Fireworks commit: the summary shows
    the limits they state (a day's requests leave the pace: a budget)."""
    for flags, stated in (
            (dict(tpm=600000, rpd=100000, headers="cerebras", headers_report="window",
                  token_limit_mode="fixed", token_window_s=60),
             {"tokens": {"limit": 600000, "window_s": 60.0}}),
            (dict(itpm=3_600_000, otpm=360000, headers="fireworks", token_accounting="actual"),
             {"input": {"limit": 3600000, "window_s": 60.0},
              "output": {"limit": 360000, "window_s": 60.0}})):
        out = tmp_path / f"{flags['headers']}.jsonl"
        with start_simulator(ttft=0.05, **flags) as sim:
            r = run_creator(*YESNO, "--setting", "naive", "--target", "30", "--output", str(out),
                            "--base_url", sim.base_url, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        check_records(out, 30)
        assert read_summary(out)["config"]["endpoints"][0]["stated_limits"] == stated


def test_the_read_states_the_limits_and_is_counted_and_billed_like_any_request():
    server, spend = Server(), Spend(price_in=1.0, price_out=2.0)
    client = asyncio.run(_run(server, spend))
    route = client.router.routes[0]
    assert server.asked == [1, 50, 50]  # the read first, then the run's
    assert route.limits.stated["requests"].limit == 600
    assert (client.stats.requests, client.stats.completions) == (3, 2)
    assert (route.stats.requests, route.stats.completions, route.stats.limit_reads) == (3, 2, 1)
    assert client.stats.prompt_tokens == 30 and client.stats.completion_tokens == 41
    assert spend.requests == 3 and spend.reserved_requests == 0
    assert abs(spend.cost - spend.billed(30, 41)) < 1e-12


def test_a_server_that_refuses_a_read_of_one_token_is_not_set_aside():
    """A 400 to the read (a server with its own floor on max_tokens) tells no more than its
    headers: the run's requests go as if it had not been sent, none is refused, and it is not
    billed."""
    server, spend = Server(read_status=400), Spend(price_in=1.0, price_out=2.0)
    client = asyncio.run(_run(server, spend))
    route = client.router.routes[0]
    assert server.asked == [1, 50, 50]
    assert route.set_aside is None and route.stats.completions == 2
    assert route.stats.server_errors == 0 and route.breaker.trips == 0
    assert route.limits.replies == 2  # the refusal was no first reply: the run's first went alone
    assert route.limits.stated["requests"].limit == 600  # (its headers were read all the same)
    assert spend.requests == 3 and abs(spend.cost - spend.billed(20, 40)) < 1e-12


def test_a_read_that_gets_no_answer_is_as_if_it_had_not_gone_but_may_have_been_billed():
    server, spend = Server(read_delay_s=3.0), Spend(price_in=1.0, price_out=2.0)
    client = asyncio.run(_run(server, spend, timeout=1.0))
    route = client.router.routes[0]
    assert route.stats.completions == 2 and route.limits.replies == 2 and route.set_aside is None
    assert route.stats.timeouts == 0 and route.breaker.trips == 0
    assert spend.requests == 3 and spend.lost_replies == 1  # its worst case stays spent


def test_no_read_under_a_request_budget_nor_where_the_limit_is_given():
    """Each request of --max_requests is the user's; a limit given paces from the start."""
    server = Server()
    client = asyncio.run(_run(server, Spend(max_requests=2)))
    assert server.asked == [50, 50] and client.router.routes[0].stats.limit_reads == 0
    server.asked = []
    client = asyncio.run(_run(server, None, calls=1, rpm=600))
    assert server.asked == [50] and client.router.routes[0].stats.limit_reads == 0
