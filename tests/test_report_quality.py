"""`creator report` and the filters of issue 14: MinHash near-duplicates beside the cosine ones,
and what the filters did while creating (from the run summary beside the file)."""

from __future__ import annotations

import json

import numpy as np

from creator.quality import build_report, creation_filters, format_table, minhash_near_duplicates


class Hashed:
    """A stand-in encoder: hashed word counts, L2-normalised."""

    def encode(self, texts):
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, hash(w) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def yn(q: str, label: bool) -> dict:
    return {"question": q, "context": None, "options": ["True", "False"], "label": label}


def test_minhash_near_duplicates_counts_near_copies_of_earlier_questions():
    questions = ["Is the sky blue on a clear summer day?", "Is the sky blue on a clear summer day ?",
                 "Do fish breathe through their gills?", "IS THE SKY BLUE ON A CLEAR SUMMER DAY?",
                 "Can a penguin fly across the ocean?"]
    got = minhash_near_duplicates(questions)
    assert got["count"] == 2 and got["rate"] == 0.4 and got["threshold"] == 0.6


def test_report_shows_the_filters_of_the_run_that_made_the_file(tmp_path):
    created = tmp_path / "train_tree.jsonl"
    created.write_text("".join(json.dumps(yn(f"Is {n} a prime number?", n % 2 == 0)) + "\n"
                               for n in (2, 3, 5, 7, 11, 13)))
    summary = {
        "status": "completed", "accepted": 6,
        "rejected": {"near_duplicate": 4, "label_over_represented": 2, "failed_verification": 3,
                     "duplicate_question": 1},
        "quality": {"options": {"shuffle_options": True, "near_dup": "embedding",
                                "label_balance": "reference", "verify": 3},
                    "verification": {"votes_per_candidate": 3, "candidates": 10, "agreed": 6,
                                     "disagreed": 3, "unverified": 1, "agreement": 6 / 9}},
    }
    (tmp_path / "train_tree.summary.json").write_text(json.dumps(summary))
    filters = creation_filters(created)
    assert filters["rejected"] == {"duplicate_question": 1, "near_duplicate": 4,
                                   "label_over_represented": 2, "failed_verification": 3,
                                   "unverified": 0}
    report = build_report(created, encoder=Hashed())
    assert report["creation_filters"] == filters
    assert report["created"]["minhash_near_duplicates"]["count"] >= 0
    table = format_table(report)
    assert "near_duplicate: 4" in table and "failed_verification: 3" in table
    assert "verification: 6 of 9 candidates agreed (66.7%), 3 votes each; 1 unverified" in table
    assert "5-gram Jaccard > 0.6" in table
    assert "options shuffled: n/a (yes/no); near-duplicates: embedding" in table


def test_report_of_a_file_without_a_summary_has_no_filter_lines(tmp_path):
    human = tmp_path / "train.jsonl"
    human.write_text(json.dumps(yn("Is water wet?", True)) + "\n")
    report = build_report(human, encoder=Hashed())
    assert report["creation_filters"] is None
    assert "filters while creating" not in format_table(report)


def test_typed_report_carries_the_new_sections(tmp_path):
    """creator.report (the typed Report): position shares, MinHash near-duplicates, label shares
    and verification agreement, in its table, its JSON and its headline."""
    from creator.quality import report

    created = tmp_path / "train_mc.jsonl"
    rows = [{"question": f"Which number is {w}?", "context": None,
             "options": ["one", "two", "three"], "label": ["one", "two", "three"][i % 3]}
            for i, w in enumerate(("small", "large", "odd", "even", "prime", "square"))]
    created.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"accepted": 6, "rejected": {"failed_verification": 2},
               "quality": {"options": {"shuffle_options": True, "near_dup": "minhash",
                                       "label_balance": None, "verify": 3},
                           "verification": {"votes_per_candidate": 3, "candidates": 8,
                                            "agreed": 6, "disagreed": 2, "unverified": 0,
                                            "agreement": 0.75}}}
    (tmp_path / "train_mc.summary.json").write_text(json.dumps(summary))
    rep = report(created, encoder=Hashed())
    assert rep.created.position_shares == {"0": 1 / 3, "1": 1 / 3, "2": 1 / 3}
    assert rep.created.minhash_near_duplicate_rate == 0.0
    assert rep.verification_agreement == 0.75
    assert rep.to_json()["creation_filters"]["rejected"]["failed_verification"] == 2
    assert "verification: 6 of 8 candidates agreed (75.0%)" in rep.table()
    head = rep.headline()
    assert head["verification agreement"] == "75.0%"
    assert head["near-duplicate questions (5-gram Jaccard > 0.6)"] == "0.0%"
