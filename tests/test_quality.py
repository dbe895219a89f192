"""`creator report`: pure statistics on hand-made data, then whole reports on small files (a
bag-of-words stand-in encoder and the real MiniLM) and on the human StrategyQA data."""

from __future__ import annotations

import argparse
import json
import zlib

import numpy as np
import pytest

from creator.quality import (
    EXIT_OK,
    EXIT_USAGE,
    add_report_arguments,
    answer_positions,
    build_report,
    distinct_at_size,
    distinct_n,
    duplicate_flags,
    format_table,
    label_balance,
    length_stats,
    max_similarity,
    mean_pairwise_cosine,
    parse_lines,
    pca_2d,
    run_report,
    word_tokens,
)
from creator.task import Record


def yn(q: str, label="True", **extra) -> dict:
    return {"question": q, "context": None, "options": ["True", "False"], "label": label, **extra}


def mc(q: str, options: list[str], label: str) -> dict:
    return {"question": q, "context": None, "options": options, "label": label}


def write_jsonl(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def parser() -> argparse.ArgumentParser:
    return add_report_arguments(argparse.ArgumentParser(prog="creator report"))


def unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class BagOfWords:
    """A fast stand-in for the sentence encoder: hashed word counts, L2-normalised."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in word_tokens(text):
                out[i, zlib.crc32(word.encode()) % self.dim] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


@pytest.fixture(scope="module")
def minilm():
    from creator.embed import EncoderError, SentenceEncoder

    try:
        encoder = SentenceEncoder()
    except EncoderError as exc:
        pytest.skip(f"no sentence encoder: {exc}")
    yield encoder
    encoder.close()


# --- pure functions ------------------------------------------------------------------------------


def test_duplicates_are_normalised_by_case_and_space():
    qs = ["Is ice cold?", "is  ICE cold? ", "Is fire hot?", "Is ice cold?", "Is ice colder?"]
    assert duplicate_flags(qs) == [False, True, False, True, False]


def test_label_balance_counts_and_majority():
    bal = label_balance(["True", "False", "True", "True"])
    assert bal["counts"] == {"True": 3, "False": 1}
    assert bal["fractions"] == {"True": 0.75, "False": 0.25}
    assert bal["distinct"] == 2 and bal["majority_fraction"] == 0.75 and bal["other"] == 0
    many = label_balance([f"l{i % 30}" for i in range(60)], top=5)
    assert len(many["counts"]) == 5 and many["distinct"] == 30 and many["other"] == 50


def test_answer_position_is_the_index_of_the_label_in_the_options():
    recs = [
        Record("q1", None, ("a", "b", "c"), "a"),
        Record("q2", None, ("x", "y", "z"), "z"),
        Record("q3", None, ("b", "a", "c"), "a"),
        Record("q4", None, ("m", "n", "o"), "m"),
    ]
    pos = answer_positions(recs)
    assert pos["counts"] == {"0": 2, "1": 1, "2": 1}
    assert pos["fractions"]["0"] == 0.5 and pos["majority_fraction"] == 0.5


def test_distinct_n_counts_ngrams_within_each_text():
    texts = ["A b, a!", "a B"]  # tokens: [a b a], [a b]
    assert distinct_n(texts, 1) == 2 / 5
    assert distinct_n(texts, 2) == 2 / 3  # (a b) (b a) | (a b): bigrams never cross texts
    assert distinct_n(["one"], 2) is None and distinct_n([], 1) is None
    assert word_tokens("Don't STOP, now.") == ["don't", "stop", "now"]
    matched = distinct_at_size([f"word{i} common" for i in range(100)], 10)
    assert matched["size"] == 10 and matched["distinct_1"] == 11 / 20


def test_length_stats():
    s = length_stats([1, 2, 3, 4, 100])
    assert s == {"n": 5, "mean": 22.0, "median": 3.0, "p95": pytest.approx(80.8)}
    assert length_stats([])["mean"] is None


def test_blocked_max_similarity_equals_brute_force():
    a, b = unit_rows(37, 8, 1), unit_rows(23, 8, 2)
    full = a @ a.T
    earlier = np.array([full[i, :i].max() if i else -np.inf for i in range(len(a))])
    got = max_similarity(a, row_block=5, col_block=7)  # many blocks, diagonal crossing them
    assert got[0] == -np.inf
    np.testing.assert_allclose(got[1:], earlier[1:], rtol=1e-5)
    np.testing.assert_allclose(max_similarity(a, b, row_block=4, col_block=6),
                               (a @ b.T).max(axis=1), rtol=1e-5)


def test_mean_pairwise_cosine_is_exact():
    x = unit_rows(50, 16, 3)
    sims = x @ x.T
    brute = sims[np.triu_indices(50, k=1)].mean()
    assert mean_pairwise_cosine(x) == pytest.approx(float(brute), abs=1e-6)
    assert mean_pairwise_cosine(x[:1]) is None


def test_pca_projects_onto_the_widest_directions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([10.0, 3.0, 0.1, 0.1, 0.1])
    proj = pca_2d(x)
    assert proj.shape == (200, 2)
    assert proj[:, 0].var() > proj[:, 1].var() > 1.0
    assert pca_2d(np.zeros((0, 4))).shape == (0, 2)


def test_invalid_lines_are_counted_by_reason_never_raised():
    lines = [
        json.dumps(yn("Is ice cold?", True, meta={"id": 1, "depth": 0})),  # bool label, meta
        "",
        "not json at all",
        json.dumps(["a", "list"]),
        json.dumps({"question": "q", "options": ["True", "False"]}),
        json.dumps(yn("Is fire hot?", "Maybe")),
        json.dumps(yn("", "True")),
        json.dumps({"question": "q", "options": ["a"], "label": "a"}),
        json.dumps(yn("Is it torn?"))[:20],  # a torn last line
        b"\xff\xfe binary",
    ]
    read = parse_lines(lines)
    assert read.lines == 9 and [r.label for r in read.records] == ["True"]
    assert read.invalid == {  # the records module's reason codes
        "not_json": 3, "not_an_object": 1, "missing_field": 1,
        "label_not_in_options": 1, "bad_question": 1, "bad_options": 1,
    }  # fmt: skip
    assert read.first_invalid["not_json"] == 3


# --- whole reports -------------------------------------------------------------------------------


def small_file(tmp_path):
    rows = [
        yn("Is the Eiffel Tower taller than the Statue of Liberty?", "True"),
        yn("Can a penguin survive in the Sahara desert during summer?", False),
        yn("Do cats like to swim in cold water?", "False"),
        yn("is the eiffel tower taller than  the Statue of Liberty?", "True"),  # exact dup
        "{broken json",
        yn("Is the Eiffel Tower higher than the Statue of Liberty?", "True"),  # near dup
        yn("Would a vegan eat a hamburger made of beef?", "False"),
        {"question": "missing label", "options": ["True", "False"]},
        yn("Can a penguin live in the Sahara desert during summer?", "True"),  # near dup
        yn("Does the moon have its own light?", "False", meta={"id": 9}),
    ]
    path = tmp_path / "created.jsonl"
    write_jsonl(path, rows)
    return path


def test_report_on_a_small_file_with_the_real_encoder(tmp_path, minilm):
    report = build_report(small_file(tmp_path), encoder=minilm, threshold=0.9)
    c = report["created"]
    assert (c["lines"], c["valid"], c["invalid"]) == (10, 8, 2)
    assert c["valid_rate"] == 0.8
    assert c["invalid_by_reason"] == {"not_json": {"count": 1, "first_line": 5},
                                      "missing_field": {"count": 1, "first_line": 8}}
    assert c["exact_duplicates"] == {"count": 1, "rate": 1 / 8}
    nd = c["near_duplicates"]
    assert nd["count"] == 3 and nd["not_exact"] == 2  # the exact dup + two paraphrases
    assert c["labels"]["counts"] == {"True": 4, "False": 4}
    assert c["answer_positions"] is None and c["format"] == "yes/no"
    d = c["diversity"]
    assert 0.3 < d["mean_pairwise_cosine_distance"] < 1.0 and d["pairs"] == 28
    assert 0 < d["distinct_1"] < d["distinct_2"] <= 1
    assert c["lengths"]["question_words"]["n"] == 8
    assert c["lengths"]["context_words"]["n"] == 0
    assert report["human"] is None and report["overlap"] is None
    assert report["encoded_questions"] == 8  # the exact dup differs in case/space: own text
    table = format_table(report)
    assert "near-duplicates (cos > 0.9)" in table and "3 (37.5%)" in table


def test_each_question_text_is_encoded_once(tmp_path):
    enc = BagOfWords()
    created = tmp_path / "c.jsonl"
    ref = tmp_path / "r.jsonl"
    write_jsonl(created, [yn("Is a dog a mammal?"), yn("Is a dog a mammal?"), yn("Is a cat?")])
    write_jsonl(ref, [yn("Is a dog a mammal?", True), yn("Is a fish wet?", False)])
    report = build_report(created, reference=ref, encoder=enc)
    assert len(enc.calls) == 1 and sorted(enc.calls[0]) == sorted(
        ["Is a dog a mammal?", "Is a cat?", "Is a fish wet?"])
    ov = report["overlap"]
    assert ov["exact_count"] == 2 and ov["exact_distinct"] == 1 and ov["near_count"] == 2
    assert report["human"]["labels"]["counts"] == {"False": 1, "True": 1}  # booleans accepted


def test_multiple_choice_report_json_and_plot(tmp_path, capsys):
    rows = [mc(f"Where would you find item {i}?", ["bank", "library", "mall"],
               ["bank", "library", "mall"][i % 3 if i < 9 else 0]) for i in range(12)]
    created = tmp_path / "mc.jsonl"
    write_jsonl(created, rows)
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    args = parser().parse_args([str(created), "--reference", str(created), "--json",
                                str(out_json), "--plot", str(out_png)])
    assert run_report(args, encoder=BagOfWords()) == EXIT_OK
    report = json.loads(out_json.read_text())
    pos = report["created"]["answer_positions"]["counts"]
    assert pos == {"0": 6, "1": 3, "2": 3}
    assert report["created"]["format"] == "multiple choice"
    assert report["overlap"]["exact_rate"] == 1.0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "answer at position 0" in table and "6 (50.0%)" in table


def test_reference_on_strategyqa(tmp_path, shared_data, minilm, capsys):
    lines = (shared_data / "yesno_close" / "strategyqa" / "train.jsonl").read_text().splitlines()
    ref = tmp_path / "train.jsonl"
    ref.write_text("\n".join(lines[:300]) + "\n")
    human = [json.loads(x) for x in lines[:300]]
    created_rows = [yn(h["question"], str(h["label"])) for h in human[:20]]  # copied: overlap
    created_rows += [yn(f"Is the number {i} larger than {i + 7}?", "False") for i in range(40)]
    created_rows += [yn("Is water wet?", "True")] * 5 + ["[1, 2"]
    created = tmp_path / "created.jsonl"
    write_jsonl(created, created_rows)
    out_json, out_png = tmp_path / "report.json", tmp_path / "report.png"
    args = parser().parse_args([str(created), "--reference", str(ref), "--json", str(out_json),
                                "--plot", str(out_png), "--near_dup_threshold", "0.95"])
    assert run_report(args, encoder=minilm) == EXIT_OK
    table = capsys.readouterr().out
    assert "created" in table and "human" in table and "exact question overlap" in table
    report = json.loads(out_json.read_text())
    c, h, ov = report["created"], report["human"], report["overlap"]
    assert report["threshold"] == 0.95
    assert (c["lines"], c["valid"], c["invalid"]) == (66, 65, 1)
    assert c["exact_duplicates"]["count"] == 4
    assert h["valid"] == 300 and set(h["labels"]["counts"]) == {"True", "False"}
    assert ov["exact_count"] == 20 and ov["exact_distinct"] == 20
    assert ov["near_count"] >= 20 and 0 < ov["mean_nearest_cosine"] <= 1
    # templated questions are less diverse than human ones, by either measure
    assert (c["diversity"]["mean_pairwise_cosine_distance"]
            < h["diversity"]["mean_pairwise_cosine_distance"])
    assert (c["diversity"]["distinct_matched"]["distinct_1"]
            < h["diversity"]["distinct_matched"]["distinct_1"])
    assert c["diversity"]["distinct_matched"]["size"] == 65
    assert out_png.stat().st_size > 10_000 and out_png.read_bytes()[:4] == b"\x89PNG"


# --- bad input: one line on stderr, exit 2, no traceback -----------------------------------------


class NoEncoder:
    def encode(self, texts):
        raise AssertionError("bad input must fail before anything is encoded")


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "all_invalid", "bad_reference",
                                  "json_folder", "plot_folder"])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    good = tmp_path / "good.jsonl"
    write_jsonl(good, [yn("Is ice cold?")])
    bad = tmp_path / "bad.jsonl"
    argv = [str(good)]
    if case == "missing":
        argv = [str(tmp_path / "nope.jsonl")]
    elif case == "folder":
        argv = [str(tmp_path)]
    elif case == "empty":
        bad.write_text("\n\n")
        argv = [str(bad)]
    elif case == "all_invalid":
        write_jsonl(bad, ["{", {"question": "q"}, yn("q", "Maybe")])
        argv = [str(bad)]
    elif case == "bad_reference":
        argv += ["--reference", str(tmp_path / "nope.jsonl")]
    elif case == "json_folder":
        argv += ["--json", str(tmp_path / "no" / "such" / "r.json")]
    elif case == "plot_folder":
        argv += ["--plot", str(tmp_path)]
    assert run_report(parser().parse_args(argv), encoder=NoEncoder()) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("creator report: error: ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_a_bad_encoder_path_is_one_line(tmp_path, capsys):
    pytest.importorskip("transformers")
    good = tmp_path / "good.jsonl"
    write_jsonl(good, [yn("Is ice cold?")])
    args = parser().parse_args([str(good), "--encoder", str(tmp_path / "no_model")])
    assert run_report(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "cannot load the sentence encoder" in err and "Traceback" not in err


def test_threshold_is_checked_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["f.jsonl", "--near_dup_threshold", "1.5"])
    assert "[-1, 1]" in capsys.readouterr().err
