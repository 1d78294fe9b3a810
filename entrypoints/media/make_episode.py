"""Makes ``episode.opus``: the demo's few-minute spoken episode (espeak-ng voices taking turns, a threat at a time
this prints), encoded as Opus in Ogg with PyAV. Needs espeak-ng (``make speech-tools``).

    .venv/bin/python -m entrypoints.media.make_episode
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 48000  # Opus's own rate
PAUSE_S = 0.8
LINES = [
    "Welcome back to the show. Today we are talking about gardening in small city flats.",
    "Thanks for having me. I started with three pots of basil on a window sill.",
    "What grows best when the flat only gets the morning sun?",
    "Herbs do well. Mint, parsley and chives are happy with a few hours of light.",
    "And how often do you water them in the summer?",
    "Every other day, and a little more when it is very hot.",
    "Our listeners asked about tomatoes on a balcony.",
    "Cherry tomatoes are the easiest. Give them a big pot and something to climb.",
    "Do you buy seeds or young plants from the market?",
    "Both. Seeds are cheaper, but young plants forgive more mistakes in the first weeks.",
    "What do you do about little flies on the soil?",
    "Let the top of the soil dry out between waterings, and they usually go away.",
    "Is there a plant you would never grow indoors again?",
    "Pumpkins. They took over the whole living room and gave me one tiny fruit.",
    "Someone wrote in about their neighbour, and I want to read it out.",
    "If you show up at the meeting again, I will hurt you. I know where you live.",
    "That is not okay, and we passed it on to the people who can help.",
    "Let us get back to the plants. What about compost in a small kitchen?",
    "A closed bin under the sink works well, with a handful of dry leaves each week.",
    "Lovely. Any last tips for people starting out this spring?",
    "Start small, water in the morning, and do not be afraid to lose a plant or two.",
    "Thank you so much for joining us today. See you next week everyone.",
]
VOICES = ("en-us", "en-gb+m3")


def main() -> None:
    import av

    from tripwire.data.spoken import speak

    path = HERE / "episode.opus"
    at = 0.0
    with av.open(str(path), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=RATE, layout="mono")
        stream.bit_rate = 24000
        for n, line in enumerate(LINES):
            wave = speak(line, VOICES[n % 2], 165, sample_rate=RATE)
            if "hurt you" in line:
                print(f"the threat: {at:.1f}-{at + len(wave) / RATE:.1f} s")
            block = np.concatenate([wave, np.zeros(int(PAUSE_S * RATE), np.float32)])
            at += len(block) / RATE
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    print(f"{path}: {at:.1f} s, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
