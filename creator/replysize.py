"""Ask for no more completion tokens than the replies need, where a token rate limit counts them.

Providers charge a request's max_tokens against their token limits when it is admitted, however
short the reply: OpenAI, https://platform.openai.com/docs/guides/rate-limits : "Your rate limit is
calculated as the maximum of max_tokens and the estimated number of tokens based on the character
count of your request"; Azure OpenAI, https://learn.microsoft.com/en-us/azure/foundry-classic/
openai/how-to/quota : "Set max_tokens to the minimum value ... The rate limit token estimate
includes max_tokens, even if your actual response is much shorter"; Anthropic's older text: "If
you're hitting OTPM limits earlier than expected, try reducing max_tokens". With the default
1,024 and replies of k=5 examples of ~160 tokens, each request is charged six times what it
uses, and a token-bound run creates a sixth of what its limit could give.

So where a token limit applies (or may: the server states no limits), creation requests ask for a
fitted max_tokens: 110% of the longest of the last WINDOW replies plus SLACK, never above the
user's --max_tokens. (Replies of k examples vary little in length: the longest of 256 is a high
quantile already, and the unused part of what is asked is what a server that counts max_tokens
wastes.) A reply that the fit cut (it stopped at the fitted cap) counts as twice that cap for the
next WINDOW replies, so replies that grow are cut once and the fit follows them.

Until SEEN_BEFORE_FIT replies are measured, requests ask for FIRST_MARGIN times the longer of the
reply the projection expects (k exemplar-long objects, or what earlier sessions measured) and the
longest reply yet. The first requests are the ones a fresh limit paces: at 1,024 each they were
given a quarter of the requests a token limit allows until replies came back. (The embedded
SmolLM2's replies were 0.94-2.1x the projection on the four example datasets, README.md under
the projection; a reply cut short keeps its whole objects.) Those first asks also teach OpenAI's
count on per-second windows: charged 477 each (the example's) while we count prompt + reply once
refunds begin, they overfill a second, and that 429's "Requested 477" says max(prompt,
max_tokens). At 2x the overshoot was too small to earn it (fake clock, OpenAI-like, replies of
2.1 s: 96% -> 87-90% of the limit; benchmarks/README, "OpenAI's count on a minute bucket"). A
pure object: the engine asks and tells.
"""

from __future__ import annotations

from collections import deque

SEEN_BEFORE_FIT = 8  # replies measured before the fit
FIRST_MARGIN = 3  # before it: this many times the expected (or longest) reply
WINDOW = 256  # the recent replies the fit covers (a run's replies drift slowly, if at all)
HEADROOM_PERCENT = 110  # of the longest recent reply
SLACK = 16  # tokens: the closing brackets and a stray newline of a reply near the longest
LEAST = 64


class ReplySize:
    """The completion tokens a creation request asks for: until SEEN_BEFORE_FIT whole replies are
    measured, FIRST_MARGIN times the `expected` reply (or the longest yet), else `ceiling` (the
    user's --max_tokens); then fitted to them. Never above `ceiling`."""

    def __init__(self, ceiling: int, expected: int | None = None) -> None:
        self.ceiling = ceiling
        self.expected = expected
        self.recent: deque[int] = deque(maxlen=WINDOW)
        self.cut = 0  # replies that stopped at a fitted cap below the ceiling

    def max_tokens(self) -> int:
        if len(self.recent) < SEEN_BEFORE_FIT:
            if not self.expected:
                return self.ceiling
            guess = FIRST_MARGIN * max([self.expected, *self.recent])
            return min(self.ceiling, max(LEAST, guess))
        fitted = -(-max(self.recent) * HEADROOM_PERCENT // 100) + SLACK  # (rounded up)
        return min(self.ceiling, max(LEAST, fitted))

    def observe(self, completion_tokens: int, finish_reason: str | None, asked: int) -> None:
        """A reply to a request that asked for `asked` completion tokens."""
        if finish_reason == "length":
            if asked < self.ceiling and completion_tokens >= asked:  # our cap, not the user's
                self.cut += 1
                self.recent.append(2 * asked)  # it wanted more: how much more is unknown
            return  # (cut short, or by the server for its own reasons: not a reply's length)
        if completion_tokens > 0:
            self.recent.append(completion_tokens)

    def to_json(self) -> dict[str, int]:
        return {"max_tokens": self.max_tokens(), "replies_measured": len(self.recent),
                "replies_cut": self.cut}
