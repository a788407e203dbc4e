"""The README's Python snippets run as written (on this machine's device); snippets that import
mmdet/mmdet3d heads or mmpose's registry (which need mmcv) are only compiled."""

from __future__ import annotations

import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")
BLOCKS = re.findall(r"```python\n(.*?)```", open(README).read(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block-{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(index):
    source = BLOCKS[index]
    code = compile(source, f"README.md block {index}", "exec")
    if re.search(r"^from mm(det|pose)", source, flags=re.M):
        pytest.skip("imports mmdet/mmdet3d/mmpose, which need mmcv: compiled only")
    exec(code, {})


def test_readme_has_blocks():
    assert len(BLOCKS) >= 4
