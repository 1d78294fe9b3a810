"""Policy: the taxonomy (what Tripwire scores) and the enforcement policy (what to do with a score), both
versioned YAML files turned into typed, validated objects (defaults in ``tripwire/resources``)."""

from tripwire.policy.rules import (ACTION_NAMES, INTENTS, SEVERE_ACTIONS, SIGNALS, Action, CategoryRule, Decision,
                                   EvaluatedSignal, Policy, Reason, relation)
from tripwire.policy.taxonomy import DEFAULT_POLICY, DEFAULT_TAXONOMY, Category, Taxonomy, default_resource

__all__ = ["ACTION_NAMES", "DEFAULT_POLICY", "DEFAULT_TAXONOMY", "INTENTS", "SEVERE_ACTIONS", "Action", "Category",
           "CategoryRule", "Decision", "EvaluatedSignal", "Policy", "SIGNALS", "Reason", "Taxonomy", "default_resource", "relation"]
