"""SEQ302's fix on `__init__` signatures of every shape (issue 11 §5), executed before and after.

The fix used to insert `, **kwargs` after the last parameter's code without its parentheses, so
`size=(32, 32)` became `size=(32, 32, **kwargs)`: code that does not parse. The parameter list is now
rebuilt by libcst. Each case is fixed, must parse, must build the same dataset from the same arguments
(real Keras PyDataset), and must now accept `workers=`.
"""

from __future__ import annotations

import pytest

from seqlint.engine import get_rule, lint_source
from seqlint.runner import apply_fixes

# (signature, arguments to build it with): defaults of every shape, annotations, *args, keyword-only, `/`.
SIGNATURES = [
    ("self, root, batch_size=16, size=(32, 32)", "'data', 8"),
    ("self, root, size=((32, 32)), channels=(3,)", "'data'"),
    ("self, root, sep=', ', quote=')'", "'data'"),
    ("self, root, mapping={'a': (1, 2), 'b': [3, {4: 5}]}", "'data'"),
    ("self, root, transform=lambda x, y=(1, 2): (x, y)", "'data'"),
    ("self, root, shape: tuple[int, int] = (28, 28), dtype: 'str' = 'float32'", "'data'"),
    ("self, root, *paths", "'data', 'a', 'b'"),
    ("self, root, *, batch_size=32, size=(64, 64)", "'data', batch_size=4"),
    ("self, root, /", "'data'"),
    ("self, root, size=(8, 8), /", "'data'"),
    ("self, root, /, size=(8, 8), *, scale=1 / 255", "'data', size=(2, 2)"),
    ("self, root, *paths, size=(32, 32)", "'data', 'x'"),
    ("\n        self,\n        root,\n        size=(32, 32),  # height, width\n    ", "'data'"),
    ("\n        self,\n        root,\n        size=(32, 32),\n    ", "'data'"),
    ("self, root,\n                 size=(32, 32)  # the crop\n                 ", "'data'"),
]

TEMPLATE = '''\
import keras


class Data(keras.utils.PyDataset):
    def __init__({signature}):
        """Every argument is kept, to compare the two versions."""
        self.args = {{k: v for k, v in locals().items() if k not in ("self", "__class__")}}

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return i
'''


def fixed(source: str) -> str:
    findings = lint_source(source, "data.py", rules=[get_rule("SEQ302")])
    assert [f.code for f in findings] == ["SEQ302"]
    new, applied = apply_fixes(source, [findings[0].fix])
    assert applied == 1
    return new


def comparable(args: dict) -> dict:
    """Arguments with functions (a lambda default is a new object in each version) as their code."""
    return {k: (v.__code__.co_code, v.__defaults__) if callable(v) else v for k, v in args.items()}


def build(source: str, arguments: str):
    namespace: dict = {}
    exec(compile(source, "data.py", "exec"), namespace)  # noqa: S102 - the case under test
    return eval(f"Data({arguments})", namespace), namespace  # noqa: S307


@pytest.mark.parametrize(("signature", "arguments"), SIGNATURES, ids=[f"sig{i}" for i in range(len(SIGNATURES))])
def test_fix_parses_and_keeps_the_dataset(signature, arguments):
    pytest.importorskip("keras")
    before = TEMPLATE.format(signature=signature)
    after = fixed(before)
    compile(after, "data.py", "exec")  # parses
    assert lint_source(after, "data.py", rules=[get_rule("SEQ302")]) == []  # nothing left to fix
    old, _ = build(before, arguments)
    new, namespace = build(after, arguments)
    new.args.pop("kwargs")
    assert comparable(new.args) == comparable(old.args)
    assert len(new) == len(old)
    parallel = eval(f"Data({arguments}, workers=2, use_multiprocessing=False)", namespace)  # noqa: S307
    assert parallel.workers == 2


def test_multi_line_signature_keeps_one_parameter_per_line():
    commented = fixed(TEMPLATE.format(signature=SIGNATURES[12][0]))
    assert "        size=(32, 32),  # height, width\n        **kwargs,\n    ):" in commented
    trailing = fixed(TEMPLATE.format(signature=SIGNATURES[13][0]))
    assert "        size=(32, 32),\n        **kwargs,\n    ):" in trailing
    # No trailing comma: the comment stays on its parameter's line, the new one gets a line of its own.
    last_line = fixed(TEMPLATE.format(signature=SIGNATURES[14][0]))
    assert ("def __init__(self, root,\n                 size=(32, 32),  # the crop\n"
            "                 **kwargs\n                 ):") in last_line


def test_existing_super_call_gets_kwargs_after_its_last_argument():
    call = "super(Data, self).__init__({args})"
    template = TEMPLATE.format(signature="self, root, **opts").replace(
        '"""Every argument is kept, to compare the two versions."""', call)
    # A worker argument forwarded explicitly (here in parentheses) is enough: nothing to report.
    forwarded = template.replace(call, call.format(args="max_queue_size=(10)"))
    assert lint_source(forwarded, "data.py", rules=[get_rule("SEQ302")]) == []
    for args, expected in [
        ("", "super(Data, self).__init__(**opts)"),
        ("*(())", "super(Data, self).__init__(*(()), **opts)"),
        ("name=('a', 'b')", "super(Data, self).__init__(name=('a', 'b'), **opts)"),
    ]:
        assert expected in fixed(template.replace(call, call.format(args=args)))
