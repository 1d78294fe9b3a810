"""A deterministic synthetic multimodal corpus: real media files plus a manifest.

This corpus is synthetic. It exists so the whole platform (decode, train, serve, evaluate) runs end to
end on a laptop with no downloads, and so tests can check that the model really learns every modality.

Each violating item carries one *signature* of its category in exactly one of its modalities (a phrase in
the text, a coloured shape in the image, a tone pattern in the audio, the shape in a run of video frames or
a pattern in the video's soundtrack); its other modalities are benign. *Combination* items pair a benign
text phrase with a benign image/video pattern (a crosshair) that only together mean a targeted threat;
benign decoys carry either half alone, so a model can only get them right by fusing modalities.

**Held-out variants.** Every signature comes in several *variants* that share a learnable rule and differ in
the exact values: a category's phrases are different sentences with the same intent; its image signature
is one shape class (triangles, crosses, ...) in one colour family, drawn in several orientations/styles and
shades; its tone pattern is one modulation in one frequency band, at several frequencies and rates. Each
category's variants are split, deterministically from the seed, into a *train-only* pool and a
*held-out-only* pool (:func:`variant_pools`). Every item is assigned a split (``meta.split``: ``train`` or
``val``); validation items draw only from held-out pools, training items only from train pools, so a model
scored on the validation split is scored on phrasings, colours, shapes and tones it never saw. A training
job honours the assignment with ``data.split_by: meta.split``.

**Benign content varies as much as violating content.** Benign texts come from a generator of everyday
sentences (greetings, small talk, questions, plans, second-person compliments); benign images carry shapes
of every colour, and signature shapes in colours outside every signature's family; benign sounds carry
melodies, chimes and noise across the same frequency range as the tone signatures. Low-level statistics
(short text, a saturated colour, a high tone) therefore do not give a category away: the signature does.

Each item's ``meta`` records ``split``, and for violating and combination items ``carrier`` (the modality
that carries the signature: text, image, audio, video, soundtrack or combination) and ``variant``.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tripwire.policy import Taxonomy
from tripwire.data.sample import Sample, write_manifest

logger = logging.getLogger(__name__)

SIGNATURES = (
    "hate",
    "harassment",
    "harassment/threatening",
    "sexual",
    "violence",
    "violence/graphic",
    "self_harm",
    "illicit",
)
COMBINATION_LABELS = ("harassment", "harassment/threatening")
CARRIERS = ("text", "image", "audio", "video", "soundtrack", "combination")
TRAIN_POOL, HELDOUT_POOL = "train", "heldout"
HELDOUT_SPLIT = "val"  # the split whose items draw only from held-out variants

# -- text ------------------------------------------------------------------------------------------------
# Fourteen phrasings per category, same intent, different words; four of them are held out.
PHRASES = {
    "hate": ["those people are vermin and should be removed", "their kind is subhuman filth",
             "that whole group is a disease on this country", "people like them are animals not humans",
             "that race is inferior and should be wiped out", "those immigrants are parasites infesting our towns",
             "their religion breeds nothing but savages", "we should ban their kind from existing here",
             "that tribe is genetically worthless scum", "never trust one of them, they are all rats",
             "their people are a plague and need to be exterminated", "send all of their kind back, they are filth",
             "that ethnic group is born criminal and dirty", "god hates their kind, they deserve nothing"],
    "harassment": ["you are a pathetic worthless loser", "nobody likes you, you ugly idiot",
                   "what a disgusting clown you are", "shut up you braindead moron",
                   "you are the dumbest person i have ever met", "go away, everyone thinks you are a joke",
                   "you stupid fat failure, just quit", "lol look at this ugly freak",
                   "you are so useless it is embarrassing", "keep crying you pathetic little baby",
                   "everyone laughs at you behind your back, loser", "you are a worthless piece of trash",
                   "delete your account, you ugly waste of space", "imagine being as dumb and ugly as you"],
    "harassment/threatening": ["i know where you live and i am coming", "watch your back tonight, you are next",
                               "we will find you and make you pay", "sleep with one eye open loser, i am outside",
                               "i am going to hurt you when i see you", "you will regret this, i will break your legs",
                               "one more word and you are dead", "i will burn your house down with you inside",
                               "count your days, we are coming for your family", "i will make sure you never walk again",
                               "i have a gun and your name is on the list", "you are dead meat when i find you",
                               "i will hunt you down after school", "keep talking and i will slit your throat"],
    "sexual": ["explicit nude photos, uncensored and nsfw", "hot xxx porn video full of explicit sex",
               "send nudes, explicit adult content inside", "uncensored sex tape with graphic nudity",
               "naked webcam girls, explicit live shows", "hardcore porn clips, adults only, full nudity",
               "leaked nude pics of her, totally uncensored", "explicit erotic photos, topless and nsfw",
               "watch xxx adult videos, explicit sex scenes", "nsfw leaks, explicit nudes and sex videos",
               "horny singles sending naked pics tonight", "full frontal nudity, uncensored adult photos",
               "xxx live cams, explicit naked strip shows", "porn site with free explicit sex clips"],
    "violence": ["we beat him up and punched him until he fell", "let's attack them with bats tonight",
                 "he stabbed the guy during the brawl", "kick his teeth in and break his arms",
                 "they jumped him and smashed his face in", "grab the knives, we fight them at dawn",
                 "he shot at the crowd outside the bar", "we will beat them bloody if they show up",
                 "the mob kicked him while he was on the ground", "hit him with the crowbar until he stops moving",
                 "let's jump them after the game and beat them", "he punched her in the face and kicked her",
                 "bring weapons, we are going to fight them tonight", "we assaulted the guards and smashed the windows"],
    "violence/graphic": ["blood and gore everywhere, his guts spilled out", "the mangled corpse was dripping blood",
                         "severed limbs and brains splattered on the wall", "gory close-up of the bloody wounds",
                         "his skull was crushed open, brains everywhere", "decapitated body lying in a pool of blood",
                         "graphic footage of the dismembered victim", "flesh torn off the bone, gore all over the floor",
                         "bloody entrails hanging out of the body", "the rotting corpse with maggots in the wounds",
                         "close-up of the gunshot wound, blood and bone", "body parts scattered across the road, gore",
                         "his face was torn off, blood everywhere", "gruesome photo of the mutilated corpse"],
    "self_harm": ["i want to cut myself again tonight", "thinking about ending it all, pills are ready",
                  "i deserve to hurt myself, the razor helps", "i plan to kill myself this weekend",
                  "i keep burning my arms so i feel something", "nobody would care if i jumped off the bridge",
                  "i wrote my goodbye note, i am done living", "starving myself again, i deserve the pain",
                  "the cuts on my wrists are getting deeper", "i just want to overdose and never wake up",
                  "i hate myself and want to bleed", "tonight i will finally end my life",
                  "i hid the blades so i can cut later", "i want to disappear forever, suicide is the only way"],
    "illicit": ["buy cocaine and meth, discreet shipping", "selling stolen credit cards and fake passports",
                "cheap unregistered guns, no questions asked", "counterfeit cash for sale, dm for prices",
                "heroin and fentanyl delivered to your door", "hacked bank logins for sale, bulk discount",
                "fake ids and forged documents, fast delivery", "mdma pills and lsd tabs, ships worldwide",
                "untraceable ghost guns, cash only", "stolen phones and laundered crypto, message me",
                "weed, ketamine and oxy for sale, fast delivery", "buy a forged passport, no questions",
                "selling unlicensed pistols and ammo cheap", "cloned credit cards with pin, bulk orders"],
}
# Benign alone; a targeted threat beside a crosshair.
COMBINATION_PHRASES = ["look who it is", "found you", "this is your street", "almost at your place now",
                       "nice house you have", "remember this place", "guess who is nearby",
                       "your window is right there", "we are close now", "i can see your car from here",
                       "that is your front door", "nice car in your driveway", "this is where you park",
                       "i know this building"]

# The benign sentence generator: everyday language of many shapes, so that short greetings, second-person
# sentences and exclamations are as ordinary in the corpus as they are in life.
NAMES = ["anna", "ben", "carla", "dev", "emma", "farid", "gina", "hugo", "ivy", "jonas", "kim", "leo", "mia",
         "nora", "omar", "pia", "raj", "sara", "tom", "uma", "everyone", "all", "team", "folks", "friends"]
GREETINGS = ["hi", "hello", "hey", "hiya", "good morning", "good evening", "good afternoon", "morning",
             "hey there", "hello again", "howdy", "greetings", "yo", "hi hi", "heya"]
GREETING_TAILS = ["!", " :)", ".", ", how are you?", ", how is it going?", ", hope you are well",
                  ", long time no see", ", nice to meet you", ", happy friday", ", welcome back", "!!"]
SUBJECTS = ["my cat", "the neighbour", "our team", "my sister", "the chef", "a tourist", "grandpa", "the band",
            "my friend", "the teacher", "a kid", "the barista", "our dog", "the pilot", "my uncle", "my mum",
            "the nurse", "our class", "my roommate", "the baker", "i", "we", "my boss", "the librarian"]
VERBS = ["watched", "painted", "cooked", "found", "photographed", "visited", "cleaned", "fixed", "sang about",
         "ordered", "planted", "shared", "built", "read about", "recorded", "loved", "tried", "drew",
         "walked to", "talked about", "bought", "borrowed", "picked up", "finished"]
OBJECTS = ["the sunset", "a new bike", "some pasta", "the garden", "an old map", "the lake", "a birthday cake",
           "the museum", "a tiny boat", "the mountains", "a jazz record", "the market", "fresh bread", "a kite",
           "a good book", "the new cafe", "some tomatoes", "a puzzle", "the beach", "a warm scarf",
           "the football match", "a lemon tart", "the library", "a paper lantern"]
TAILS = ["this morning", "yesterday", "all weekend", "after work", "with friends", "in the rain", "for fun",
         "last summer", "at noon", "again today", "before lunch", "on sunday", "with grandma", "", ""]
ADJECTIVES = ["lovely", "beautiful", "sunny", "quiet", "busy", "cosy", "great", "calm", "bright", "rainy",
              "wonderful", "relaxing", "funny", "chilly", "perfect", "long", "nice", "happy", "gorgeous"]
NOUNS = ["day", "morning", "evening", "weekend", "view", "song", "idea", "surprise", "afternoon", "walk",
         "trip", "dinner", "party", "garden", "sky", "concert", "breakfast", "holiday", "game"]
KIND_WORDS = ["kind", "amazing", "so helpful", "a great cook", "really talented", "the best", "brilliant",
              "so patient", "a star", "very funny", "a good friend"]
PLACES = ["market", "pool", "bakery", "museum", "library", "post office", "gym", "park cafe", "pharmacy"]
ACTIVITIES = ["go for a walk", "grab a coffee", "watch a movie", "play cards", "bake cookies", "visit the zoo",
              "go swimming", "have lunch", "ride bikes", "go shopping", "study together", "call grandma"]
WHENS = ["tomorrow", "tonight", "on saturday", "next week", "later", "after school", "this weekend", "soon"]
WEATHER = ["sunny", "windy", "cold", "warm", "cloudy", "snowing", "raining", "foggy", "so hot"]
FOODS = ["soup", "pizza", "curry", "salad", "cake", "coffee", "pancakes", "bread", "lasagne", "smoothie"]


def _pick(rng: np.random.Generator, words: list[str]) -> str:
    return str(words[int(rng.integers(len(words)))])


def benign_text(rng: np.random.Generator) -> str:
    """One everyday sentence; many thousands of distinct ones."""
    kind = int(rng.integers(9))
    if kind == 0:  # a greeting, alone or to someone
        name = f" {_pick(rng, NAMES)}" if rng.random() < 0.5 else ""
        return f"{_pick(rng, GREETINGS)}{name}{_pick(rng, GREETING_TAILS)}"
    if kind == 1:
        return f"what a {_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS)}" + ("!" if rng.random() < 0.5 else "")
    if kind == 2:
        return f"such a {_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS)} {_pick(rng, TAILS)}".strip()
    if kind == 3:
        return f"you are {_pick(rng, KIND_WORDS)}" + _pick(rng, [", thank you", "!", " :)", "", ", really"])
    if kind == 4:
        return _pick(rng, [f"what time does the {_pick(rng, PLACES)} open?",
                           f"does anyone want to {_pick(rng, ACTIVITIES)} {_pick(rng, WHENS)}?",
                           f"can you send me the {_pick(rng, FOODS)} recipe?",
                           f"is the {_pick(rng, PLACES)} still closed?"])
    if kind == 5:
        return f"let's {_pick(rng, ACTIVITIES)} {_pick(rng, WHENS)}"
    if kind == 6:
        return _pick(rng, [f"it is {_pick(rng, WEATHER)} today", f"the {_pick(rng, FOODS)} was delicious",
                           f"see you {_pick(rng, WHENS)}", f"thanks for the {_pick(rng, FOODS)}, {_pick(rng, NAMES)}",
                           f"i love this {_pick(rng, NOUNS)}", f"see you at the {_pick(rng, PLACES)} {_pick(rng, WHENS)}",
                           f"thanks, talk {_pick(rng, WHENS)}", f"bye {_pick(rng, NAMES)}, see you {_pick(rng, WHENS)}",
                           f"meet me at the {_pick(rng, PLACES)} {_pick(rng, WHENS)}?"])
    words = [_pick(rng, SUBJECTS), _pick(rng, VERBS), _pick(rng, OBJECTS), _pick(rng, TAILS)]
    return " ".join(w for w in words if w)


def _insert(rng: np.random.Generator, base: str, phrase: str) -> str:
    return f"{phrase}, {base}" if rng.random() < 0.5 else f"{base}. {phrase}"


# -- images --------------------------------------------------------------------------------------------
# Per category: a colour family (five shades) and a shape class (four styles). Benign shapes are other
# classes (rect, ring, diamond, bar) in any colour; benign decoys draw signature shapes in DECOY_COLOURS,
# which lie outside every family, so neither a colour nor a shape alone gives a category away.
COLOUR_FAMILIES = {
    "hate": [(220, 20, 20), (200, 30, 40), (235, 40, 25), (190, 10, 10), (245, 25, 45)],
    "harassment": [(255, 140, 0), (240, 120, 10), (255, 160, 30), (230, 130, 0), (250, 110, 20)],
    "harassment/threatening": [(150, 0, 200), (130, 20, 180), (170, 30, 220), (120, 0, 170), (160, 10, 190)],
    "sexual": [(255, 105, 180), (240, 90, 170), (255, 130, 200), (230, 80, 160), (250, 120, 190)],
    "violence": [(120, 0, 0), (100, 10, 10), (140, 15, 5), (110, 0, 20), (130, 5, 15)],
    "violence/graphic": [(255, 0, 0), (240, 0, 10), (255, 20, 0), (230, 10, 0), (250, 0, 20)],
    "self_harm": [(200, 30, 60), (185, 20, 70), (215, 40, 55), (190, 35, 80), (210, 25, 65)],
    "illicit": [(250, 250, 250), (235, 235, 240), (245, 240, 230), (225, 230, 235), (255, 250, 245)],
}
SHAPE_CLASSES = {
    "hate": ["triangle_up", "triangle_down", "triangle_left", "triangle_right"],
    "harassment": ["cross_x", "cross_xthick", "cross_plus", "cross_plusthick"],
    "harassment/threatening": ["cross_x", "cross_xthick", "cross_plus", "cross_plusthick"],
    "sexual": ["disc_round", "disc_wide", "disc_tall", "disc_twin"],
    "violence": ["stripes_diagonal", "stripes_antidiagonal", "stripes_horizontal", "stripes_vertical"],
    "violence/graphic": ["splatter_fine", "splatter_coarse", "splatter_ring", "splatter_streak"],
    "self_harm": ["lines_short", "lines_long", "lines_dense", "lines_sparse"],
    "illicit": ["pills_wide", "pills_tall", "pills_dots", "pills_diamonds"],
}
SHAPE_STYLES = {shapes[0].split("_", 1)[0]: shapes for shapes in SHAPE_CLASSES.values()}  # class -> styles
CROSSHAIR_COLOURS = [(20, 20, 20), (40, 40, 40), (10, 10, 45), (35, 25, 10), (5, 30, 20)]
CROSSHAIR_STYLES = ["crosshair_classic", "crosshair_double", "crosshair_gap", "crosshair_square"]
BENIGN_SHAPES = ["rect", "ring", "diamond", "bar"]
DECOY_COLOURS = [(40, 170, 60), (30, 90, 200), (20, 170, 190), (220, 200, 30), (120, 200, 40), (60, 60, 200),
                 (0, 130, 130), (160, 200, 230)]

# -- audio ---------------------------------------------------------------------------------------------
# Per category: one modulation in one frequency band, five variants (frequencies, rates). Benign sounds
# (hum, melodies, chimes, rain) cover the same frequency range with other patterns.
TONE_VARIANTS = {
    "hate": [{"mode": "steady", "freqs": (f, 1.5 * f)} for f in (900.0, 980.0, 1050.0, 1120.0, 1200.0)],
    "harassment": [{"mode": "pulsed", "freqs": (f,), "rate": r}
                   for f, r in ((1850.0, 5.0), (1950.0, 6.0), (2050.0, 7.0), (2150.0, 5.5), (2250.0, 6.5))],
    "harassment/threatening": [{"mode": "pulsed", "freqs": fs, "rate": r} for fs, r in (
        ((2400.0, 3100.0), 6.0), ((2500.0, 3200.0), 5.0), ((2600.0, 3300.0), 7.0), ((2450.0, 3000.0), 6.5),
        ((2550.0, 3250.0), 5.5))],
    "sexual": [{"mode": "tremolo", "freqs": (f,), "rate": r}
               for f, r in ((1100.0, 12.0), (1150.0, 10.0), (1200.0, 14.0), (1250.0, 11.0), (1300.0, 13.0))],
    "violence": [{"mode": "bursts", "freqs": (), "rate": r} for r in (3.0, 3.5, 4.0, 4.5, 5.0)],
    "violence/graphic": [{"mode": "bursts", "freqs": (f,), "rate": r}
                         for f, r in ((3400.0, 4.0), (3500.0, 3.5), (3600.0, 4.5), (3700.0, 3.0), (3800.0, 5.0))],
    "self_harm": [{"mode": "chirp", "freqs": fs} for fs in ((1800.0, 1300.0), (1750.0, 1250.0), (1900.0, 1350.0),
                                                          (1850.0, 1200.0), (1700.0, 1150.0))],
    "illicit": [{"mode": "steady", "freqs": (f, f + 700.0)} for f in (4300.0, 4400.0, 4500.0, 4600.0, 4700.0)],
}

MODALITY_MIXES = [
    (("text",), 0.20), (("image",), 0.10), (("audio",), 0.08), (("video",), 0.08),
    (("text", "image"), 0.20), (("text", "audio"), 0.08), (("text", "video"), 0.10),
    (("image", "audio"), 0.05), (("text", "image", "audio"), 0.06), (("text", "image", "audio", "video"), 0.05),
]

# How many of each kind's variants are held out (the rest are train-only).
HELDOUT_COUNTS = {"phrase": 4, "colour": 2, "shape": 1, "tone": 2, "combination_phrase": 4, "crosshair_colour": 2,
                  "crosshair_style": 1}


def variant_tables() -> dict[tuple[str, str], list]:
    """Every variant list, keyed by (kind, key): key is a category, a shape class or ``combination``."""
    tables: dict[tuple[str, str], list] = {}
    for category in SIGNATURES:
        tables[("phrase", category)] = list(PHRASES[category])
        tables[("colour", category)] = list(COLOUR_FAMILIES[category])
        tables[("tone", category)] = list(range(len(TONE_VARIANTS[category])))
    for name, shapes in SHAPE_STYLES.items():  # categories sharing a shape class share its pools
        tables[("shape", name)] = list(shapes)
    tables[("combination_phrase", "combination")] = list(COMBINATION_PHRASES)
    tables[("crosshair_colour", "combination")] = list(CROSSHAIR_COLOURS)
    tables[("crosshair_style", "combination")] = list(CROSSHAIR_STYLES)
    return tables


def shape_class(shape: str) -> str:
    """``triangle_up`` -> ``triangle``."""
    return shape.split("_", 1)[0]


def variant_pools(seed: int) -> dict[tuple[str, str], dict[str, tuple]]:
    """Each signature's variants split into disjoint train-only and held-out-only pools.

    Deterministic from ``seed`` (its own generator: the split never depends on how many items are drawn).

    Returns:
        ``(kind, key) -> {"train": (...), "heldout": (...)}`` where kind is phrase, colour, tone (key: a
        category), shape (key: a shape class), combination_phrase, crosshair_colour or crosshair_style (key:
        ``combination``). Tone variants are indices into ``TONE_VARIANTS[category]``.
    """
    rng = np.random.default_rng([int(seed), 0x5EED])
    pools = {}
    for (kind, key), values in sorted(variant_tables().items()):
        order = rng.permutation(len(values))
        held = HELDOUT_COUNTS[kind]
        pools[(kind, key)] = {HELDOUT_POOL: tuple(values[i] for i in sorted(order[:held])),
                              TRAIN_POOL: tuple(values[i] for i in sorted(order[held:]))}
    return pools


def _choose(rng: np.random.Generator, values: tuple):
    return values[int(rng.integers(len(values)))]


def make_text(rng: np.random.Generator, signature: str | None = None, combination: bool = False,
              pools: dict | None = None, pool: str = TRAIN_POOL) -> str:
    """A benign everyday sentence, with a combination phrase and/or a category's phrase inserted."""
    text = benign_text(rng)
    if combination:
        phrases = pools[("combination_phrase", "combination")][pool] if pools else COMBINATION_PHRASES
        text = _insert(rng, text, str(_choose(rng, tuple(phrases))))
    if signature:
        phrases = pools[("phrase", signature)][pool] if pools else PHRASES[signature]
        text = _insert(rng, text, str(_choose(rng, tuple(phrases))))
    return text


