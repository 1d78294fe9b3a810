"""The enforcement policy: what to do with a score (allow / review / restrict / block, per category, with
per-market overrides), as a typed, validated object loaded from versioned YAML."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from tripwire.common.config import ConfigError, load_yaml
from tripwire.policy.taxonomy import DEFAULT_POLICY, Taxonomy, default_resource

class Action(enum.IntEnum):
    """Enforcement actions, ordered by severity so ``max`` picks the strictest."""

    ALLOW = 0
    REVIEW = 1
    RESTRICT = 2
    BLOCK = 3

    @property
    def label(self) -> str:
        return self.name.lower()


SEVERE_ACTIONS = (Action.REVIEW, Action.RESTRICT, Action.BLOCK)
ACTION_NAMES = tuple(action.label for action in Action)  # mildest first: allow, review, restrict, block


INTENTS = ("stricter", "laxer")


@dataclass(frozen=True)
class CategoryRule:
    """Score thresholds for one category; an omitted action is never taken for it.

    ``intent`` is for a market override only: ``stricter`` (the market acts on at least what the base
    rule acts on: every threshold at or below the base's) or ``laxer`` (at or above). A policy whose
    override contradicts its stated intent does not load, and :func:`tripwire.evaluation.thresholds.recommend` keeps
    the relation when it moves the base thresholds.
    """

    review: float | None = None
    restrict: float | None = None
    block: float | None = None
    ground: str = "terms_of_service"
    intent: str | None = None

    def __post_init__(self):
        previous = None
        for action in SEVERE_ACTIONS:
            value = getattr(self, action.label)
            if value is None:
                continue
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{action.label}: threshold {value} is outside [0, 1]")
            if previous is not None and value < previous[1]:
                raise ConfigError(
                    f"{action.label}: threshold {value} is below {previous[0]} threshold {previous[1]}; "
                    "thresholds must rise with severity"
                )
            previous = (action.label, value)
        if self.ground not in ("terms_of_service", "illegal_content"):
            raise ConfigError(f"ground: {self.ground!r} must be 'terms_of_service' or 'illegal_content'")
        if self.intent is not None and self.intent not in INTENTS:
            raise ConfigError(f"intent: {self.intent!r} must be one of {list(INTENTS)} (or omitted)")

    def action_for(self, score: float) -> tuple[Action, float | None]:
        """The strictest action whose threshold ``score`` reaches, and that threshold."""
        for action in reversed(SEVERE_ACTIONS):
            threshold = getattr(self, action.label)
            if threshold is not None and score >= threshold:
                return action, threshold
        return Action.ALLOW, None


def relation(override: float | None, base: float | None) -> str | None:
    """How one action's override threshold relates to the base's: ``stricter`` (it acts on more items:
    a lower threshold, or a threshold where the base has none), ``laxer`` (a higher one, or none where
    the base has one), ``same``, or None when neither acts."""
    if override is None and base is None:
        return None
    if base is None:
        return "stricter"
    if override is None:
        return "laxer"
    return "stricter" if override < base else "laxer" if override > base else "same"


@dataclass(frozen=True)
class Reason:
    """Why a category contributed to a decision."""

    category: str
    score: float
    threshold: float
    action: str
    ground: str


@dataclass(frozen=True)
class Decision:
    """The policy's verdict on one item."""

    action: str
    reasons: list[Reason]
    flagged: list[str]
    policy_version: str
    market: str | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The signals a result can rest on: each input modality's encoder, ``speech`` and ``image_text`` (transcripts and
# text read in pictures, scored by the text model), and ``nudity`` (the nudity expert's probability).
SIGNALS = ("text", "speech", "image_text", "nudity", "image", "audio", "video")


@dataclass(frozen=True)
class EvaluatedSignal:
    """Where a signal's detector was evaluated on real content: it may restrict or block for ``categories``
    (any other category, and any signal not listed, can at most send an item to review).

    ``evaluated_on`` names the golden set(s) (``name@version``) and ``note`` what they cover."""

    categories: list[str]
    evaluated_on: str
    note: str = ""

    def __post_init__(self):
        if not self.evaluated_on:
            raise ConfigError("evaluated_on: name the golden set the signal was evaluated on")


@dataclass(frozen=True)
class Policy:
    """Maps category scores to actions, with per-market threshold overrides."""

    version: str
    taxonomy_version: str
    categories: dict[str, CategoryRule]
    markets: dict[str, dict[str, CategoryRule]] = field(default_factory=dict)
    # What chose the thresholds (tripwire.evaluation.thresholds): data set, hash, targets, achieved figures.
    evidence: dict[str, Any] = field(default_factory=dict)
    # Signal -> where it was evaluated on real content; a signal not named here never restricts or blocks.
    signals: dict[str, EvaluatedSignal] = field(default_factory=dict)

    def __post_init__(self):
        if not self.version:
            raise ConfigError("version: must not be empty")
        for market, overrides in self.markets.items():
            if market != market.upper() or len(market) != 2:
                raise ConfigError(f"markets.{market}: market codes are ISO 3166 alpha-2, upper case")
            unknown = sorted(set(overrides) - set(self.categories))
            if unknown:
                raise ConfigError(f"markets.{market}: categories {unknown} have no base rule in categories")
            for category, override in overrides.items():
                self._check_intent(f"markets.{market}.{category}", override, self.categories[category])
        for signal, evaluated in self.signals.items():
            if signal not in SIGNALS:
                raise ConfigError(f"signals.{signal}: not a signal (one of {list(SIGNALS)})")
            unknown = sorted(set(evaluated.categories) - set(self.categories))
            if unknown:
                raise ConfigError(f"signals.{signal}.categories: {unknown} have no rule in categories")
        for category, rule in self.categories.items():
            if rule.intent is not None:
                raise ConfigError(f"categories.{category}.intent: only a market override states an intent "
                                  "(stricter or laxer than its base rule)")

    @staticmethod
    def _check_intent(where: str, override: CategoryRule, base: CategoryRule) -> None:
        """A market override meant stricter (laxer) than its base may have no laxer (stricter) threshold."""
        if override.intent is None:
            return
        wrong = "laxer" if override.intent == "stricter" else "stricter"
        for action in SEVERE_ACTIONS:
            mine, theirs = getattr(override, action.label), getattr(base, action.label)
            if relation(mine, theirs) == wrong:
                shown = lambda v: "none (never acts)" if v is None else f"{v:g}"  # noqa: E731
                raise ConfigError(f"{where}.{action.label}: the override is meant {override.intent} than the base "
                                  f"rule, but its threshold {shown(mine)} is {wrong} than the base's {shown(theirs)} "
                                  "(a lower threshold acts on more items)")

    @classmethod
    def load(cls, uri: str | Path | None = None) -> "Policy":
        """Loads a policy YAML (the bundled default when ``uri`` is None)."""
        return load_yaml(cls, uri or default_resource(DEFAULT_POLICY))

    def check_taxonomy(self, taxonomy: Taxonomy) -> None:
        """Raises ConfigError unless every policy category exists in ``taxonomy`` (same version)."""
        if self.taxonomy_version != taxonomy.version:
            raise ConfigError(
                f"taxonomy_version: policy {self.version} targets taxonomy {self.taxonomy_version}, "
                f"but the model scores taxonomy {taxonomy.version}"
            )
        unknown = sorted(set(self.categories) - set(taxonomy.names))
        if unknown:
            raise ConfigError(f"categories: {unknown} are not in taxonomy {taxonomy.version}")

    def rule(self, category: str, market: str | None = None) -> CategoryRule | None:
        if market and category in self.markets.get(market.upper(), {}):
            return self.markets[market.upper()][category]
        return self.categories.get(category)

    def thresholds(self, market: str | None = None) -> dict[str, dict[str, Any]]:
        """The rules :meth:`decide` applies in ``market``: category -> its thresholds and ground."""
        out = {}
        for category in self.categories:
            rule = dataclasses.asdict(self.rule(category, market))
            rule.pop("intent")
            out[category] = rule
        return out

    def trusted(self, category: str) -> frozenset[str]:
        """The signals that may restrict or block for ``category`` (evaluated on real content for it)."""
        return frozenset(s for s, e in self.signals.items() if category in e.categories)

    def decide(self, scores: Mapping[str, float], market: str | None = None,
               trusted_scores: Mapping[str, float | None] | None = None) -> Decision:
        """Applies the policy to per-category scores.

        Args:
            scores: category name -> calibrated score in [0, 1].
            market: optional ISO market code selecting overrides.
            trusted_scores: for categories where ``scores`` rest partly on signals not evaluated on real content
                for them (:meth:`trusted`), the score from the evaluated signals alone (None: the item has none of
                them). There the full score
                can at most send the item to review; restrict and block need the trusted score. A category
                missing here takes its full score's action.

        Returns:
            The strictest action over all categories, with one reason per category that acted,
            strictest first.
        """
        reasons = []
        trusted_scores = trusted_scores or {}
        for category, score in scores.items():
            rule = self.rule(category, market)
            if rule is None:
                continue
            score = float(score)
            action, threshold = rule.action_for(score)
            if category in trusted_scores:
                # The stricter of: what the evaluated signals decide alone, and what all signals decide capped
                # at review.
                trusted = trusted_scores[category]
                trusted_action, trusted_threshold = (Action.ALLOW, None) if trusted is None else rule.action_for(trusted)
                if action > Action.REVIEW:  # a rule without a review band lets the unevaluated signals do nothing
                    action, threshold = (Action.REVIEW, rule.review) if rule.review is not None else (Action.ALLOW, None)
                if trusted_action > action:
                    action, threshold, score = trusted_action, trusted_threshold, float(trusted)
            if action is not Action.ALLOW:
                reasons.append((action, Reason(category, score, threshold, action.label, rule.ground)))
        reasons.sort(key=lambda pair: (-pair[0], -pair[1].score))
        overall = reasons[0][0] if reasons else Action.ALLOW
        return Decision(
            action=overall.label,
            reasons=[r for _, r in reasons],
            flagged=[r.category for _, r in reasons],
            policy_version=self.version,
            market=market.upper() if market else None,
        )
