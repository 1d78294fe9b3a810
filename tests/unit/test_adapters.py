"""Dataset adapters over small files in each public format, written by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tripwire.data.adapters import ADAPTERS, LabelMapping, ingest
from tripwire.common.config import ConfigError
from tripwire.policy import Taxonomy
from tripwire.data.sample import read_manifest

OLID_SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "olid"


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


@pytest.fixture
def sources(tmp_path):
    return {
        "olid": (write(tmp_path / "olid.tsv", 'id\ttweet\tsubtask_a\tsubtask_b\tsubtask_c\n'
                       '1\t@USER you are an "idiot"\tOFF\tTIN\tIND\n2\tlovely day\tNOT\tNULL\tNULL\n'
                       '3\tlovely day\tNOT\tNULL\tNULL\n4\tweird\tMAYBE\tNULL\tNULL\n'), None),
        "davidson": (write(tmp_path / "davidson.csv", ',count,hate_speech,offensive_language,neither,class,tweet\n'
                           '0,3,0,0,3,2,"nice, very nice"\n1,3,2,1,0,0,they are vermin\n'), None),
        "jigsaw": (write(tmp_path / "jigsaw.csv", 'id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate\n'
                         'a1,"you fool",1,0,0,0,1,0\na2,"i will hurt you",1,0,0,1,0,0\na3,"unscored",-1,-1,-1,-1,-1,-1\n'), None),
        "hateful_memes": (write(tmp_path / "memes" / "train.jsonl",
                                json.dumps({"id": 42, "img": "img/42.png", "label": 1, "text": "look at them"}) + "\n"
                                + json.dumps({"id": 43, "img": "img/43.png", "text": "unlabelled"}) + "\n"), None),
        "esc50": (write(tmp_path / "esc" / "meta" / "esc50.csv", 'filename,fold,target,category,esc10,src_file,take\n'
                        '1-100038-A-14.wav,1,14,chirping_birds,False,100038,A\n'), None),
        "manifest": (write(tmp_path / "m" / "manifest.jsonl",
                           json.dumps({"id": "x", "image": "img/x.png", "labels": {"hate": 0}}) + "\n"), None),
    }


def test_every_adapter_is_covered(sources):
    assert set(ADAPTERS.names()) == set(sources)


@pytest.mark.parametrize("name", sorted(ADAPTERS.names()))
def test_adapter_contract(name, sources, tmp_path):
    source, labels_file = sources[name]
    summary = ingest(name, source, str(tmp_path / "out" / f"{name}.jsonl"), labels_file=labels_file)
    samples = list(read_manifest(summary["out"]))
    assert samples and summary["written"] == len(samples)
    taxonomy = Taxonomy.load()
    for sample in samples:
        assert sample.modalities and set(sample.labels) <= set(taxonomy.names)
        for ref in (sample.image, sample.audio, sample.video):
            assert ref is None or ref.startswith("/")  # made absolute: the manifest can live anywhere


def test_olid_labels_dedup_and_unmapped_rows(sources, tmp_path):
    summary = ingest("olid", sources["olid"][0], str(tmp_path / "olid.jsonl"))
    samples = {s.id: s for s in read_manifest(summary["out"])}
    assert samples["olid-1"].labels == {"harassment": 1} and samples["olid-1"].text == '@USER you are an "idiot"'
    assert samples["olid-2"].labels == {"harassment": 0}
    assert summary["duplicates"] == 1 and summary["skipped"] == 1 and "MAYBE" in summary["skip_reasons"][0]


def test_multilabel_columns_and_unknowns(sources, tmp_path):
    samples = list(read_manifest(ingest("jigsaw", sources["jigsaw"][0], str(tmp_path / "j.jsonl"))["out"]))
    by_id = {s.id: s.labels for s in samples}
    assert by_id["jigsaw-a1"] == {"hate": 0, "harassment": 1, "harassment/threatening": 0}
    assert by_id["jigsaw-a2"]["harassment/threatening"] == 1
    assert by_id["jigsaw-a3"] == {}  # -1 = not scored = unknown
    memes = list(read_manifest(ingest("hateful_memes", sources["hateful_memes"][0], str(tmp_path / "h.jsonl"))["out"]))
    assert memes[0].labels == {"hate": 1} and memes[0].image.endswith("memes/img/42.png") and memes[1].labels == {}


def test_mapping_validation(tmp_path):
    bad = write(tmp_path / "m.yaml", "adapter: olid\ntaxonomy_version: '1'\nvalues: {'OFF': {harassment: 2}}\n")
    with pytest.raises(ConfigError, match="values.OFF.harassment"):
        LabelMapping.load("olid", bad)
    both = write(tmp_path / "b.yaml", "adapter: olid\ntaxonomy_version: '1'\n")
    with pytest.raises(ConfigError, match="exactly one"):
        LabelMapping.load("olid", both)
    wrong = write(tmp_path / "w.yaml", "adapter: olid\ntaxonomy_version: '1'\nvalues: {'OFF': {offensive: 1}}\n")
    with pytest.raises(ConfigError, match="not in taxonomy"):
        LabelMapping.load("olid", wrong).check_taxonomy(Taxonomy.load())


@pytest.mark.skipif(not OLID_SHARED.exists(), reason="shared OLID files not present")
def test_real_olid_files_stream_through(tmp_path):
    train = ingest("olid", str(OLID_SHARED / "olid-training-v1.0.tsv"), str(tmp_path / "train.jsonl"))
    test = ingest("olid", str(OLID_SHARED / "testset-levela.tsv"), str(tmp_path / "test.jsonl"),
                  labels_file=str(OLID_SHARED / "labels-levela.csv"), dedupe=False)
    assert train["written"] + train["duplicates"] == 13240 and train["skipped"] == 0
    assert test["written"] == 860 and test["duplicates"] == 0
    positives = sum(s.labels.get("harassment", 0) for s in read_manifest(test["out"]))
    assert positives == 240


def test_olid_collapses_mention_runs():
    from tripwire.data.adapters import collapse_mentions

    assert collapse_mentions("@USER @USER  @USER you are a joke @USER") == "@USER you are a joke @USER"
    assert collapse_mentions("no mentions") == "no mentions"