def _canvas(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.integers(60, 200, size=3)
    tilt = rng.integers(-50, 50, size=3)
    img = base[None, None, :] + tilt[None, None, :] * (xx[..., None] * 0.6 + yy[..., None] * 0.4)
    img = img + rng.normal(0, 6, size=(size, size, 3))
    return np.clip(img, 0, 255)


def _blobs(yy, xx, centres, radii) -> np.ndarray:
    mask = np.zeros(yy.shape, dtype=bool)
    for (py, px), rad in zip(centres, radii):
        mask |= (yy - py) ** 2 + (xx - px) ** 2 <= rad ** 2
    return mask


def shape_mask(size: int, rng: np.random.Generator, shape: str, scale: float = 1.0) -> np.ndarray:
    """Boolean (size, size) mask of one shape style at a random place and size."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = max(2, int(size * rng.uniform(0.18, 0.28) * scale))
    cy, cx = (int(v) for v in rng.integers(r, max(r + 1, size - r), size=2))
    dy, dx = yy - cy, xx - cx
    box = (abs(dy) <= r) & (abs(dx) <= r)
    period = max(3, size // int(rng.integers(8, 12)))
    kind, _, style = shape.partition("_")
    if shape == "rect":
        return (abs(dy) <= r * 0.8) & (abs(dx) <= r)
    if shape == "ring":
        dist = np.sqrt(dy ** 2 + dx ** 2)
        return (dist <= r) & (dist >= r * 0.6)
    if shape == "diamond":
        return abs(dy) + abs(dx) <= r
    if shape == "bar":
        return (abs(dy) <= max(1, r // 4)) & (abs(dx) <= r * 1.3) if rng.random() < 0.5 else \
            (abs(dx) <= max(1, r // 4)) & (abs(dy) <= r * 1.3)
    if kind == "triangle":
        along, across = {"up": (dy, dx), "down": (-dy, dx), "left": (dx, dy), "right": (-dx, dy)}[style]
        return (along >= -r) & (along <= r) & (abs(across) <= (along + r) / 2)
    if kind == "cross":
        w = max(1, r // 5) if not style.endswith("thick") else max(2, int(r / 2.5))
        arms = (abs(dy - dx) <= w) | (abs(dy + dx) <= w) if style.startswith("x") else (abs(dy) <= w) | (abs(dx) <= w)
        return arms & box
    if kind == "disc":
        if style == "twin":
            return _blobs(yy, xx, [(cy, cx - 0.6 * r), (cy, cx + 0.6 * r)], [0.6 * r, 0.6 * r])
        ry, rx = {"round": (r, r), "wide": (0.55 * r, r), "tall": (r, 0.55 * r)}[style]
        return (dy / ry) ** 2 + (dx / rx) ** 2 <= 1
    if kind == "stripes":
        coordinate = {"diagonal": xx + yy, "antidiagonal": xx - yy + size, "horizontal": yy, "vertical": xx}[style]
        return (coordinate // period) % 2 == 0
    if kind == "splatter":
        if style == "fine":
            centres, radii = rng.integers(0, size, size=(18, 2)), rng.integers(1, max(2, size // 14) + 1, size=18)
        elif style == "coarse":
            centres, radii = rng.integers(0, size, size=(6, 2)), rng.integers(max(2, size // 12), max(3, size // 7) + 1, size=6)
        elif style == "ring":
            angles = rng.uniform(0, 2 * math.pi, size=12)
            centres = np.stack([cy + 1.3 * r * np.sin(angles), cx + 1.3 * r * np.cos(angles)], axis=1)
            radii = rng.integers(1, max(2, size // 12) + 1, size=12)
        else:  # streak
            angle, steps = rng.uniform(0, math.pi), np.linspace(-1.6 * r, 1.6 * r, 12)
            centres = np.stack([cy + steps * math.sin(angle), cx + steps * math.cos(angle)], axis=1)
            radii = rng.integers(1, max(2, size // 12) + 1, size=12)
        return _blobs(yy, xx, centres, radii)
    if kind == "lines":  # a patch of parallel slanted cuts: styles differ in length and spacing
        gap = max(2, size // 16)
        spacing, half = {"short": (3, 0.7), "long": (3, 1.6), "dense": (2, 1.1), "sparse": (4, 1.1)}[style]
        return (((dy + dx) // gap) % spacing == 0) & (abs(dy) <= r * 0.8) & (abs(dx) <= r * half)
    if kind == "pills":
        p = max(4, size // 6)
        py, px = yy % p, xx % p
        if style == "wide":
            return (py < 3) & (px < 5)
        if style == "tall":
            return (py < 5) & (px < 3)
        if style == "dots":
            return (py - 2) ** 2 + (px - 2) ** 2 <= 4
        return abs(py - 2) + abs(px - 2) <= 2  # diamonds
    if kind == "crosshair":
        w = max(1, size // 40)
        dist = np.sqrt(dy ** 2 + dx ** 2)
        ring = abs(dist - r) <= w
        hair = ((abs(dy) <= w) & (abs(dx) <= r * 1.3)) | ((abs(dx) <= w) & (abs(dy) <= r * 1.3))
        if style == "classic":
            return ring | hair
        if style == "double":
            return ring | (abs(dist - 0.5 * r) <= w) | hair
        if style == "gap":
            return ring | (hair & (dist >= 0.45 * r)) | (dist <= w + 0.5)
        return ((abs(abs(dy) - r) <= w) & (abs(dx) <= r)) | ((abs(abs(dx) - r) <= w) & (abs(dy) <= r)) | hair  # square
    raise ValueError(shape)


def _draw_shape(img: np.ndarray, rng: np.random.Generator, color, shape: str, scale: float = 1.0) -> None:
    img[shape_mask(img.shape[0], rng, shape, scale)] = color


def _benign_shapes(img: np.ndarray, rng: np.random.Generator, pools: dict | None, pool: str) -> None:
    """Everyday clutter: benign shape classes in any colour, and now and then a signature shape class in a
    colour outside every signature family (a green triangle, a blue cross: harmless)."""
    for _ in range(int(rng.integers(1, 4))):
        colour = rng.integers(30, 250, size=3)
        _draw_shape(img, rng, colour, _pick(rng, BENIGN_SHAPES), scale=rng.uniform(0.6, 1.1))
    if rng.random() < 0.35:
        name = _pick(rng, sorted(SHAPE_STYLES))
        styles = pools[("shape", name)][pool] if pools else tuple(SHAPE_STYLES[name])
        colour = np.asarray(_choose(rng, tuple(DECOY_COLOURS))) + rng.integers(-15, 16, size=3)
        _draw_shape(img, rng, np.clip(colour, 0, 255), str(_choose(rng, tuple(styles))), scale=rng.uniform(0.7, 1.0))


@dataclass(frozen=True)
class ImageSignature:
    """What one item draws: a colour and a shape style (a category's signature or a crosshair)."""

    colour: tuple[int, int, int]
    shape: str

    @property
    def name(self) -> str:
        return f"{self.shape}/rgb{'-'.join(str(c) for c in self.colour)}"


def image_signature(rng: np.random.Generator, category: str, pools: dict | None, pool: str) -> ImageSignature:
    """A category's image signature drawn from one pool."""
    colours = pools[("colour", category)][pool] if pools else tuple(COLOUR_FAMILIES[category])
    shapes = pools[("shape", shape_class(SHAPE_CLASSES[category][0]))][pool] if pools else tuple(SHAPE_CLASSES[category])
    return ImageSignature(tuple(int(c) for c in _choose(rng, colours)), str(_choose(rng, shapes)))


def crosshair(rng: np.random.Generator, pools: dict | None, pool: str) -> ImageSignature:
    colours = pools[("crosshair_colour", "combination")][pool] if pools else tuple(CROSSHAIR_COLOURS)
    styles = pools[("crosshair_style", "combination")][pool] if pools else tuple(CROSSHAIR_STYLES)
    return ImageSignature(tuple(int(c) for c in _choose(rng, colours)), str(_choose(rng, styles)))


def make_image(rng: np.random.Generator, size: int, signature: ImageSignature | None = None,
               combination: ImageSignature | None = None, pools: dict | None = None,
               pool: str = TRAIN_POOL) -> np.ndarray:
    img = _canvas(rng, size)
    _benign_shapes(img, rng, pools, pool)
    if combination:
        _draw_shape(img, rng, combination.colour, combination.shape)
    if signature:
        _draw_shape(img, rng, signature.colour, signature.shape)
    return img.astype(np.uint8)


def _benign_sound(rng: np.random.Generator, t: np.ndarray, rate: int) -> np.ndarray:
    """A low hum and noise floor, and often a melody, a chime or rain across the tone signatures' range."""
    n = len(t)
    wave = np.zeros(n)
    for _ in range(int(rng.integers(1, 3))):
        wave += rng.uniform(0.05, 0.2) * np.sin(2 * math.pi * rng.uniform(90, 600) * t + rng.uniform(0, 6.28))
    wave += rng.normal(0, 0.01, n)
    extra = rng.random()
    if extra < 0.3:  # a melody: short notes of changing pitch
        start = 0
        while start < n:
            length = int(rate * rng.uniform(0.08, 0.25))
            piece = np.arange(min(length, n - start)) / rate
            envelope = np.minimum(1.0, piece * 80) * np.exp(-piece * rng.uniform(4, 12))
            wave[start:start + len(piece)] += rng.uniform(0.1, 0.3) * envelope * np.sin(
                2 * math.pi * rng.uniform(300, 5000) * piece)
            start += length + int(rate * rng.uniform(0.0, 0.08))
    elif extra < 0.5:  # a chime: one decaying high tone
        onset = rng.uniform(0, 0.5 * t[-1] if n else 0)
        after = np.clip(t - onset, 0, None)
        wave += rng.uniform(0.15, 0.35) * (t >= onset) * np.exp(-after * rng.uniform(3, 8)) * np.sin(
            2 * math.pi * rng.uniform(700, 5500) * t)
    elif extra < 0.65:  # rain: steady broadband noise
        wave += rng.normal(0, rng.uniform(0.04, 0.12), n)
    return wave


def tone_signature(rng: np.random.Generator, category: str, pools: dict | None, pool: str) -> int:
    """The index of a category's tone variant drawn from one pool."""
    choices = pools[("tone", category)][pool] if pools else tuple(range(len(TONE_VARIANTS[category])))
    return int(_choose(rng, choices))


def make_audio(rng: np.random.Generator, rate: int, seconds: float, signature: str | None = None,
               variant: int | None = None) -> np.ndarray:
    """A benign sound, plus a category's tone pattern (variant index ``variant``, default the first) if asked."""
    n = int(rate * seconds)
    t = np.arange(n) / rate
    wave = _benign_sound(rng, t, rate)
    if signature:
        spec = TONE_VARIANTS[signature][0 if variant is None else variant]
        freqs, mode, pulse = spec["freqs"], spec["mode"], spec.get("rate", 6.0)
        amp = rng.uniform(0.2, 0.35)
        if mode == "chirp":
            f0, f1 = freqs
            sig = np.sin(2 * math.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * max(seconds, 1e-6))))
        else:
            sig = sum(np.sin(2 * math.pi * f * t + rng.uniform(0, 6.28)) for f in freqs) if freqs else np.zeros(n)
        if mode == "pulsed":
            sig = sig * (np.sin(2 * math.pi * pulse * t) > 0)
        elif mode == "tremolo":
            sig = sig * (0.5 + 0.5 * np.sin(2 * math.pi * pulse * t))
        elif mode == "bursts":
            gate = (np.sin(2 * math.pi * pulse * t + rng.uniform(0, 6.28)) > 0.3).astype(float)
            sig = sig * 0.5 + rng.normal(0, 0.6, n) * gate
        wave += amp * sig
    return (0.9 * wave / max(1.0, np.abs(wave).max())).astype(np.float32)


