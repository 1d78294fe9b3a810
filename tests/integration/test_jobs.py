"""Long media through the asynchronous job API, over real HTTP on the session's Serve app: refused by the
synchronous route with a 413 naming the job route, taken by URI as a job, worked window by window with its progress
shown, carried through the loss of the ingress replica working on it, and answered with the result the moderation
core gives in process."""

from __future__ import annotations

import base64
import io
import time

import httpx
import numpy as np
import soundfile

from helpers import assert_same_result

LENGTH_S = 1800


def _episode(path, seconds: int) -> None:
    """Silence with a tone now and then, written a minute at a time."""
    with soundfile.SoundFile(str(path), "w", samplerate=16000, channels=1, format="FLAC") as out:
        for minute in range(seconds // 60):
            block = np.zeros(60 * 16000, np.float32)
            if minute % 7 == 3:
                block[:16000 * 5] += 0.3 * np.sin(np.arange(16000 * 5) * 2 * np.pi * 440 / 16000).astype(np.float32)
            out.write(block)


def _get(client: httpx.Client, url: str) -> dict | None:
    """A job's status, or None while the ingress is being replaced (connection refused, 503)."""
    try:
        response = client.get(url)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def test_long_audio_goes_through_jobs_that_survive_the_loss_of_their_ingress_replica(served, serve_endpoint):
    import ray

    from tripwire.data.sample import Sample
    from tripwire.moderation.moderator import Moderator
    from tripwire.moderation.result import ModerationResult

    url, model_dir = served
    folder = serve_endpoint["long_media"]
    clip = io.BytesIO()
    soundfile.write(clip, np.zeros(70 * 16000, np.float32), 16000, format="FLAC")
    _episode(folder / "episode.flac", LENGTH_S)
    with httpx.Client(timeout=30) as client:
        refused = client.post(f"{url}/v1/moderate", json={"audio": base64.b64encode(clip.getvalue()).decode()})
        assert refused.status_code == 413
        assert refused.json()["error"]["reason"] == "too_long" and refused.json()["error"]["async_route"] == "/v1/jobs"
        assert client.post(f"{url}/v1/jobs", json={"audio": "file:///etc/hostname"}).json()["error"]["reason"] \
            == "disallowed_uri"
        assert client.post(f"{url}/v1/jobs", json={"audio": f"file://{folder}/missing.flac"}).status_code == 422
        assert client.post(f"{url}/v1/jobs", json={"text": "no media"}).status_code == 422
        assert client.get(f"{url}/v1/jobs/unknown").status_code == 404

        accepted = client.post(f"{url}/v1/jobs", json={"id": "episode", "audio": f"file://{folder}/episode.flac"})
        assert accepted.status_code == 202
        location = f"{url}{accepted.headers['location']}"
        deadline = time.monotonic() + 60
        while (job := client.get(location).json())["status"] != "running":
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        # The replica working on it is lost: the job is taken up again once its lease runs out.
        [ingress] = [a for a in ray.util.list_named_actors(all_namespaces=True) if "#Ingress#" in a["name"]]
        ray.kill(ray.get_actor(ingress["name"], namespace=ingress["namespace"]), no_restart=True)
        deadline = time.monotonic() + 180
        while (job := _get(client, location)) is None or job["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
    assert job["status"] == "done" and job["attempts"] == 2, job
    assert job["progress"] == {"done_s": LENGTH_S, "total_s": LENGTH_S, "fraction": 1.0}
    result = ModerationResult.from_json(job["result"])
    assert result.evidence["windows"]["count"] == LENGTH_S // 25 and result.evidence["windows"]["duration_s"] == LENGTH_S
    expected = Moderator.local(model_dir).moderate_long_sync(Sample(id="episode", audio=str(folder / "episode.flac")))
    assert_same_result(result, expected)
