"""Fixtures for every suite: the real local broker and the real warehouse engine."""

from tests.fixtures.broker import *  # noqa: F403
from tests.fixtures.objectstore import *  # noqa: F403
from tests.fixtures.warehouse import *  # noqa: F403
