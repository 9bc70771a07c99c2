"""Exceptions of the feature engine, rooted in one base class."""

from __future__ import annotations


class FeatureError(Exception):
    """Base of every error raised by detectors.features."""


class FeatureParamsError(FeatureError, ValueError):
    """A feature parameter is out of range."""


class CloseOrderError(FeatureError, ValueError):
    """close_day was asked for a day other than the merchant's next day to close."""


class StateDecodeError(FeatureError, ValueError):
    """Serialized merchant state is malformed or of an unknown format version."""
