"""The DSA Transparency Database's vocabulary, and Tripwire's mapping onto it (``resources/dsa_mapping.yaml``).

The enumerations below are those of the Transparency Database API's validation rules, schema of
1 July 2025 (``SCHEMA_VERSION``); ``resources/dsa_sor.schema.json`` repeats them for JSON Schema tools,
and a unit test keeps the two equal.

:class:`DsaMapping` says, for one taxonomy and policy, which statement fields a decision gets: per taxonomy
category the statement ``category`` and keywords, per restrictive action the decision fields, per policy
ground the ``decision_ground`` and its texts, per modality the ``content_type``, per detection source the
``source_type``. Every value is checked when the mapping is loaded, so a typo or a value the 2025 schema
dropped fails there, naming the field, instead of as a rejected API call for every statement.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from tripwire.compliance.records import RESTRICTIVE, SOURCES
from tripwire.common.config import ConfigError, load_yaml
from tripwire.policy import default_resource

SCHEMA_VERSION = "2025-07-01"
DEFAULT_MAPPING = "dsa_mapping.yaml"
POLICY_GROUNDS = ("terms_of_service", "illegal_content")  # tripwire.policy.CategoryRule.ground

# -- enumerations (Transparency Database API, schema of 1 July 2025) -----------------------------------
DECISION_VISIBILITY = (
    "DECISION_VISIBILITY_CONTENT_REMOVED", "DECISION_VISIBILITY_CONTENT_DISABLED",
    "DECISION_VISIBILITY_CONTENT_DEMOTED", "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED",
    "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED", "DECISION_VISIBILITY_CONTENT_LABELLED",
    "DECISION_VISIBILITY_OTHER",
)
DECISION_MONETARY = ("DECISION_MONETARY_SUSPENSION", "DECISION_MONETARY_TERMINATION", "DECISION_MONETARY_OTHER")
DECISION_PROVISION = (
    "DECISION_PROVISION_PARTIAL_SUSPENSION", "DECISION_PROVISION_TOTAL_SUSPENSION",
    "DECISION_PROVISION_PARTIAL_TERMINATION", "DECISION_PROVISION_TOTAL_TERMINATION",
)
DECISION_ACCOUNT = ("DECISION_ACCOUNT_SUSPENDED", "DECISION_ACCOUNT_TERMINATED")
ACCOUNT_TYPE = ("ACCOUNT_TYPE_BUSINESS", "ACCOUNT_TYPE_PRIVATE")
DECISION_GROUND_ILLEGAL = "DECISION_GROUND_ILLEGAL_CONTENT"
DECISION_GROUND_INCOMPATIBLE = "DECISION_GROUND_INCOMPATIBLE_CONTENT"
DECISION_GROUND = (DECISION_GROUND_ILLEGAL, DECISION_GROUND_INCOMPATIBLE)
CONTENT_TYPE = (
    "CONTENT_TYPE_APP", "CONTENT_TYPE_AUDIO", "CONTENT_TYPE_IMAGE", "CONTENT_TYPE_PRODUCT",
    "CONTENT_TYPE_SYNTHETIC_MEDIA", "CONTENT_TYPE_TEXT", "CONTENT_TYPE_VIDEO", "CONTENT_TYPE_OTHER",
)
SOURCE_VOLUNTARY = "SOURCE_VOLUNTARY"
SOURCE_TYPE = ("SOURCE_ARTICLE_16", "SOURCE_TRUSTED_FLAGGER", "SOURCE_TYPE_OTHER_NOTIFICATION", SOURCE_VOLUNTARY)
AUTOMATED_DECISION_FULLY = "AUTOMATED_DECISION_FULLY"
AUTOMATED_DECISION_PARTIALLY = "AUTOMATED_DECISION_PARTIALLY"
AUTOMATED_DECISION = (AUTOMATED_DECISION_FULLY, AUTOMATED_DECISION_PARTIALLY, "AUTOMATED_DECISION_NOT_AUTOMATED")
YES_NO = ("Yes", "No")
STATEMENT_CATEGORY = tuple(f"STATEMENT_CATEGORY_{name}" for name in (
    "ANIMAL_WELFARE", "CONSUMER_INFORMATION", "CYBER_VIOLENCE", "CYBER_VIOLENCE_AGAINST_WOMEN",
    "DATA_PROTECTION_AND_PRIVACY_VIOLATIONS", "ILLEGAL_OR_HARMFUL_SPEECH", "INTELLECTUAL_PROPERTY_INFRINGEMENTS",
    "NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS", "NOT_SPECIFIED_NOTICE", "OTHER_VIOLATION_TC",
    "PROTECTION_OF_MINORS", "RISK_FOR_PUBLIC_SECURITY", "SCAMS_AND_FRAUD", "SELF_HARM",
    "UNSAFE_AND_PROHIBITED_PRODUCTS", "VIOLENCE",
))
KEYWORD_OTHER = "KEYWORD_OTHER"
KEYWORDS = tuple(f"KEYWORD_{name}" for name in (
    "ADULT_SEXUAL_MATERIAL", "AGE_SPECIFIC_RESTRICTIONS", "AGE_SPECIFIC_RESTRICTIONS_MINORS", "ANIMAL_HARM",
    "BIOMETRIC_DATA_BREACH", "BULLYING_AGAINST_GIRLS", "CHILD_SEXUAL_ABUSE_MATERIAL",
    "CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE", "CONTENT_PROMOTING_EATING_DISORDERS", "COORDINATED_HARM",
    "COPYRIGHT_INFRINGEMENT", "CYBER_BULLYING_INTIMIDATION", "CYBER_HARASSMENT", "CYBER_HARASSMENT_AGAINST_WOMEN",
    "CYBER_INCITEMENT", "CYBER_STALKING", "CYBER_STALKING_AGAINST_WOMEN", "DATA_FALSIFICATION", "DEFAMATION",
    "DESIGN_INFRINGEMENT", "DISCRIMINATION", "FEMALE_GENDERED_DISINFORMATION", "GEOGRAPHIC_INDICATIONS_INFRINGEMENT",
    "GEOGRAPHICAL_REQUIREMENTS", "GOODS_SERVICES_NOT_PERMITTED", "GROOMING_SEXUAL_ENTICEMENT_MINORS", "HATE_SPEECH",
    "HIDDEN_ADVERTISEMENT", "HUMAN_EXPLOITATION", "HUMAN_TRAFFICKING", "ILLEGAL_ORGANIZATIONS",
    "IMPERSONATION_ACCOUNT_HIJACKING", "INAUTHENTIC_ACCOUNTS", "INAUTHENTIC_LISTINGS", "INAUTHENTIC_USER_REVIEWS",
    "INCITEMENT_AGAINST_WOMEN", "INCITEMENT_VIOLENCE_HATRED", "INSUFFICIENT_INFORMATION_ON_TRADERS",
    "LANGUAGE_REQUIREMENTS", "MISINFORMATION_DISINFORMATION", "MISLEADING_INFO_CONSUMER_RIGHTS",
    "MISLEADING_INFO_GOODS_SERVICES", "MISSING_PROCESSING_GROUND", "NON_CONSENSUAL_IMAGE_SHARING",
    "NON_CONSENSUAL_IMAGE_SHARING_AGAINST_WOMEN", "NON_CONSENSUAL_MATERIAL_DEEPFAKE",
    "NON_CONSENSUAL_MATERIAL_DEEPFAKE_AGAINST_WOMEN", "NONCOMPLIANCE_PRICING", "NUDITY", "OTHER",
    "PATENT_INFRINGEMENT", "PHISHING", "PROHIBITED_PRODUCTS", "PYRAMID_SCHEMES", "RIGHT_TO_BE_FORGOTTEN",
    "RISK_ENVIRONMENTAL_DAMAGE", "RISK_PUBLIC_HEALTH", "SELF_MUTILATION", "STALKING", "SUICIDE",
    "TERRORIST_CONTENT", "TRADE_SECRET_INFRINGEMENT", "TRADEMARK_INFRINGEMENT", "TRAFFICKING_WOMEN_GIRLS",
    "UNLAWFUL_SALE_ANIMALS", "UNSAFE_CHALLENGES", "UNSAFE_PRODUCTS", "VIOLATION_EU_LAW", "VIOLATION_NATIONAL_LAW",
))
# The EU member states plus Iceland, Liechtenstein and Norway (ISO 3166-1 alpha-2; Greece is GR here).
EEA_COUNTRIES = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IS", "IT", "LI",
    "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
)

# -- field limits --------------------------------------------------------------------------------------
MAX_SHORT_TEXT = 500  # *_other, illegal_content_legal_ground, incompatible_content_ground, source_identity
MAX_EXPLANATION = 2000  # illegal_content_explanation, incompatible_content_explanation
MAX_DECISION_FACTS = 5000
# What an explanation template may name (filled in by tripwire.compliance.statements).
TEMPLATE_FIELDS = ("label", "category", "action", "score", "threshold", "market", "policy_version")
# Worst-case stand-ins for the template fields, to check a template's filled length at load time.
_LONGEST_FILL = {"label": "x" * 80, "category": "x" * 60, "action": "restrict", "score": "0.000",
                 "threshold": "0.000", "market": "all markets", "policy_version": "x" * 40}


def _check_enum(value: str | None, allowed: tuple[str, ...], where: str) -> None:
    if value is not None and value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not a {SCHEMA_VERSION} Transparency Database value")


def _check_text(value: str | None, limit: int, where: str, required: bool = False) -> None:
    if value is None:
        if required:
            raise ConfigError(f"{where}: required")
        return
    if not value.strip():
        raise ConfigError(f"{where}: must not be empty")
    if len(value) > limit:
        raise ConfigError(f"{where}: {len(value)} characters, the API allows at most {limit}")


def check_template(template: str | None, limit: int, where: str, required: bool = False) -> None:
    """A text with ``{field}`` placeholders: only :data:`TEMPLATE_FIELDS`, and within ``limit`` once filled."""
    _check_text(template, limit, where, required)
    if template is None:
        return
    try:
        names = {name for _, name, spec, conv in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid template: {exc}") from None
    unknown = sorted(names - set(TEMPLATE_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown placeholder(s) {unknown}; allowed: {list(TEMPLATE_FIELDS)}")
    filled = template.format_map(_LONGEST_FILL)
    if len(filled) > limit:
        raise ConfigError(f"{where}: up to {len(filled)} characters once filled, the API allows at most {limit}")


def fill(template: str, values: Mapping[str, Any]) -> str:
    """A checked template (:func:`check_template`) with its placeholders filled."""
    return template.format_map({name: values.get(name, "") for name in TEMPLATE_FIELDS})


@dataclass(frozen=True)
class CategoryMapping:
    """One taxonomy category's statement ``category`` and ``category_specification`` keywords."""

    category: str
    label: str
    category_specification: tuple[str, ...] = ()
    category_specification_other: str | None = None
    # Replaces the ground's default legal ground for this category (illegal content only).
    illegal_content_legal_ground: str | None = None

    def __post_init__(self):
        _check_enum(self.category, STATEMENT_CATEGORY, "category")
        _check_text(self.label, 200, "label", required=True)
        for i, keyword in enumerate(self.category_specification):
            _check_enum(keyword, KEYWORDS, f"category_specification[{i}]")
        if len(set(self.category_specification)) != len(self.category_specification):
            raise ConfigError("category_specification: repeated keyword")
        # The API only allows the text; Tripwire always says what KEYWORD_OTHER stands for.
        _check_text(self.category_specification_other, MAX_SHORT_TEXT, "category_specification_other",
                    required=KEYWORD_OTHER in self.category_specification)
        if self.category_specification_other is not None and KEYWORD_OTHER not in self.category_specification:
            raise ConfigError("category_specification_other: only with KEYWORD_OTHER in category_specification")
        check_template(self.illegal_content_legal_ground, MAX_SHORT_TEXT, "illegal_content_legal_ground")


