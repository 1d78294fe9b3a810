"""Media over its size limit is refused before it is read whole: the store's size first, then a read capped at
the limit (for stores that report no size), and inline base64 by its encoded length before decoding."""

from __future__ import annotations

import base64
import io
import json

import fsspec
import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from tripwire.data.media import MediaError, MediaLimits
from tripwire.data.sample import Sample, read_media


class _SizelessFS(MemoryFileSystem):
    """A store that reports no sizes (some HTTP servers, streams), recording how many bytes each read took."""

    protocol = "sizeless"
    store: dict = {}  # its own, not the memory:// store other tests use
    pseudo_dirs = [""]
    read_bytes: list[int] = []

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(path.removeprefix("sizeless://"))

    def info(self, path, **kwargs):
        info = dict(super().info(path, **kwargs))
        info.pop("size", None)
        return info

    def _open(self, path, mode="rb", **kwargs):
        if mode != "rb":
            return super()._open(path, mode, **kwargs)
        data = self.cat_file(path)
        counts = _SizelessFS.read_bytes

        class Counting(io.BytesIO):
            def read(self, size=-1):
                chunk = super().read(size)
                counts.append(len(chunk))
                return chunk

        return Counting(data)


fsspec.register_implementation("sizeless", _SizelessFS, clobber=True)


@pytest.fixture
def sizeless():
    fs = _SizelessFS()
    _SizelessFS.read_bytes = []
    yield fs
    _SizelessFS.store.clear()


def test_a_file_over_the_limit_is_refused_by_its_size_naming_size_and_limit(tmp_path):
    big = tmp_path / "big.mp4"
    with open(big, "wb") as handle:  # sparse: 3 GiB on paper, nothing on disk; a whole read would take 3 GiB
        handle.truncate(3 * 2**30)
    with pytest.raises(MediaError) as info:
        read_media("video", "big.mp4", str(tmp_path), max_bytes=1000)
    assert info.value.field == "video" and info.value.reason == "too_large"
    assert str(3 * 2**30) in info.value.detail and "1000" in info.value.detail and "big.mp4" in info.value.detail
    (tmp_path / "ok.bin").write_bytes(b"x" * 1000)
    assert read_media("video", "ok.bin", str(tmp_path), max_bytes=1000) == b"x" * 1000


def test_a_store_without_sizes_is_read_at_most_one_byte_past_the_limit(sizeless):
    sizeless.pipe("/media/big.png", b"\x89PNG" + bytes(1_000_000))
    with pytest.raises(MediaError) as info:
        read_media("image", "sizeless:///media/big.png", None, max_bytes=1000)
    assert info.value.reason == "too_large" and "1000" in info.value.detail
    assert sum(_SizelessFS.read_bytes) <= 1001
    sizeless.pipe("/media/small.png", b"abc")
    assert read_media("image", "sizeless:///media/small.png", None, max_bytes=3) == b"abc"


def test_inline_media_over_the_limit_is_refused_before_decoding():
    payload = base64.b64encode(bytes(3000)).decode()
    with pytest.raises(MediaError, match="too_large"):
        read_media("audio", "data:audio/wav;base64," + payload, None, max_bytes=1000)
    # Judged by its encoded length: even invalid base64 is refused as too large, never decoded.
    with pytest.raises(MediaError, match="too_large"):
        read_media("audio", "data:audio/wav;base64," + "@" * 4000, None, max_bytes=1000)
    with pytest.raises(MediaError, match="too_large"):
        read_media("image", bytes(1001), None, max_bytes=1000)
    assert read_media("audio", "data:audio/wav;base64," + base64.b64encode(bytes(1000)).decode(), None,
                      max_bytes=1000) == bytes(1000)


def test_without_a_limit_the_fields_default_limit_applies(tmp_path):
    default = MediaLimits().max_image_bytes
    with open(tmp_path / "huge.png", "wb") as handle:
        handle.truncate(default + 1)
    with pytest.raises(MediaError, match=f"limit {default}"):
        read_media("image", "huge.png", str(tmp_path))
    assert MediaLimits().max_bytes("video") == MediaLimits().max_video_bytes


def test_the_preprocessor_caps_each_read_at_its_modalitys_limit(tiny_model_config, sizeless):
    import dataclasses

    from tripwire.data.preprocess import Preprocessor

    config = dataclasses.replace(tiny_model_config.preprocessing, limits=MediaLimits(max_image_bytes=2000))
    sizeless.pipe("/big.png", bytes(500_000))
    with pytest.raises(MediaError, match="image: too_large"):
        Preprocessor(config, ["image"]).sample(Sample(id="x", image="sizeless:///big.png"))
    assert sum(_SizelessFS.read_bytes) <= 2001


def test_a_scan_quarantines_an_oversized_item_with_its_reason(tiny_model_config, tmp_path, sizeless):
    from tripwire.common.config import to_dict
    from tripwire.data.quarantine import read_quarantine
    from tripwire.scan.stages import prepare_batch
    from tripwire.data.synthetic import encode_image

    config = dataclasses_replace_limits(tiny_model_config.preprocessing, max_image_bytes=5000)
    (tmp_path / "small.png").write_bytes(encode_image(np.zeros((8, 8, 3), np.uint8), "PNG"))
    with open(tmp_path / "big.png", "wb") as handle:
        handle.truncate(20 * 2**20)
    sizeless.pipe("/streamed.png", bytes(500_000))
    rows = [{"id": "small", "image": "small.png"}, {"id": "big", "image": "big.png"},
            {"id": "streamed", "image": "sizeless:///streamed.png"}]
    out = prepare_batch({"id": np.asarray([r["id"] for r in rows], object),
                         "record": np.asarray([json.dumps(r) for r in rows], object)},
                        json.dumps(to_dict(config)), ("image",), str(tmp_path), str(tmp_path / "q"), None)
    assert list(out["id"]) == ["small"]
    quarantined = {row["id"]: row for row in read_quarantine(str(tmp_path / "q"))}
    assert {row["reason"] for row in quarantined.values()} == {"too_large"} and set(quarantined) == {"big", "streamed"}
    assert str(20 * 2**20) in quarantined["big"]["detail"] and "5000" in quarantined["big"]["detail"]
    assert sum(_SizelessFS.read_bytes) <= 5001


def dataclasses_replace_limits(preprocessing, **limits):
    import dataclasses

    return dataclasses.replace(preprocessing, limits=dataclasses.replace(preprocessing.limits, **limits))


def test_content_hashes_stream_media_of_any_size(tmp_path):
    """Hashing decides nothing, so it is not bound by the read limits: an image over the default limit
    (which read_media refuses) is hashed in chunks, to the same digest as hashing its bytes."""
    from tripwire.data.media import MediaLimits
    from tripwire.data.sample import content_digest, content_digest_of

    data = bytes(range(256)) * (MediaLimits().max_bytes("image") // 256 + 4096)
    (tmp_path / "big.png").write_bytes(data)
    with pytest.raises(MediaError, match="too_large|limit"):
        read_media("image", "big.png", str(tmp_path))
    digest = content_digest_of("caption", {"image": "big.png", "audio": None}, str(tmp_path))
    assert digest == content_digest("caption", {"image": data})
    assert digest != content_digest_of("other caption", {"image": "big.png"}, str(tmp_path))
    assert content_digest_of("caption", {}, None) == content_digest("caption", {})
