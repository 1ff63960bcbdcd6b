"""The explorer tests share one set of fabricated inputs (tests/explorer_fixture.py), its table
and its page; tests that change an input work on a copy."""

from __future__ import annotations

import pytest
from explorer_fixture import fabricate

from softdigits.explorer.data import build_explorer
from softdigits.explorer.page import write_page


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    return fabricate(tmp_path_factory.mktemp("explorer") / "results-test")


@pytest.fixture(scope="session")
def explorer(inputs):
    return build_explorer(inputs.corpus, **inputs.kwargs())


@pytest.fixture(scope="session")
def page_path(inputs, explorer):
    path = inputs.results / "explorer" / f"{inputs.corpus}.html"
    write_page(explorer, path)
    return path