@dataclass(frozen=True)
class ActionMapping:
    """The decision fields one restrictive action sets (at least one of the four, as the API requires)."""

    description: str  # plain language for decision_facts: "it was removed"
    decision_visibility: tuple[str, ...] = ()
    decision_visibility_other: str | None = None
    decision_monetary: str | None = None
    decision_monetary_other: str | None = None
    decision_provision: str | None = None
    decision_account: str | None = None

    def __post_init__(self):
        _check_text(self.description, 300, "description", required=True)
        for i, value in enumerate(self.decision_visibility):
            _check_enum(value, DECISION_VISIBILITY, f"decision_visibility[{i}]")
        _check_enum(self.decision_monetary, DECISION_MONETARY, "decision_monetary")
        _check_enum(self.decision_provision, DECISION_PROVISION, "decision_provision")
        _check_enum(self.decision_account, DECISION_ACCOUNT, "decision_account")
        if not (self.decision_visibility or self.decision_monetary or self.decision_provision
                or self.decision_account):
            raise ConfigError("decision_visibility: at least one of decision_visibility, decision_monetary, "
                              "decision_provision, decision_account is required")
        _check_text(self.decision_visibility_other, MAX_SHORT_TEXT, "decision_visibility_other",
                    required="DECISION_VISIBILITY_OTHER" in self.decision_visibility)
        _check_text(self.decision_monetary_other, MAX_SHORT_TEXT, "decision_monetary_other",
                    required=self.decision_monetary == "DECISION_MONETARY_OTHER")

    def fields(self) -> dict[str, Any]:
        """The statement's decision fields (the unset ones left out)."""
        values = {"decision_visibility": list(self.decision_visibility) or None,
                  "decision_visibility_other": self.decision_visibility_other,
                  "decision_monetary": self.decision_monetary, "decision_monetary_other": self.decision_monetary_other,
                  "decision_provision": self.decision_provision, "decision_account": self.decision_account}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class GroundMapping:
    """One policy ground's ``decision_ground`` and the texts the API requires with it (templates)."""

    decision_ground: str
    illegal_content_legal_ground: str | None = None
    illegal_content_explanation: str | None = None
    incompatible_content_ground: str | None = None
    incompatible_content_explanation: str | None = None
    incompatible_content_illegal: str | None = None
    decision_ground_reference_url: str | None = None  # replaces the mapping's for this ground

    def __post_init__(self):
        _check_enum(self.decision_ground, DECISION_GROUND, "decision_ground")
        illegal = self.decision_ground == DECISION_GROUND_ILLEGAL
        texts = (("illegal_content_legal_ground", MAX_SHORT_TEXT, illegal),
                 ("illegal_content_explanation", MAX_EXPLANATION, illegal),
                 ("incompatible_content_ground", MAX_SHORT_TEXT, not illegal),
                 ("incompatible_content_explanation", MAX_EXPLANATION, not illegal))
        for name, limit, belongs in texts:
            value = getattr(self, name)
            if value is not None and not belongs:
                raise ConfigError(f"{name}: does not go with {self.decision_ground}")
            check_template(value, limit, name, required=belongs)
        _check_enum(self.incompatible_content_illegal, YES_NO, "incompatible_content_illegal")
        if self.incompatible_content_illegal is not None and illegal:
            raise ConfigError(f"incompatible_content_illegal: does not go with {self.decision_ground}")
        _check_url(self.decision_ground_reference_url, "decision_ground_reference_url")


