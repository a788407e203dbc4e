"""The examples in the public docstrings run and print what they say.

They run here, through the installed package, rather than through pytest's
--doctest-modules: that imports each file under src/ by path, a second copy of the
package whose op registration collides with the first.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES_WITH_EXAMPLES = ["gaussdraw", "gaussdraw.checks", "gaussdraw.dispatch", "gaussdraw.inputs", "gaussdraw.draw",
                         "gaussdraw.ragged", "gaussdraw.loss", "gaussdraw.radius",
                         "gaussdraw.targets.centernet", "gaussdraw.targets.centerpoint",
                         "gaussdraw.keypoints.encode", "gaussdraw.keypoints.codecs", "gaussdraw.decode.centernet",
                         "gaussdraw.decode.centerpoint"]


@pytest.mark.parametrize("name", MODULES_WITH_EXAMPLES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
