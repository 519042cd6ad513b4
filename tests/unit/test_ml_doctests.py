"""The examples in the docstrings of the ML modules run and still say the truth."""

import doctest

import pytest

import models.confidence
import models.distribution
import models.features
import models.heuristic
import models.metrics
import models.risk
import models.synthetic.incidents
import models.synthetic.world


@pytest.mark.parametrize(
    "module",
    [
        models.confidence,
        models.distribution,
        models.features,
        models.heuristic,
        models.metrics,
        models.risk,
        models.synthetic.incidents,
        models.synthetic.world,
    ],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module):
    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failed == 0
