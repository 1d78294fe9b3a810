"""Golden sets: registration versions content, a changed set is refused, bad sets give clear errors."""

from __future__ import annotations

import json

import pytest

from tripwire.common.config import ConfigError
from tripwire.evaluation.golden import load_catalogue, register, resolve, verify
from tripwire.policy import Taxonomy

NAMES = Taxonomy.load().names


def _manifest(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _rows(n=5):
    return [{"id": f"i{i}", "text": f"text {i}", "labels": {"hate": i % 2}} for i in range(n)]


def test_register_versions_by_content_and_resolves_names(tmp_path):
    catalogue = str(tmp_path / "golden" / "catalogue.yaml")
    (tmp_path / "golden").mkdir()
    manifest = _manifest(tmp_path / "golden" / "set.jsonl", _rows())
    first, new = register("demo", manifest, NAMES, "unit test", "CC0", "hand-made", catalogue=catalogue)
    assert new and first.ref == "demo@1" and first.items == 5 and first.categories == ["hate"]
    assert first.manifest == "set.jsonl"  # inside the catalogue's folder: stored relative, so the folder can move
    again, new = register("demo", manifest, NAMES, "unit test", "CC0", "hand-made", catalogue=catalogue)
    assert not new and again == first
    _manifest(tmp_path / "golden" / "set2.jsonl", _rows(7))
    second, new = register("demo", str(tmp_path / "golden" / "set2.jsonl"), NAMES, "unit test", "CC0", "hand-made",
                           catalogue=catalogue)
    assert new and second.version == 2
    assert resolve("demo", catalogue) == second and resolve("demo@1", catalogue) == first
    assert len(load_catalogue(catalogue).sets) == 2
    assert verify(first, catalogue).endswith("set.jsonl")


def test_a_changed_set_is_refused(tmp_path):
    catalogue = str(tmp_path / "catalogue.yaml")
    manifest = _manifest(tmp_path / "set.jsonl", _rows())
    golden, _ = register("demo", manifest, NAMES, "s", "l", "p", catalogue=catalogue)
    rows = _rows()
    rows[2]["labels"]["hate"] = 1 - rows[2]["labels"]["hate"]  # one relabelled item
    _manifest(tmp_path / "set.jsonl", rows)
    with pytest.raises(ConfigError, match="demo@1: content changed since it was registered"):
        verify(golden, catalogue)


def test_media_files_are_part_of_the_hash(tmp_path):
    catalogue = str(tmp_path / "catalogue.yaml")
    (tmp_path / "a.png").write_bytes(b"first image bytes")
    manifest = _manifest(tmp_path / "set.jsonl", [{"id": "x", "image": "a.png", "labels": {"sexual": 0}}])
    golden, _ = register("media", manifest, NAMES, "s", "l", "p", catalogue=catalogue)
    (tmp_path / "a.png").write_bytes(b"other image bytes")
    with pytest.raises(ConfigError, match="content changed"):
        verify(golden, catalogue)
    (tmp_path / "a.png").unlink()
    with pytest.raises(ConfigError, match="image file .*a.png does not exist"):
        verify(golden, catalogue)


@pytest.mark.parametrize("rows, message", [
    ([{"id": "a", "text": "x", "labels": {"not_a_category": 1}}], "labels outside the taxonomy: 'not_a_category'"),
    ([{"id": "a", "text": "x"}], "no row labels any category"),
])
def test_bad_sets_are_named(tmp_path, rows, message):
    with pytest.raises(ConfigError, match=message):
        register("bad", _manifest(tmp_path / "set.jsonl", rows), NAMES, "s", "l", "p",
                 catalogue=str(tmp_path / "catalogue.yaml"))


def test_missing_files_and_unknown_names(tmp_path):
    catalogue = str(tmp_path / "catalogue.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        register("gone", str(tmp_path / "missing.jsonl"), NAMES, "s", "l", "p", catalogue=catalogue)
    with pytest.raises(ConfigError, match="'nope' is not registered"):
        resolve("nope", catalogue)
    golden, _ = register("demo", _manifest(tmp_path / "set.jsonl", _rows()), NAMES, "s", "l", "p", catalogue=catalogue)
    with pytest.raises(ConfigError, match="has no version 9"):
        resolve("demo@9", catalogue)
    (tmp_path / "set.jsonl").unlink()
    with pytest.raises(ConfigError, match="demo@1: manifest .* does not exist"):
        verify(golden, catalogue)
