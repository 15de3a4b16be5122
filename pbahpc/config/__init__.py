"""Typed campaign configuration, validated once at the edge."""
from .load import load, read_on_root, to_plain
from .schema import ROLES, Campaign
from .validate import ConfigError

__all__ = ["ROLES", "Campaign", "ConfigError", "load", "read_on_root", "to_plain"]
