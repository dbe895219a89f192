"""What servers say about their limits, in each dialect: pure parsing."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from creator.ratehints import RateLimitHint, parse_duration, requested_in_message, retry_hint_in_message

DATE = "Thu, 03 Dec 2026 10:00:00 GMT"  # the reply's Date: absolute times are read against it


def hint(headers: dict[str, str], body: bytes | None = None) -> RateLimitHint:
    return RateLimitHint.from_reply(CIMultiDict(headers), body, wall_now=0.0)


@pytest.mark.parametrize(
    "text,seconds",
    [("1s", 1.0), ("6m0s", 360.0), ("120ms", 0.12), ("1h2m3.5s", 3723.5), ("2.5", 2.5),
     ("10", 10.0), ("", None), ("soon", None), ("5x", None), ("nan", None)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_openai_dialect():
    h = hint({"x-ratelimit-limit-requests": "1200", "x-ratelimit-remaining-requests": "1199",
              "x-ratelimit-reset-requests": "50ms", "x-ratelimit-limit-tokens": "150000",
              "x-ratelimit-remaining-tokens": "148776", "x-ratelimit-reset-tokens": "6m0s"})
    assert (h.requests.limit, h.requests.remaining, h.requests.reset) == (1200, 1199, 0.05)
    assert (h.tokens.limit, h.tokens.reset, h.tokens.window) == (150000, 360.0, None)
    assert h.requests.refills and h.states_limits


def test_azure_resets_are_bare_seconds():
    h = hint({"x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "10"})
    assert h.requests.reset == 10 and h.requests.limit is None and not h.states_limits


def test_anthropic_dialect_reads_rfc3339_against_the_servers_date():
    h = hint({"date": DATE,
              "anthropic-ratelimit-requests-limit": "50",
              "anthropic-ratelimit-requests-remaining": "49",
              "anthropic-ratelimit-requests-reset": "2026-12-03T10:00:01Z",
              "anthropic-ratelimit-input-tokens-limit": "30000",
              "anthropic-ratelimit-input-tokens-remaining": "29000",
              "anthropic-ratelimit-input-tokens-reset": "2026-12-03T10:00:02+00:00",
              "anthropic-ratelimit-output-tokens-limit": "8000",
              "anthropic-ratelimit-output-tokens-remaining": "8000",
              "anthropic-ratelimit-output-tokens-reset": "2026-12-03T10:00:00Z"})
    assert (h.requests.limit, h.requests.reset, h.requests.window) == (50, 1.0, 60.0)
    assert (h.input_tokens.limit, h.input_tokens.reset) == (30000, 2.0)
    assert h.output_tokens.remaining == 8000 and h.tokens.empty


def test_together_dialect_is_per_second_and_its_reset_is_the_wait_on_a_429():
    headers = {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "0",
               "x-ratelimit-reset": "0.25", "x-tokenlimit-limit": "2500",
               "x-tokenlimit-remaining": "1200"}
    h = hint(headers)
    assert (h.requests.limit, h.requests.window, h.requests.refills) == (20, 1.0, False)
    assert (h.tokens.limit, h.tokens.window) == (2500, 1.0)
    assert h.retry_after is None
    assert hint(headers, b'{"error": {"message": "dynamic_request_limited"}}').retry_after == 0.25


def test_cerebras_names_the_period_after_openai_s_names():
    """Its documented example: the requests a day's, the tokens a minute's, resets in seconds
    (inference-docs.cerebras.ai/support/rate-limits). A day's limit is a budget, the minute's
    paces; where OpenAI's own names are there too, they win."""
    headers = {"x-ratelimit-limit-requests-day": "1000000000",
               "x-ratelimit-limit-tokens-minute": "1000000000",
               "x-ratelimit-remaining-requests-day": "999997455",
               "x-ratelimit-remaining-tokens-minute": "999998298",
               "x-ratelimit-reset-requests-day": "33011.382867097855",
               "x-ratelimit-reset-tokens-minute": "11.382867097854614"}
    h = hint(headers)
    assert (h.requests.limit, h.requests.remaining, h.requests.window) == (1e9, 999997455, 86400)
    assert h.requests.reset == pytest.approx(33011.382867)
    assert (h.tokens.limit, h.tokens.remaining, h.tokens.window) == (1e9, 999998298, 60)
    assert h.tokens.reset == pytest.approx(11.382867)
    both = hint({**headers, "x-ratelimit-limit-requests": "30",
                 "x-ratelimit-remaining-requests": "29", "x-ratelimit-reset-requests": "2s"})
    assert (both.requests.limit, both.requests.window) == (30, None)  # OpenAI's: a minute
    assert both.tokens.window == 60


