"""Decoding a long high-resolution clip holds a bounded number of frames, not the whole clip.

The decode runs in a fresh interpreter so its peak RSS is its own, not the test run's. The peak is
the kernel's high-water mark of the interpreter's own memory (``VmHWM``): ``ru_maxrss`` would not do,
since Linux carries it over ``exec`` from the forking parent (already 130 MB for a bare test process,
more in a full test run), which would hide the growth being measured.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

WIDTH, HEIGHT, FPS, SECONDS, K = 1920, 1080, 5, 30, 8
MB = 1024 * 1024

# What a K-frame decode needs: the K picked frames as RGB (8 x 1920 x 1080 x 3 = 50 MB), the H.264
# decoder's reference frames (at most 16 x 3.1 MB of YUV 4:2:0 = 50 MB) and slack for scaler buffers,
# threads and allocator growth (64 MB): about 159 MiB. Holding all 150 decoded frames, as decode_video
# once did, needs 150 x 3.1 MB = 466 MB (measured: 502 MiB of growth then, 57 MiB with K frames kept).
BOUND_BYTES = K * WIDTH * HEIGHT * 3 + 16 * WIDTH * HEIGHT * 3 // 2 + 64 * MB
ALL_FRAMES_BYTES = SECONDS * FPS * WIDTH * HEIGHT * 3 // 2

DECODE = """
import json, sys
import tripwire
from tripwire.data.media import MediaLimits, decode_video

def high_water_bytes():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

data = open(sys.argv[1], "rb").read()
decode_video(open(sys.argv[2], "rb").read(), 2, MediaLimits())  # a tiny clip: loads the codec libraries
try:  # start the high-water mark afresh from the current RSS (Linux >= 4.0), so imports do not count
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
except OSError:
    pass
base = high_water_bytes()
clip = decode_video(data, int(sys.argv[3]), MediaLimits())
print(json.dumps({"growth_bytes": high_water_bytes() - base, "timestamps": clip.timestamps,
                  "shapes": [list(f.shape) for f in clip.frames], "module": tripwire.__file__}))
"""


def encode_h264(seconds: float, fps: int, width: int, height: int) -> bytes:
    """A gradient with a moving white block, in x264's fastest preset (a 30 s 1080p clip in ~3 s)."""
    import av

    base = np.zeros((height, width, 3), np.uint8)
    base[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    base[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(int(seconds * fps)):
            frame = base.copy()
            x = (i * 37) % (width - 200)
            frame[height // 3:height // 3 + 200, x:x + 200] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak RSS from Linux /proc")
def test_long_1080p_clip_decodes_in_memory_bounded_by_k_frames(tmp_path):
    assert BOUND_BYTES < ALL_FRAMES_BYTES / 2  # the bound tells the two apart with room to spare
    clip, warm = tmp_path / "long.mp4", tmp_path / "warm.mp4"
    clip.write_bytes(encode_h264(SECONDS, FPS, WIDTH, HEIGHT))
    warm.write_bytes(encode_h264(1, FPS, 64, 48))
    run = subprocess.run([sys.executable, "-c", DECODE, str(clip), str(warm), str(K)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["shapes"] == [[HEIGHT, WIDTH, 3]] * K
    # Centres of K equal segments of the 150 frames: frames 9, 28, 46, ... at 0.2 s apart.
    picks = np.minimum(((np.arange(K) + 0.5) * SECONDS * FPS / K).astype(int), SECONDS * FPS - 1)
    assert np.allclose(result["timestamps"], picks / FPS)
    assert result["growth_bytes"] < BOUND_BYTES, (
        f"peak RSS grew {result['growth_bytes'] / MB:.0f} MB decoding a {SECONDS} s 1080p clip "
        f"(bound {BOUND_BYTES / MB:.0f} MB; {result['module']})")
