"""Every registered encoder through the real Serve graph: a model whose video encoder runs whole in its own
deployment (``video_cnn``) and that names every kind of expert (speech, OCR, nudity: each its own deployment, the
transcripts and the text read back through the text encoder's) serves the same complete results over HTTP as the
moderation core in process.

The session app covers the split video encoder (``frame_pool``: frames through the image deployment);
tests/unit/test_moderation.py runs both shapes in process for every registry entry.
"""

from __future__ import annotations

import dataclasses

import httpx

from PIL import Image

from helpers import QUIET_SERVE, assert_same_result, drawn_card, save_tiny_checkpoint, speak
from tripwire.model import ENCODERS
from tripwire.model.safety_model import ComponentConfig
from tripwire.moderation.moderator import Moderator
from tripwire.data.sample import Sample, read_manifest, request_body


def test_a_whole_video_encoder_serves_the_same_results_as_in_process(serve_endpoint, cores_for_training,
                                                                     tiny_model_config, tiny_corpus, tmp_path):
    """Its own app beside the session's would need 2.1 of the 2 CPUs, so the session app yields them."""
    from ray import serve

    from deployments.app import build_app

    assert ENCODERS.get("video_cnn").serving_upstream is None
    config = dataclasses.replace(
        tiny_model_config, experts={"speech": ComponentConfig("faster_whisper"), "ocr": ComponentConfig("rapidocr"),
                                    "nudity": ComponentConfig("opennsfw")},
        encoders=dict(tiny_model_config.encoders, video=ComponentConfig("video_cnn", {"channels": [4, 8], "out_dim": 16})))
    checkpoint = save_tiny_checkpoint(config, tmp_path / "model")
    app = build_app({"checkpoint": checkpoint})
    serve.run(app, name="contract", route_prefix="/contract", logging_config=QUIET_SERVE)
    try:
        assert set(serve.status().applications["contract"].deployments) == {
            "Ingress", "TextEncoder", "ImageEncoder", "AudioEncoder", "VideoEncoder", "FusionHead", "SpeechExpert",
            "OcrExpert", "NudityExpert"}
        base = str(tiny_corpus.parent)
        samples = [s for s in read_manifest(str(tiny_corpus)) if "video" in s.modalities][:2]
        samples += [s for s in read_manifest(str(tiny_corpus)) if s.modalities == ["text", "image"]][:1]
        Image.fromarray(drawn_card("We will kill you tomorrow")[0]).save(tmp_path / "drawn.png")
        samples.append(Sample.from_row({"id": "drawn", "image": str(tmp_path / "drawn.png")}))
        samples.append(Sample.from_row({"id": "spoken", "audio": speak("I will kill you tomorrow.", tmp_path / "spoken.wav")}))
        reference = Moderator.local(checkpoint).moderate_sync(samples, base)
        assert reference[-1].modalities == ["audio", "speech"] and "kill" in reference[-1].evidence["speech"]["text"]
        assert reference[-2].modalities == ["image", "image_text", "nudity"]
        assert "kill" in reference[-2].evidence["image_text"]["text"]
        url = f"{serve_endpoint['url']}/contract"
        with httpx.Client(timeout=60) as client:
            for sample, expected in zip(samples, reference):
                response = client.post(f"{url}/v1/moderate", json=request_body(sample, base))
                assert response.status_code == 200, response.text
                assert_same_result(response.json(), expected, where=f"{sample.id} {sample.modalities}")
                if "video" in sample.modalities:
                    assert response.json()["evidence"]["video_top_frames"]
    finally:
        serve.delete("contract")
