"""Splits: deterministic, stratified per category, grouped (no group straddles splits)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from tripwire.common.config import ConfigError
from tripwire.data.splits import (assign_splits, group_key, in_split, near_duplicate_key, read_splits, split_columns,
                             split_keys, write_splits)
from tripwire.training.config import DataConfig

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def corpus(n: int = 2000, seed: int = 0, authors: int = 300):
    """Rows with two categories: one common (20%), one rare (2%); authors post several rows each."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        labels = [int(rng.random() < 0.2), int(rng.random() < 0.02)]
        if rng.random() < 0.1:
            labels[1] = -1  # unknown for this row
        rows.append((f"row-{i}", f"author-{rng.randrange(authors)}", labels))
    return rows


def split_stats(rows, assignment):
    stats = {}
    for name in FRACTIONS:
        members = [labels for row_id, _, labels in rows if assignment[row_id] == name]
        matrix = np.asarray(members)
        stats[name] = {"rows": len(members), "pos": (matrix == 1).sum(0)}
    return stats


def test_every_row_assigned_and_deterministic_in_any_order():
    rows = corpus()
    first = assign_splits(rows, FRACTIONS, seed=1)
    shuffled = rows[:]
    random.Random(9).shuffle(shuffled)
    assert set(first) == {r[0] for r in rows}
    assert assign_splits(shuffled, FRACTIONS, seed=1) == first
    assert assign_splits(rows, FRACTIONS, seed=2) != first  # the seed moves rows, not the balance


@pytest.mark.parametrize("grouped", [False, True])
def test_stratified_per_category_including_a_rare_one(grouped):
    rows = corpus()
    if not grouped:
        rows = [(row_id, f"id:{row_id}", labels) for row_id, _, labels in rows]
    assignment = assign_splits(rows, FRACTIONS, seed=0)
    stats = split_stats(rows, assignment)
    total_rows = len(rows)
    total_pos = sum(s["pos"] for s in stats.values())
    for name, share in FRACTIONS.items():
        assert abs(stats[name]["rows"] / total_rows - share) < 0.02, (name, stats[name])
        for category in range(2):
            want = share * total_pos[category]
            # Ungrouped: within one positive of exact; grouped: within a few (whole authors move).
            assert abs(stats[name]["pos"][category] - want) <= (6 if grouped else 1.01), (name, category, stats)


def test_groups_never_straddle_splits():
    rows = corpus()
    assignment = assign_splits(rows, FRACTIONS, seed=0)
    split_of_group: dict[str, set] = {}
    for row_id, group, _ in rows:
        split_of_group.setdefault(group, set()).add(assignment[row_id])
    assert all(len(splits) == 1 for splits in split_of_group.values())


def test_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(corpus(10), {"train": 0.5, "val": 0.2})


def test_group_keys_and_near_duplicates():
    assert near_duplicate_key("You are an IDIOT!!! 😡") == near_duplicate_key("you are an idiot")
    assert group_key("a", "Hello, World", {}, "text") == group_key("b", "hello world!", {}, "text")
    assert group_key("a", "x", {"author": "u1"}, "meta.author") == "meta:u1"
    assert group_key("a", "x", {}, "meta.author") == "id:a"  # no author: the row is its own group
    assert group_key("a", "", {}, "text") == "id:a"  # nothing to compare: its own group
    assert group_key("a", "x", {"author": "u1"}, None) == "id:a"


def test_near_duplicates_grouped_by_text_share_a_split():
    records = [json.dumps({"id": f"r{i}", "text": text, "labels": {"hate": i % 2}})
               for i, text in enumerate(["Go away!", "go   away", "GO AWAY!!", "hello there", "Hello there."] * 20)]
    records.append("{not json")
    columns = split_columns(records, ["hate", "sexual"], "text")
    assert sum(columns["parsed"]) == 100 and len(columns["id"]) == 101  # the broken line: quarantined later
    assert columns["labels"][0] == [0, -1]
    rows = list(zip(columns["id"], columns["group"], columns["labels"]))[:100]
    assignment = assign_splits(rows, {"train": 0.5, "val": 0.5})
    assert len({assignment[f"r{i}"] for i in range(100) if i % 5 < 3}) == 1
    assert len({assignment[f"r{i}"] for i in range(100) if i % 5 >= 3}) == 1


def test_membership_table_and_parquet_round_trip(tmp_path):
    assignment = assign_splits(corpus(300), FRACTIONS)
    keys = split_keys(assignment, "val")
    ids = list(assignment)
    assert list(in_split(ids, keys)) == [assignment[i] == "val" for i in ids]
    assert not in_split(ids, split_keys({}, "val")).any()
    write_splits(assignment, str(tmp_path / "run" / "splits.parquet"))
    assert read_splits(str(tmp_path / "run" / "splits.parquet")) == assignment


@pytest.mark.parametrize("kwargs, field", [
    ({"test_fraction": 0.9}, "test_fraction"),
    ({"group_by": "author"}, "group_by"),
    ({"max_quarantine_fraction": 1.5}, "max_quarantine_fraction"),
    ({"preprocess_actors": 0}, "preprocess_actors"),
])
def test_data_config_rejects_bad_split_settings(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        DataConfig(**kwargs)
