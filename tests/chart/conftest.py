"""Fixtures of the chart suite: the chart rendered for each value set of
``_chart.value_sets()`` (the defaults, examples/values-production.yaml and variations)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import _chart  # noqa: E402

VALUE_SETS = _chart.value_sets()


@pytest.fixture(params=sorted(VALUE_SETS), scope="session")
def rendered(request) -> _chart.Rendered:
    values, release, namespace = VALUE_SETS[request.param]
    return _chart.render(values, release=release, namespace=namespace)


@pytest.fixture(scope="session")
def default_render() -> _chart.Rendered:
    return _chart.render({})