def _check_url(value: str | None, where: str) -> None:
    if value is not None and not value.startswith(("https://", "http://")):
        raise ConfigError(f"{where}: {value!r} must be an http(s) URL")


@dataclass(frozen=True)
class DsaMapping:
    """Tripwire's taxonomy, actions, grounds, modalities and sources -> statement of reasons fields."""

    version: str
    taxonomy_version: str
    schema: str
    categories: dict[str, CategoryMapping]
    actions: dict[str, ActionMapping]
    grounds: dict[str, GroundMapping]
    content_types: dict[str, str]
    source_types: dict[str, str]
    decision_ground_reference_url: str | None = None
    content_type_other: str | None = None  # required when a modality maps to CONTENT_TYPE_OTHER

    def __post_init__(self):
        if not self.version:
            raise ConfigError("version: must not be empty")
        if self.schema != SCHEMA_VERSION:
            raise ConfigError(f"schema: {self.schema!r}; these enumerations are the {SCHEMA_VERSION} schema's")
        if not self.categories:
            raise ConfigError("categories: at least one category is required")
        self._check_actions()
        missing = sorted(set(POLICY_GROUNDS) - set(self.grounds))
        if missing:
            raise ConfigError(f"grounds: policy ground(s) {missing} have no mapping")
        unknown = sorted(set(self.grounds) - set(POLICY_GROUNDS))
        if unknown:
            raise ConfigError(f"grounds: {unknown} are not policy grounds {list(POLICY_GROUNDS)}")
        self._check_values(self.content_types, CONTENT_TYPE, "content_types")
        _check_text(self.content_type_other, MAX_SHORT_TEXT, "content_type_other",
                    required="CONTENT_TYPE_OTHER" in self.content_types.values())
        self._check_values(self.source_types, SOURCE_TYPE, "source_types")
        missing = sorted(set(SOURCES) - set(self.source_types))
        if missing:
            raise ConfigError(f"source_types: detection source(s) {missing} have no mapping")
        _check_url(self.decision_ground_reference_url, "decision_ground_reference_url")

    def _check_actions(self) -> None:
        missing = [action for action in RESTRICTIVE if action not in self.actions]
        if missing:
            raise ConfigError(f"actions: restrictive action(s) {missing} have no decision fields")
        extra = sorted(set(self.actions) - set(RESTRICTIVE))
        if extra:
            raise ConfigError(f"actions: {extra} restrict nothing, so no statement is owed; map only {list(RESTRICTIVE)}")

    @staticmethod
    def _check_values(values: Mapping[str, str], allowed: tuple[str, ...], where: str) -> None:
        if not values:
            raise ConfigError(f"{where}: at least one entry is required")
        for key, value in values.items():
            _check_enum(value, allowed, f"{where}.{key}")

    @classmethod
    def load(cls, uri: str | Path | None = None) -> "DsaMapping":
        """Loads a mapping YAML (the bundled default when ``uri`` is None); errors name the file and field."""
        return load_yaml(cls, uri or default_resource(DEFAULT_MAPPING))

    def check_taxonomy(self, taxonomy_names: Iterable[str], taxonomy_version: str | None = None) -> None:
        """Raises ConfigError unless every taxonomy category has a mapping (and, given, the versions agree).

        Categories mapped but not in the taxonomy are harmless (no decision names them) and are allowed, so
        one mapping can serve a taxonomy that dropped a category.
        """
        if taxonomy_version is not None and taxonomy_version != self.taxonomy_version:
            raise ConfigError(f"taxonomy_version: the DSA mapping {self.version} targets taxonomy "
                              f"{self.taxonomy_version}, not {taxonomy_version}")
        missing = [name for name in taxonomy_names if name not in self.categories]
        if missing:
            raise ConfigError(f"categories: taxonomy categor{'y' if len(missing) == 1 else 'ies'} {missing} "
                              "have no DSA mapping (every category the model scores can restrict content)")

    def reference_url(self, ground: str) -> str | None:
        return self.grounds[ground].decision_ground_reference_url or self.decision_ground_reference_url
