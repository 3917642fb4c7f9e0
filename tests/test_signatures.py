"""The site wraps long signatures in-process exactly as mkdocstrings would have them wrapped by Ruff."""

import pytest

from torchenstein._site.signatures import wrap_signature

rendering = pytest.importorskip("mkdocstrings_handlers.python._internal.rendering")

# Shapes the course's pages really hold (cross-references appear as stashed `_Key` names).
CASES = [
    "def xxxxxxx(fn: _Bghrdeq[[], _iXn3A], *, repeat: _I3 = 5, warmup: _Jk = 1, device: _Djdho | _6G | None = 'cpu')"
    " -> _L1Ge: pass",
    "def xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx(candidate: _y4oDP2F[[_SUEgf, _nX3ha], _KDAgE]) -> None: pass",
    "def xxxxxxxxxxxxxxx(*, steps: _k5 = 200, growth_interval: _qd = 10, init_scale: _CbEU = 2.0 ** 16) -> _4e9C: pass",
    "def xxxxxxxxxx(input: _Ab, weight: _Cd, bias: _Ef | None = None, eps: _Gh = 1e-05, momentum: _Ij = 0.1): pass",
    "FLOAT_LAYOUTS: _gCa[_dfo4, _jj47[_iK, _Fn]] = {_Mmdy._0Gg9Vy: (5, 10), _Vt6p._xkk2WsN: (8, 7), _Px3x._q5: (8, 23)}",
    "CONV1D_WEIGHTS = ('attn.c_attn.weight', 'attn.c_proj.weight', 'mlp.c_fc.weight', 'mlp.c_proj.weight')",
    "KV_CACHE_EXAMPLE = {'num_layers': 32, 'head_dim': 128, 'seq_len': 4096, 'batch_size': 1}",
    "FUSED = _6Dhp(_VB._CPXND, _Ey._NtzR1mUr, _Te._6rx04lZx, _6TX0JF(_8z._Dcn, _274b33QvI1='tanh'), _v8._t1BdLA6q)",
]


@pytest.mark.parametrize("code", CASES)
def test_wrapping_equals_ruff(code):
    ruff = rendering._get_ruff_formatter()
    if ruff is None:
        pytest.skip("Ruff is not installed")
    assert wrap_signature(code, 88).strip() == ruff(code, 88).strip()


def test_code_of_another_shape_comes_back_unchanged():
    assert wrap_signature("x = 1 + 2", 4) == "x = 1 + 2"
    assert wrap_signature("class A(B): pass", 4) == "class A(B): pass"
