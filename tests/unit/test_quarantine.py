"""Bad rows in a training stream: quarantined with their reason, counted once each, and a job with too many fails."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tripwire.model.encoders import minilm_dir
from tripwire.policy import Taxonomy
from tripwire.training.ingest import PreprocessBatch
from tripwire.data.quarantine import QuarantineLimitExceeded, check_quarantine, read_quarantine


def preprocess(tmp_path, records):
    udf = PreprocessBatch({"text": {"tokenizer": minilm_dir(), "max_length": 16}, "image": {"size": 32}},
                          ["text", "image"], Taxonomy.load().names, str(tmp_path),
                          quarantine_dir=str(tmp_path / "quarantine"))
    ids = [str(json.loads(r).get("id", "")) if r.startswith("{\"") else "" for r in records]
    return udf({"id": np.asarray(ids, dtype=object), "record": np.asarray(records, dtype=object)})


def test_bad_rows_quarantined_with_reasons_and_each_broken_line_counts_once(tmp_path):
    records = [json.dumps({"id": "ok", "text": "hello", "labels": {"hate": 0}}),
               json.dumps({"id": "bad-label", "text": "hi", "labels": {"nope": 1}}),
               json.dumps({"id": "missing", "image": "image/none.png"}),
               "{broken line one", "{broken line two"]
    out = preprocess(tmp_path, records)
    assert list(out["id"]) == ["ok"]
    rows = {row["id"]: row for row in read_quarantine(str(tmp_path / "quarantine"))}
    assert len(rows) == 4
    assert rows["bad-label"]["reason"] == "invalid_row" and "nope" in rows["bad-label"]["detail"]
    assert rows["missing"]["reason"] == "missing_file"
    assert sum(row_id.startswith("line-sha256:") for row_id in rows) == 2
    # A second epoch re-quarantines the same rows: still counted once.
    preprocess(tmp_path, records)
    assert len(read_quarantine(str(tmp_path / "quarantine"))) == 4


def test_quarantine_limit_names_count_limit_reasons_and_place(tmp_path):
    preprocess(tmp_path, ["{broken", json.dumps({"id": "ok", "text": "fine"})])
    assert len(check_quarantine(str(tmp_path / "quarantine"), num_rows=10, max_fraction=0.1)) == 1
    with pytest.raises(QuarantineLimitExceeded, match=r"1 of 5 rows \(20.0%\).*max_quarantine_fraction=10.0%.*invalid_row"):
        check_quarantine(str(tmp_path / "quarantine"), num_rows=5, max_fraction=0.1)
    assert check_quarantine(str(tmp_path / "nothing-here"), num_rows=5, max_fraction=0.0) == []