def test_fireworks_states_prompt_and_generated_tokens_apart():
    h = hint({"x-ratelimit-limit-tokens-prompt": "3600000",
              "x-ratelimit-limit-tokens-generated": "36000",
              "x-ratelimit-remaining-tokens-generated": "35000",
              "x-ratelimit-limit-requests": "6000"})
    assert (h.input_tokens.limit, h.output_tokens.limit) == (3.6e6, 36000)
    assert h.output_tokens.remaining == 35000 and h.requests.limit == 6000
    assert h.tokens.empty


def test_mistral_writes_req_and_a_month_beside_the_minute():
    h = hint({"x-ratelimit-limit-tokens-minute": "5000000",
              "x-ratelimit-remaining-tokens-minute": "4999911",
              "x-ratelimit-tokens-query-cost": "52",
              "x-ratelimit-limit-req-minute": "720", "x-ratelimit-remaining-req-minute": "717",
              "x-ratelimit-limit-tokens-month": "1000000000"})
    assert (h.requests.limit, h.requests.remaining, h.requests.window) == (720, 717, 60)
    assert (h.tokens.limit, h.tokens.remaining, h.tokens.window) == (5e6, 4999911, 60)
    month = hint({"x-ratelimit-limit-tokens-month": "1000000000",
                  "x-ratelimit-remaining-tokens-month": "999"})
    assert month.tokens.window == 30 * 86400  # a budget, not a pace


# An OpenRouter 429 as its users quote them: the limits in the body too, the reset the minute's end
# in Unix milliseconds (2026-09-11 12:08:00 UTC); the reply's Date 30 s before it
OPENROUTER_DATE = "Fri, 11 Sep 2026 12:07:30 GMT"
OPENROUTER_429 = (b'{"error":{"message":"Rate limit exceeded: free-models-per-min. ","code":429,'
                  b'"metadata":{"headers":{"X-RateLimit-Limit":"20","X-RateLimit-Remaining":"0",'
                  b'"X-RateLimit-Reset":"1789128480000"}}}}')


