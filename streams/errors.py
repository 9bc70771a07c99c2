"""The streams package's exception hierarchy, rooted in one base class."""

from __future__ import annotations


class StreamsError(Exception):
    """Base of every error raised by the streams package."""


class ConfigurationError(StreamsError):
    """A setting or command-line argument is invalid."""


class BrokerError(StreamsError):
    """The local broker could not be started, reached or set up."""


class WarehouseError(StreamsError):
    """The warehouse rejected a statement or could not be reached."""


class InputFileError(StreamsError):
    """An input file (scenario, history export) is missing or malformed."""
