"""Typed campaign configuration, validated once at the edge."""
from .load import load, to_plain
from .schema import ROLES, Campaign
from .validate import ConfigError

__all__ = ["ROLES", "Campaign", "ConfigError", "load", "to_plain"]