def test_a_reset_written_as_a_unix_time_is_read_as_one_not_as_a_wait_of_decades():
    """X-RateLimit-Reset in Unix milliseconds (OpenRouter) or seconds (GitHub-style APIs) is a
    time: read as a wait, it held a run for 57,000 years after one 429 (the run stopped sending
    at its first 429). It is a minute's count, not Together's second."""
    for reset in ("1789128480000", "1789128480", "Fri, 11 Sep 2026 12:08:00 GMT"):
        h = hint({"date": OPENROUTER_DATE, "X-RateLimit-Limit": "20",
                  "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}, b"{}")
        assert h.requests.reset == pytest.approx(30.0), reset
        assert h.retry_after == pytest.approx(30.0)  # a 429's wait: the window's end
        assert (h.requests.limit, h.requests.window, h.requests.refills) == (20, None, False)
    # OpenAI's names (DigitalOcean's serverless inference: "Unix epoch timestamp ... in
    # seconds") and Retry-After, the same
    h = hint({"date": OPENROUTER_DATE, "x-ratelimit-limit-requests": "20",
              "x-ratelimit-reset-requests": "1789128480", "retry-after": "1789128480"}, b"{}")
    assert h.requests.reset == pytest.approx(30.0) and h.retry_after == pytest.approx(30.0)
    # a wait of more than a second is not Together's per-second window either
    assert hint({"X-RateLimit-Limit": "100", "X-RateLimit-Reset": "42"}).requests.window is None


def test_openrouter_states_its_limits_in_the_429_body_where_headers_are_missing():
    h = hint({"date": OPENROUTER_DATE}, OPENROUTER_429)
    assert (h.requests.limit, h.requests.remaining, h.requests.reset) == (20, 0, pytest.approx(30.0))
    assert h.retry_after == pytest.approx(30.0) and h.limited == "requests"
    # the reply's own headers win over the body's
    h = hint({"date": OPENROUTER_DATE, "X-RateLimit-Limit": "16"}, OPENROUTER_429)
    assert h.requests.limit == 16 and h.requests.remaining == 0
    day = OPENROUTER_429.replace(b"per-min", b"per-day").replace(b"1789128480000", b"1789171200000")
    assert hint({"date": OPENROUTER_DATE}, day).retry_after == pytest.approx(11 * 3600 + 52 * 60 + 30)  # to the UTC midnight
    for body in (b'{"error": {"metadata": {"headers": ["X"]}}}', b'{"error": {"metadata": 1}}',
                 b"metadata but not JSON"):
        assert hint({}, body).requests.empty


def test_ietf_draft_11_policies_with_units():
    h = hint({"RateLimit-Policy": '"requests";q=600;w=60, "tokens";q=150000;qu="tokens";w=60, '
                                  '"daily";q=100000;w=86400',
              "RateLimit": '"requests";r=59;t=1, "tokens";r=149000;t=2, "daily";r=99999;t=3600'})
    assert (h.requests.limit, h.requests.remaining, h.requests.window) == (600, 59, 60)
    assert (h.tokens.limit, h.tokens.reset) == (150000, 2)
    assert not h.requests.refills


def test_ietf_older_drafts():
    h = hint({"RateLimit-Limit": "100", "RateLimit-Remaining": "50", "RateLimit-Reset": "5",
              "RateLimit-Policy": "100;w=10"})
    assert (h.requests.limit, h.requests.remaining, h.requests.reset, h.requests.window) == \
        (100, 50, 5, 10)


@pytest.mark.parametrize("headers,seconds", [
    ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),  # Azure: ms wins
    ({"retry-after": "3"}, 3.0),
    ({"retry-after": "5.289"}, 5.289),
    ({"retry-after": "Thu, 03 Dec 2026 10:00:07 GMT", "date": DATE}, 7.0),  # RFC 9110 date
    ({"retry-after": "Thu, 03 Dec 2026 09:59:00 GMT", "date": DATE}, 0.0),  # in the past
    ({"retry-after": "whenever"}, None),
    ({}, None),
])
def test_retry_after_forms(headers, seconds):
    assert hint(headers).retry_after == seconds


@pytest.mark.parametrize("message,seconds", [
    ("Rate limit reached for gpt-4o on tokens per min (TPM): Limit 10000, Used 8554, "
     "Requested 3082. Please try again in 9.816s. Visit https://platform.openai.com", 9.816),
    ("... Please try again in 644ms.", 0.644),
    ("... Please try again in 1m47.5854s. Visit", 107.5854),
    ("Please retry after 37 seconds.", 37.0),
    ("Rate limit reached. Slow down.", None),
])
def test_try_again_in_the_message(message, seconds):
    assert retry_hint_in_message(message) == (pytest.approx(seconds) if seconds else None)
    body = ('{"error": {"message": "%s", "code": "rate_limit_exceeded"}}' % message).encode()
    assert hint({}, body).retry_after == (pytest.approx(seconds) if seconds else None)


def test_a_header_wins_over_the_message():
    assert hint({"retry-after": "2"}, b"Please try again in 9s").retry_after == 2.0
    assert hint({"retry-after": "2"}, b"Please try again in 0.5s").retry_after == 2.0
    assert hint({"retry-after-ms": "900", "retry-after": "1"},
                b"Please try again in 0.5s").retry_after == 0.9


@pytest.mark.parametrize("headers,message,seconds", [
    ({"retry-after": "1"}, b"Please try again in 83ms.", 0.083),  # Groq: whole seconds, rounded up
    ({"retry-after": "8"}, b"Please try again in 7.66s.", 7.66),
    ({"retry-after": "8"}, b"Please try again in 8s.", 8.0),
    ({"retry-after": "Thu, 03 Dec 2026 10:00:07 GMT", "date": DATE},
     b"Please try again in 6.2s.", 6.2),
])
def test_the_message_says_a_whole_second_retry_after_to_the_millisecond(headers, message, seconds):
    assert hint(headers, message).retry_after == pytest.approx(seconds)


@pytest.mark.parametrize("body,kind", [
    (b'{"error": {"message": "Rate limit reached for gpt-4o on tokens per min (TPM): Limit 1",'
     b' "type": "tokens", "code": "rate_limit_exceeded"}}', "tokens"),
    (b'{"error": {"message": "Rate limit reached ... on requests per min (RPM): Limit 3",'
     b' "type": "requests"}}', "requests"),
    (b'{"error": {"message": "Rate limit reached on tokens per min (TPM)", "type": "x"}}',
     "tokens"),
    (b'{"type": "error", "error": {"type": "rate_limit_error", "message": "This request would '
     b'exceed the rate limit for your organization of 8,000 output tokens per minute."}}',
     "output"),
    (b"Requests to the ChatCompletions_Create Operation have exceeded token rate limit", "tokens"),
    (b'{"error": {"message": "Too many requests"}}', None),
    # a limit on requests in flight: W&B Inference, LiteLLM's proxy, "too many active"
    (b'{"error": {"message": "Concurrency limit reached for requests", "type": "x"}}',
     "concurrency"),
    (b'{"error": {"message": "Max parallel request limit reached."}}', "concurrency"),
    (b'{"error": {"code": "too_many_concurrent_requests", "message": "Too many active inference '
     b'requests. Retry after current requests finish."}}', "concurrency"),
    # Gemini's OpenAI-compatible endpoint answers with a list: no limit named, no error
    (b'[{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", '
     b'"status": "RESOURCE_EXHAUSTED"}}]', None),
])
def test_which_limit_a_429_names(body, kind):
    assert hint({}, body).limited == kind


@pytest.mark.parametrize("body,per_day", [
    (b'{"message":"Tokens per day limit exceeded - too many tokens processed.",'
     b'"type":"too_many_requests_error","param":"quota","code":"token_quota_exceeded"}', True),
    (b'{"error": {"message": "Rate limit reached for gpt-4o-mini on requests per day (RPD): '
     b'Limit 10000, Used 10000, Requested 1."}}', True),
    (b'{"error": {"message": "Rate limit exceeded: free-models-per-day. "}}', True),
    (b'{"message":"Requests per minute limit exceeded - too many requests sent."}', False),
    (b'{"error": {"message": "Rate limited"}}', False),
])
def test_a_429_that_names_a_limit_per_day(body, per_day):
    assert hint({}, body).per_day is per_day


def test_the_cost_a_429_says_the_request_had():
    body = ('{"error": {"message": "Rate limit reached for gpt-4o in organization org-x on tokens '
            'per min (TPM): Limit 30000, Used 27,784, Requested 3,256. Please try again in '
            '1.036s.", "type": "tokens", "code": "rate_limit_exceeded"}}')
    hint = RateLimitHint.from_reply({}, body)
    assert hint.requested == 3256 and hint.limited == "tokens"
    assert hint.retry_after == pytest.approx(1.036)
    assert requested_in_message("Requests to the ChatCompletions_Create Operation have exceeded "
                                "the rate limit. Please retry after 20 seconds.") is None


# Gemini's 429, as public issues quote it (google-gemini/gemini-cli 13112, gemini-cli-action 36):
# Google's error model, no rate-limit header, no Retry-After
GEMINI_429 = (
    '{"error": {"code": 429, "message": "You exceeded your current quota, please check your plan '
    'and billing details. For more information on this error, head to: https://ai.google.dev/'
    'gemini-api/docs/rate-limits.\\n* Quota exceeded for metric: generativelanguage.googleapis.com/'
    'generate_content_free_tier_input_token_count, limit: 250000, model: gemini-2.5-flash\\n'
    'Please retry in 39.844676573s.", "status": "RESOURCE_EXHAUSTED", "details": ['
    '{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": '
    '"generativelanguage.googleapis.com/generate_content_free_tier_input_token_count", "quotaId": '
    '"GenerateContentInputTokensPerModelPerMinute-FreeTier", "quotaDimensions": {"location": '
    '"global", "model": "gemini-2.5-flash"}, "quotaValue": "250000"}]}, '
    '{"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more", '
    '"url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}, '
    '{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "39s"}]}}')


def test_gemini_states_the_quota_it_broke_and_when_to_retry_in_the_429_body():
    h = hint({}, GEMINI_429)
    assert h.retry_after == pytest.approx(39.844676573)  # the message's, to the nanosecond
    assert h.limited == "input" and not h.per_day
    assert (h.input_tokens.limit, h.input_tokens.window) == (250000, 60)
    assert h.requests.empty and h.tokens.empty and h.output_tokens.empty
    # with no wait in the message, RetryInfo's ("at least this long")
    bare = GEMINI_429.replace("\\nPlease retry in 39.844676573s.", "")
    assert hint({}, bare).retry_after == pytest.approx(39.0)
    # a Retry-After header would win
    assert hint({"Retry-After": "3"}, bare).retry_after == pytest.approx(3.0)


def test_gemini_s_openai_compatible_list_and_its_request_quotas_of_a_minute_and_a_day():
    body = ('[{"error": {"code": 429, "message": "Resource exhausted.", "status": '
            '"RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.'
            'QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/'
            'generate_content_paid_tier_requests", "quotaId": "GenerateRequestsPerDayPerProject'
            'PerModel", "quotaValue": "10000"}, {"quotaMetric": "generativelanguage.googleapis.com/'
            'generate_content_paid_tier_requests", "quotaId": "GenerateRequestsPerMinutePer'
            'ProjectPerModel", "quotaValue": "1000"}]}, {"@type": "type.googleapis.com/google.rpc.'
            'RetryInfo", "retryDelay": "2.463586755s"}]}}]')
    h = hint({}, body)
    assert h.retry_after == pytest.approx(2.463586755)
    assert h.limited == "requests" and h.per_day  # the first quota named is the day's
    assert (h.requests.limit, h.requests.window) == (1000, 60)  # the shortest period paces
    # a quota of 0 (a model the tier may not use) states no limit to pace at
    zero = body.replace('"10000"', '"0"').replace('"1000"', '"0"')
    assert hint({}, zero).requests.empty and hint({}, zero).limited == "requests"
    # not Google's model, or not JSON: nothing read from it
    for other in ('{"error": {"details": "google.rpc.RetryInfo"}}', "google.rpc. not JSON"):
        assert hint({}, other).retry_after is None and hint({}, other).requests.empty