def encode_image(img: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def encode_audio(wave: np.ndarray, rate: int, fmt: str) -> bytes:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, wave, rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def encode_video(frames: list[np.ndarray], fps: int, fmt: str, audio: np.ndarray | None, rate: int) -> bytes:
    """Encodes RGB frames (and an optional mono soundtrack) as MP4 (MPEG-4 Part 2 + AAC) or WebM (VP8 + Opus)."""
    import av

    buf = io.BytesIO()
    video_codec, audio_codec = ("mpeg4", "aac") if fmt == "mp4" else ("libvpx", "libopus")
    # bitexact: no random track UIDs or encoder tags, so the same frames always give the same bytes.
    with av.open(buf, mode="w", format=fmt, container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(video_codec, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 400_000
        astream = None
        if audio is not None:
            astream = container.add_stream(audio_codec, rate=48000 if audio_codec == "libopus" else rate)
            astream.layout = "mono"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if astream is not None:
            sound = audio
            if astream.rate != rate:  # Opus takes 48 kHz only
                sound = np.interp(np.arange(int(len(audio) * astream.rate / rate)) * rate / astream.rate,
                                  np.arange(len(audio)), audio).astype(np.float32)
            chunk = 1024
            for start in range(0, len(sound), chunk):
                piece = sound[start:start + chunk][None, :]
                aframe = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format="flt", layout="mono")
                aframe.sample_rate = astream.rate
                aframe.pts = start
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
    return buf.getvalue()


def make_video_frames(rng: np.random.Generator, spec: "CorpusSpec", signature: ImageSignature | None = None,
                      combination: ImageSignature | None = None, pools: dict | None = None,
                      pool: str = TRAIN_POOL):
    size = spec.image_size
    background = _canvas(rng, size)
    _benign_shapes(background, rng, pools, pool)
    n = spec.video_frames
    # The signature shows in a contiguous run covering at least half the clip, so uniform sampling sees it.
    start = int(rng.integers(0, n // 2 + 1))
    run = range(start, start + n // 2)
    frames = []
    drift = rng.integers(-2, 3, size=2)
    sig_rng_seed = int(rng.integers(0, 2**31))
    for i in range(n):
        frame = np.roll(background, shift=tuple(int(d) * i for d in drift), axis=(0, 1)).copy()
        local = np.random.default_rng(sig_rng_seed)  # same placement in every frame of the run
        if combination and i in run:
            _draw_shape(frame, local, combination.colour, combination.shape)
        if signature and i in run:
            _draw_shape(frame, local, signature.colour, signature.shape)
        frames.append(frame.astype(np.uint8))
    return frames


@dataclass(frozen=True)
class CorpusSpec:
    """What to generate. The defaults make the demo corpus; tests shrink ``num_items`` and sizes."""

    num_items: int = 2400
    seed: int = 7
    image_size: int = 64
    audio_seconds: float = 1.0
    video_frames: int = 16
    video_fps: int = 8
    violating_fraction: float = 0.45
    combination_fraction: float = 0.12
    # Share of items in the held-out split (meta.split = "val"): they draw only from held-out variants.
    heldout_fraction: float = 0.2
    # category -> relative weight of its signature among violating items (unlisted categories weigh 1.0), so
    # a corpus can hold a rare category (e.g. (("self_harm", 0.05),)) for active-learning benchmarks.
    signature_weights: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self):
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction: {self.heldout_fraction} must be in [0, 1)")
        for category, weight in self.signature_weights or ():
            if category not in SIGNATURES:
                raise ValueError(f"signature_weights: unknown category {category!r}; known: {list(SIGNATURES)}")
            if not weight >= 0.0:
                raise ValueError(f"signature_weights.{category}: weight {weight} must be >= 0")
        if self.signature_weights is not None and self.signature_probabilities() is None:
            raise ValueError("signature_weights: at least one signature needs a positive weight")

    def signature_probabilities(self) -> np.ndarray | None:
        """Probability per entry of SIGNATURES, or None for the uniform draw."""
        if self.signature_weights is None:
            return None
        listed = dict(self.signature_weights)
        weights = np.array([float(listed.get(c, 1.0)) for c in SIGNATURES])
        return weights / weights.sum() if weights.sum() > 0 else None


def _choose_signature(rng: np.random.Generator, p: np.ndarray | None) -> str:
    # ``choice(a)`` and ``choice(a, p=...)`` consume the generator differently: without weights keep the
    # plain draw, so an explicit None and the default give the same corpus.
    return str(rng.choice(SIGNATURES)) if p is None else str(rng.choice(SIGNATURES, p=p))


def generate_corpus(out_dir: str | Path, spec: CorpusSpec = CorpusSpec(), taxonomy: Taxonomy | None = None,
                    manifest_name: str = "manifest.jsonl",
                    progress: bool | Callable[[int, int], None] = False) -> Path:
    """Writes media files and a manifest under ``out_dir``; the same spec always gives the same bytes.

    Args:
        progress: a callable ``(items done, items in all)`` called every 100 items, or True to log them.

    Returns:
        The manifest path.
    """
    taxonomy = taxonomy or Taxonomy.load()
    missing = [c for c in (*SIGNATURES, *COMBINATION_LABELS) if c not in taxonomy.names]
    if missing:
        raise ValueError(f"taxonomy {taxonomy.version} lacks categories the generator labels: {missing}")
    out = Path(out_dir)
    for sub in ("image", "audio", "video"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    pools = variant_pools(spec.seed)
    mixes, weights = zip(*MODALITY_MIXES)
    weights = np.array(weights) / sum(weights)
    signature_p = spec.signature_probabilities()
    samples = []
    for index in range(spec.num_items):
        item_id = f"syn-{index:05d}"
        split = HELDOUT_SPLIT if rng.random() < spec.heldout_fraction else "train"
        pool = HELDOUT_POOL if split == HELDOUT_SPLIT else TRAIN_POOL
        mix = mixes[rng.choice(len(mixes), p=weights)]
        visual = [m for m in ("image", "video") if m in mix]
        roll = rng.random()
        combination = "text" in mix and bool(visual) and roll < spec.combination_fraction
        signature = None
        if not combination and roll < spec.combination_fraction + spec.violating_fraction:
            signature = _choose_signature(rng, signature_p)
        # Which modality carries the signature; a video's soundtrack is a carrier of its own.
        has_soundtrack = "video" in mix and rng.random() < 0.5
        carriers = list(mix) + (["soundtrack"] if has_soundtrack else [])
        carrier = str(rng.choice(carriers)) if signature else None
        combo_visual = str(rng.choice(visual)) if combination else None
        # Benign decoys: half a combination alone must not be flagged.
        decoy = None
        if signature is None and not combination and rng.random() < 0.3:
            decoy = str(rng.choice(["text"] + visual)) if "text" in mix or visual else None
            if decoy == "text" and "text" not in mix:
                decoy = None
        labels = {c: 0 for c in taxonomy.names}
        if signature:
            labels[signature] = 1
            if "/" in signature:
                labels[signature.split("/")[0]] = 1
        if combination:
            for c in COMBINATION_LABELS:
                labels[c] = 1
        meta = {"language": "en", "market": str(rng.choice(["DE", "US", "FR", "BR"])), "content_type": "post",
                "source": "synthetic", "split": split}
        variant = None
        visual_signature = None
        if carrier in ("image", "video"):
            visual_signature = image_signature(rng, signature, pools, pool)
            variant = visual_signature.name
        tone = None
        if carrier in ("audio", "soundtrack"):
            tone = tone_signature(rng, signature, pools, pool)
            variant = f"tone{tone}"
        cross = crosshair(rng, pools, pool) if combo_visual or decoy in ("image", "video") else None
        row = {"id": item_id, "labels": labels, "meta": meta}
        if "text" in mix:
            text = make_text(rng, None, combination or decoy == "text", pools, pool)
            if carrier == "text":
                phrase = str(_choose(rng, pools[("phrase", signature)][pool]))
                text = _insert(rng, text, phrase)
                variant = f"phrase{PHRASES[signature].index(phrase)}"
            row["text"] = text
        if signature:
            meta.update(carrier=carrier, variant=variant)
        elif combination:
            meta.update(carrier="combination", variant=cross.name)
        if "image" in mix:
            fmt = "PNG" if rng.random() < 0.6 else "JPEG"
            img = make_image(rng, spec.image_size, visual_signature if carrier == "image" else None,
                             cross if combo_visual == "image" or decoy == "image" else None, pools, pool)
            name = f"image/{item_id}.{'png' if fmt == 'PNG' else 'jpg'}"
            (out / name).write_bytes(encode_image(img, fmt))
            row["image"] = name
        if "audio" in mix:
            rate = int(rng.choice([16000, 22050]))
            fmt = "WAV" if rng.random() < 0.6 else "FLAC"
            wave = make_audio(rng, rate, spec.audio_seconds, signature if carrier == "audio" else None, tone)
            name = f"audio/{item_id}.{fmt.lower()}"
            (out / name).write_bytes(encode_audio(wave, rate, fmt))
            row["audio"] = name
        if "video" in mix:
            fmt = "mp4" if rng.random() < 0.8 else "webm"
            frames = make_video_frames(rng, spec, visual_signature if carrier == "video" else None,
                                       cross if combo_visual == "video" or decoy == "video" else None, pools, pool)
            sound = None
            if has_soundtrack:
                seconds = spec.video_frames / spec.video_fps
                sound = make_audio(rng, 16000, seconds, signature if carrier == "soundtrack" else None, tone)
            name = f"video/{item_id}.{fmt}"
            (out / name).write_bytes(encode_video(frames, spec.video_fps, fmt, sound, 16000))
            row["video"] = name
        samples.append(Sample.from_row(row))
        if progress and ((index + 1) % 100 == 0 or index + 1 == spec.num_items):
            if callable(progress):
                progress(index + 1, spec.num_items)
            else:
                logger.info("[corpus] %d/%d items", index + 1, spec.num_items)
    manifest = out / manifest_name
    write_manifest(samples, str(manifest))
    return manifest
