"""The row-wise proof: does a function of one batch compute each output row from its input row alone?

When it does, and deterministically, applying it once to the whole dataset gives the same rows as
applying it to every batch: the fact SEQ101's safe fixes (preprocess_once, PreprocessedSequence) rest on.
The proof is conservative; anything it does not recognise makes it fail. What it knows about calls is
data, in seqlint/data/rowwise.toml.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import libcst as cst

from seqlint.analysis import effects
from seqlint.analysis.hotpath import is_self_attr, walk
from seqlint.analysis.tables import elementwise_arithmetic, elementwise_numpy, load_data_table
from seqlint.fixes import is_docstring

THRESHOLD_OPS = (cst.GreaterThan, cst.GreaterThanEqual, cst.LessThan, cst.LessThanEqual)


@dataclass(frozen=True)
class CallTable:
    reduction_methods: frozenset[str]
    reduction_functions: frozenset[str]
    axis_transforms: frozenset[str]
    like: dict[str, bool]
    one_hot: dict[str, str]
    fixed_width: dict[str, str]
    lookup_tables: frozenset[str]
    setting_tables: frozenset[str]
    casts: frozenset[str]
    constant_calls: frozenset[str]
    per_row_builtins: frozenset[str]
    per_row_methods: frozenset[str]


@lru_cache(maxsize=None)
def call_table() -> CallTable:
    data = load_data_table("rowwise.toml")
    return CallTable(
        reduction_methods=frozenset(data["reduction_methods"]),
        reduction_functions=frozenset(data["reduction_functions"]),
        axis_transforms=frozenset(data["axis_transforms"]),
        like=dict(data["like"]),
        one_hot=dict(data["one_hot"]),
        fixed_width=dict(data["fixed_width"]),
        lookup_tables=frozenset(data["lookup_tables"]),
        setting_tables=frozenset(data["setting_tables"]),
        casts=frozenset(data["casts"]),
        constant_calls=frozenset(data["constant"]["calls"]),
        per_row_builtins=frozenset(data["per_row"]["builtins"]),
        per_row_methods=frozenset(data["per_row"]["methods"]),
    )


ELEMENTWISE_OPS = (
    cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.FloorDivide, cst.Modulo, cst.Power,
    cst.BitAnd, cst.BitOr, cst.BitXor,
)


class Rows:
    """What is known of a value derived row by row from the batch: its rank relative to the batch's
    (`delta`, None when unknown), a lower bound of its rank, whether it is a fresh array (writing into
    it touches no user data) and whether every element has been written."""

    def __init__(self, delta, low, owned, filled=True):
        self.delta, self.low, self.owned, self.filled = delta, low, owned, filled


class RowWiseProof:
    """Proves that a straight-line function of one batch computes each output row from its input row
    alone, deterministically: then applying it to the whole array at once gives the same rows."""

    def __init__(self, ctx, param: str, const_attrs: set[str], batch_functions=(), helpers=None, depth: int = 0,
                 table_attrs: frozenset[str] = frozenset()):
        self.ctx = ctx
        self.env: dict[str, Rows] = {param: Rows(0, 1, owned=False)}
        self.fixed: set[str] = set()
        self.tables: set[str] = set()  # fixed names bound to an array made by a lookup_tables call
        self.table_attrs = table_attrs  # constant attributes the class only sets to such arrays
        self.const_attrs = const_attrs
        self.batch_functions = batch_functions
        # How to find the FunctionDef a call runs (a module function, a method of the class), so that a
        # helper applied to the rows is proven through its own body.
        self.helpers = helpers
        self.depth = depth
        # Settings that per-batch code may change through a method (`self.vocab.setdefault(...)`): a
        # per-row loop must not read them through methods, whatever their attribute's assignments say.
        self.changed_by_calls = changed_by_calls(batch_functions)

    def statements(self, body) -> bool:
        return all(self.statement(stmt) for stmt in body)

    def statement(self, stmt) -> bool:
        if isinstance(stmt, cst.For):
            return self.row_loop(stmt)
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            return False
        small = stmt.body[0]
        if isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name):
            # `x /= 255.` computes what `x = x / 255.` does, in the array x already holds
            operator = getattr(cst, type(small.operator).__name__.removesuffix("Assign"), None)
            if operator is None or small.target.value not in self.env:
                return False
            rows = self.rows(cst.BinaryOperation(left=small.target, operator=operator(), right=small.value))
            if rows is None:
                return False
            self.env[small.target.value] = rows
            return True
        if not isinstance(small, cst.Assign) or len(small.targets) != 1:
            return False
        target = small.targets[0].target
        if isinstance(target, cst.Name):
            rows = self.rows(small.value)
            self.fixed.discard(target.value)
            self.tables.discard(target.value)
            self.env.pop(target.value, None)
            if rows is not None:
                self.env[target.value] = rows
                return True
            if self.is_fixed(small.value):
                self.fixed.add(target.value)
                if self.is_table(small.value):
                    self.tables.add(target.value)
                return True
            return False
        if isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name) and in_place_target(
            target, target.value.value
        ):
            dest = self.env.get(target.value.value)
            if dest is None or not dest.owned:
                return False  # writing into the caller's batch would change the data itself
            rows = self.rows(small.value)
            if rows is None:
                if not self.is_fixed(small.value):
                    return False
            elif rows.delta is None or rows.delta != dest.delta:
                return False
            dest.filled = True
            return True
        if isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name):
            return self.column_update(target, small.value)
        return False

    def column_update(self, target, value) -> bool:
        """`m[:, 0] = (m[:, 0] - MEAN) / STD`: the view computed from itself and settings alone stays
        row-wise, whatever its shape."""
        dest = self.env.get(target.value.value)
        if dest is None or not dest.owned or not dest.filled or self.rows(target) is None:
            return False
        view = "__seqlint_view__"
        code = self.ctx.module.code_for_node(target)

        class _View(cst.CSTTransformer):
            def leave_Subscript(self, original, updated):
                return cst.Name(view) if cst.Module([]).code_for_node(original) == code else updated

        self.env[view] = Rows(0, 1, owned=False)
        try:
            rows = self.rows(value.visit(_View()))
        finally:
            del self.env[view]
        return rows is not None and rows.delta == 0

    def rows(self, expr) -> Rows | None:
        if isinstance(expr, cst.Name):
            rows = self.env.get(expr.value)
            return rows if rows is not None and rows.filled else None
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.Minus, cst.Plus)):
            inner = self.rows(expr.expression)
            return Rows(inner.delta, inner.low, True) if inner else None
        if isinstance(expr, cst.BinaryOperation):
            left, right = self.rows(expr.left), self.rows(expr.right)
            if isinstance(expr.operator, cst.MatrixMultiply):
                if left is not None and right is None and left.low >= 2 and self.is_fixed(expr.right):
                    return Rows(None, left.low - 1, True)
                return None
            if isinstance(expr.operator, ELEMENTWISE_OPS):
                return self.combine([expr.left, expr.right])
            return None
        if isinstance(expr, cst.Comparison) and len(expr.comparisons) == 1 and isinstance(
            expr.comparisons[0].operator, THRESHOLD_OPS + (cst.Equal, cst.NotEqual)
        ):
            return self.combine([expr.left, expr.comparisons[0].comparator])
        if isinstance(expr, cst.Subscript):
            return self.subscript(expr)
        if isinstance(expr, cst.Call):
            return self.call(expr)
        return None

    def combine(self, operands) -> Rows | None:
        """Element-wise over operands: rows line up only when every row-wise operand has the same rank."""
        found = []
        for operand in operands:
            rows = self.rows(operand)
            if rows is None and not self.is_fixed(operand):
                return None
            if rows is not None:
                found.append(rows)
        if not found:
            return None
        if len(found) > 1 and (found[0].delta is None or any(r.delta != found[0].delta for r in found)):
            return None
        return Rows(found[0].delta, max(r.low for r in found), True)

    def subscript(self, expr) -> Rows | None:
        base = self.rows(expr.value)
        if base is None and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index) and (
            (isinstance(expr.value, cst.Name) and expr.value.value in self.tables)
            or (is_self_attr(expr.value) in self.table_attrs and is_self_attr(expr.value) in self.const_attrs)
            or (self.is_table(expr.value) and self.is_fixed(expr.value))
        ):
            # `np.eye(k)[labels]`: a lookup in a fixed array, one result per element of the rows
            index = self.rows(expr.slice[0].slice.value)
            return None if index is None else Rows(None, index.low, True)
        if base is None or not expr.slice:
            return None
        first, rest = expr.slice[0].slice, [e.slice for e in expr.slice[1:]]
        newaxes = sum(1 for e in rest if isinstance(e, cst.Index) and self.is_newaxis(e.value))
        if isinstance(first, cst.Index) and isinstance(first.value, cst.Ellipsis):
            if newaxes != len(rest):
                return None  # `x[..., 0]` of a 1-D batch would pick a row
            return Rows(None if base.delta is None else base.delta + newaxes, base.low + newaxes, False)
        if not (isinstance(first, cst.Slice) and first.lower is None and first.upper is None and first.step is None):
            return None
        kept = 1 + newaxes
        exact = True
        for element in rest:
            if isinstance(element, cst.Slice):
                if not all(p is None or self.is_fixed(p) for p in (element.lower, element.upper, element.step)):
                    return None
                kept += 1
            elif isinstance(element, cst.Index) and self.is_newaxis(element.value):
                continue
            elif isinstance(element, cst.Index) and self.is_fixed(element.value):
                exact = False
            else:
                return None
        delta = base.delta + newaxes if exact and base.delta is not None else None
        return Rows(delta, kept, False)

    def call(self, expr) -> Rows | None:
        ctx, table = self.ctx, call_table()
        args = [a for a in expr.args if a.keyword is None]
        keywords = {a.keyword.value: a.value for a in expr.args if a.keyword is not None}
        if any(a.star for a in expr.args):
            return None
        if isinstance(expr.func, cst.Attribute) and (receiver := self.rows(expr.func.value)) is not None:
            method = expr.func.attr.value
            if method == "copy" and not expr.args:
                return Rows(receiver.delta, receiver.low, True)
            if method == "astype" and all(self.is_fixed(a.value) for a in expr.args):
                return Rows(receiver.delta, receiver.low, True)
            if method in table.reduction_methods and not args:
                return self.reduction(receiver, keywords)
            if method == "transpose" and len(args) >= 2 and not keywords and int_literal(args[0].value) == 0 \
                    and all(int_literal(a.value) is not None for a in args):
                return Rows(receiver.delta, max(receiver.low, len(args) - 1), False)  # the batch axis stays first
            if method == "reshape" and len(args) >= 2 and not keywords and self.counts_rows(args[0].value, expr.func.value):
                if all(self.is_fixed(a.value) for a in args[1:]):
                    return Rows(None, len(args), False)  # a view: writing into it writes the caller's batch
            shape = [e.value for e in args[0].value.elements] if method == "reshape" and len(args) == 1 \
                and isinstance(args[0].value, (cst.Tuple, cst.List)) else [a.value for a in args]
            if method == "reshape" and len(shape) >= 2 and not keywords and _minus_one(shape[0]) \
                    and all(self.is_fixed(d) for d in shape[1:]):
                # `x.reshape(-1, 28, 28, 1)`: each row regrouped alone when the count of rows stays,
                # which preprocess_once checks on every chunk (it refuses any other count)
                return Rows(None, len(shape), False)
            return None
        if self.helpers is not None and (helper := self.helpers(expr.func)) is not None:
            return self.helper_rows(helper, expr)
        qual = ctx.qualified_name(expr.func)
        if qual in ("numpy.copy", "numpy.array") and len(args) == 1 and (source := self.rows(args[0].value)):
            if set(keywords) <= {"dtype"} and all(self.is_fixed(v) for v in keywords.values()):
                return Rows(source.delta, source.low, True)  # a fresh copy of the rows (cast, maybe)
            return None
        if qual in ("numpy.expand_dims", "numpy.squeeze") and args and (source := self.rows(args[0].value)):
            return self.axis_change(qual, source, args[1:], keywords)
        if qual == "numpy.transpose" and len(args) == 2 and (source := self.rows(args[0].value)) and not keywords:
            axes = args[1].value
            if isinstance(axes, (cst.Tuple, cst.List)) and axes.elements and \
                    int_literal(axes.elements[0].value) == 0 and all(int_literal(e.value) is not None for e in axes.elements):
                return Rows(source.delta, max(source.low, len(axes.elements) - 1), True)  # the batch axis stays first
            return None
        if qual in ("numpy.concatenate", "numpy.stack") and len(args) == 1 and isinstance(args[0].value, (cst.List, cst.Tuple)):
            return self.joined(qual, args[0].value, keywords)
        if qual in table.like and len(args) == 1 and (like := self.rows(args[0].value)) is not None:
            if set(keywords) <= {"dtype"} and all(self.is_fixed(v) for v in keywords.values()):
                return Rows(like.delta, like.low, True, filled=table.like[qual])
            return None
        if qual in ("numpy.empty", "numpy.zeros", "numpy.ones", "numpy.full") and args:
            fills = [a.value for a in args[1:]] + [v for k, v in keywords.items() if k == "fill_value"]
            if len(fills) != (qual == "numpy.full") or not all(self.is_fixed(v) for v in fills):
                return None
            if not (set(keywords) <= {"dtype", "fill_value"} and self.is_fixed(keywords.get("dtype", cst.Name("None")))):
                return None
            shape, filled = args[0].value, qual != "numpy.empty"
            if isinstance(shape, cst.Attribute) and shape.attr.value == "shape" and (like := self.rows(shape.value)):
                return Rows(like.delta, like.low, True, filled=filled)
            if isinstance(shape, cst.Tuple) and shape.elements and all(isinstance(e, cst.Element) for e in shape.elements):
                first, *rest = (e.value for e in shape.elements)
                if self.counts_rows_of_any(first) and all(self.is_fixed(e) for e in rest):
                    return Rows(None, len(shape.elements), True, filled=filled)
            return None
        if qual in table.reduction_functions and args and (receiver := self.rows(args[0].value)) is not None:
            if all(self.is_fixed(a.value) for a in args[1:]):
                return self.reduction(receiver, keywords)
            return None
        if qual in table.axis_transforms and len(args) == 1 and (signal := self.rows(args[0].value)) is not None:
            if set(keywords) <= {"axis", "n"} and all(self.is_fixed(v) for v in keywords.values()):
                axis = keywords.get("axis")
                number = -1 if axis is None else int_literal(axis)
                if number is not None and (number >= 1 or (number < 0 and signal.low >= 1 - number)):
                    return Rows(signal.delta, signal.low, True)
            return None
        if qual in table.casts and args and (source := self.rows(args[0].value)) is not None:
            settings = [a.value for a in args[1:]] + list(keywords.values())
            if len(settings) == 1 and set(keywords) <= {"dtype"} and self.is_fixed(settings[0]):
                return Rows(source.delta, source.low, True)
            return None
        if qual in table.one_hot and (len(args) == 2 or (len(args) == 1 and table.one_hot[qual] in keywords)):
            labels = self.rows(args[0].value)
            count = table.one_hot[qual]
            classes = args[1].value if len(args) == 2 else keywords.get(count)
            if labels is not None and set(keywords) <= {count} and classes is not None and self.is_fixed(classes):
                return Rows(None, 2, True)  # the class count fixed: one more axis, the same for every batch
            return None
        if qual in table.fixed_width:
            width = keywords.get(table.fixed_width[qual])
            rows = self.rows(args[0].value) if len(args) == 1 else None
            if rows is not None and width is not None and all(self.is_fixed(v) for v in keywords.values()):
                return Rows(None, 2, True)  # each row padded or cut to the width alone
            return None
        if (qual in elementwise_arithmetic() or qual in elementwise_numpy()) and not keywords:
            return self.combine([a.value for a in args])  # ufuncs, tests and np.where: element by element
        return None

    def helper_rows(self, helper: cst.FunctionDef, call: cst.Call) -> Rows | None:
        """A helper of the module applied to the rows: its body, proven with its one row-wise argument as
        the batch and its other arguments as settings (they must be settings here)."""
        if self.depth > 4 or any(a.star for a in call.args) or not isinstance(helper.body, cst.IndentedBlock):
            return None
        params = list(helper.params.params)
        if params and params[0].name.value == "self" and isinstance(call.func, cst.Attribute):
            params = params[1:]
        if helper.params.kwonly_params or helper.params.posonly_params or not isinstance(
            helper.params.star_arg, cst.MaybeSentinel
        ) or helper.params.star_kwarg is not None:
            return None
        given: dict[str, cst.BaseExpression] = {}
        for position, arg in enumerate(call.args):
            if arg.keyword is None:
                if position >= len(params):
                    return None
                given[params[position].name.value] = arg.value
            else:
                given[arg.keyword.value] = arg.value
        data = [name for name, value in given.items() if self.rows(value) is not None]
        if len(data) != 1 or any(not self.is_fixed(v) for n, v in given.items() if n not in data):
            return None
        if any(p.name.value not in given and p.default is None for p in params):
            return None
        outer = self.rows(given[data[0]])
        body = list(helper.body.body)
        if body and is_docstring(body[0]):
            body = body[1:]
        if not body or not (isinstance(body[-1], cst.SimpleStatementLine) and len(body[-1].body) == 1
                            and isinstance(body[-1].body[0], cst.Return) and body[-1].body[0].value is not None):
            return None
        inner = RowWiseProof(self.ctx, data[0], self.const_attrs, self.batch_functions, self.helpers, self.depth + 1,
                             self.table_attrs)
        inner.fixed.update(p.name.value for p in params if p.name.value != data[0])
        body = [*vectorised_body(body[:-1], data[0]), body[-1]]
        if not inner.statements(body[:-1]):
            return None
        result = inner.rows(body[-1].body[0].value)
        if result is None or not result.filled:
            return None
        delta = None if result.delta is None or outer.delta is None else result.delta + outer.delta
        return Rows(delta, max(result.low, 1), True)

    def axis_change(self, qual: str, source: Rows, rest, keywords) -> Rows | None:
        """`np.expand_dims(b, -1)`, `np.squeeze(b, axis=2)`: an axis added or removed after the first."""
        axis = rest[0].value if rest else keywords.get("axis")
        if axis is None or (set(keywords) - {"axis"}) or len(rest) > 1:
            return None
        number = int_literal(axis)
        if number is None:
            return None
        change = 1 if qual == "numpy.expand_dims" else -1
        low = source.low + change if change > 0 else source.low
        # A negative axis counts from the end: it is past the batch axis when the rank allows.
        rank_after_insert = source.low + 1 if change > 0 else source.low  # the rank a negative axis counts in
        if number == 0 or (number < 0 and rank_after_insert + number < 1):
            return None
        delta = None if source.delta is None else source.delta + change
        return Rows(delta, max(low, 1), False)

    def joined(self, qual: str, pieces, keywords) -> Rows | None:
        """`np.concatenate([b[:, :1], b[:, 1:] - b[:, :-1]], axis=1)`: pieces of the same rows side by
        side (or stacked on a new axis after the first) keep one row per row."""
        if set(keywords) != {"axis"} or (axis := int_literal(keywords["axis"])) is None or axis < 1:
            return None
        found = []
        for element in pieces.elements:
            if not isinstance(element, cst.Element):
                return None
            rows = self.rows(element.value)
            if rows is None or rows.delta is None:
                return None
            found.append(rows)
        if not found or any(r.delta != found[0].delta for r in found):
            return None
        extra = 1 if qual == "numpy.stack" else 0
        if axis > min(r.low for r in found) - 1 + extra:
            return None  # an axis the pieces may not have
        return Rows(found[0].delta + extra, min(r.low for r in found) + extra, True)

    def counts_rows_of_any(self, expr) -> bool:
        """`len(b)` or `b.shape[0]` for any value derived row by row from the batch."""
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "len" and len(expr.args) == 1:
            array = expr.args[0].value
        elif isinstance(expr, cst.Subscript) and isinstance(expr.value, cst.Attribute):
            array = expr.value.value
        else:
            return False
        return isinstance(array, cst.Name) and self.rows(array) is not None and self.counts_rows(expr, array)

    def row_loop(self, loop: cst.For) -> bool:
        """`for i, text in enumerate(texts):` (or `for i in range(len(texts))`) whose body computes from
        `text` / `texts[i]` and settings alone, through per-row calls, and writes only row `i` of fresh
        arrays: each row out still comes from its row in, one at a time."""
        header = row_loop_header(loop)
        if header is None or not isinstance(loop.body, cst.IndentedBlock):
            return False
        index, item, source = header
        if source not in self.env or not self.env[source].filled:
            return False
        scope = _RowScope(self, index, {item} if item else set())
        if index == item or not all(scope.may_bind(name) for name in (index, item) if name):
            return False
        for stmt in loop.body.body:
            if not (
                isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Assign) and len(stmt.body[0].targets) == 1
            ):
                return False
            target, value = stmt.body[0].targets[0].target, stmt.body[0].value
            if not scope.pure(value):
                return False
            if isinstance(target, cst.Name):
                if target.value == index or not scope.may_bind(target.value):
                    return False
                scope.local.add(target.value)
            elif not scope.writes_own_row(target):
                return False
        return True  # the loop's names stay out of env and fixed: code after the loop cannot use them

    def counts_rows(self, expr, array) -> bool:
        """`len(b)` or `b.shape[0]` for the array being reshaped: the row count stays first."""
        if not isinstance(array, cst.Name):
            return False
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "len" and len(expr.args) == 1:
            inner = expr.args[0].value
            return isinstance(inner, cst.Name) and inner.value == array.value
        if isinstance(expr, cst.Subscript) and isinstance(expr.value, cst.Attribute) and expr.value.attr.value == "shape":
            inner = expr.value.value
            return (
                isinstance(inner, cst.Name) and inner.value == array.value and len(expr.slice) == 1
                and isinstance(expr.slice[0].slice, cst.Index) and int_literal(expr.slice[0].slice.value) == 0
            )
        return False

    def reduction(self, receiver: Rows, keywords) -> Rows | None:
        """A reduction over axes other than the first keeps one result per row."""
        axis = keywords.get("axis")
        axes = axis.elements if isinstance(axis, cst.Tuple) else [axis] if axis is not None else None
        if not axes:
            return None
        numbers = [e.value if isinstance(e, cst.Element) else e for e in axes]
        if not all(isinstance(n, cst.Integer) and int(n.value) >= 1 for n in numbers):
            return None
        if set(keywords) - {"axis", "keepdims"}:
            return None
        keep = keywords.get("keepdims")
        if keep is None or (isinstance(keep, cst.Name) and keep.value == "False"):
            delta = None if receiver.delta is None else receiver.delta - len(numbers)
            return Rows(delta, 1, True)
        if isinstance(keep, cst.Name) and keep.value == "True":
            return Rows(receiver.delta, receiver.low, True)
        return None

    def is_table(self, expr) -> bool:
        return isinstance(expr, cst.Call) and self.ctx.qualified_name(expr.func) in call_table().lookup_tables

    def is_newaxis(self, expr) -> bool:
        return (isinstance(expr, cst.Name) and expr.value == "None") or self.ctx.qualified_name(expr) == "numpy.newaxis"

    def is_fixed(self, expr) -> bool:
        """The same value for every batch and for the whole array: literals, settings, and per-row shapes."""
        ctx = self.ctx
        if isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString)):
            return True
        if isinstance(expr, cst.Name):
            return expr.value in self.fixed or expr.value in ("True", "False", "None") or (
                expr.value not in self.env and is_module_name(ctx, expr.value)
            )
        if isinstance(expr, cst.UnaryOperation):
            return self.is_fixed(expr.expression)
        if isinstance(expr, cst.BinaryOperation):
            return self.is_fixed(expr.left) and self.is_fixed(expr.right)
        if isinstance(expr, (cst.Tuple, cst.List)):
            return all(isinstance(e, cst.Element) and self.is_fixed(e.value) for e in expr.elements)
        if isinstance(expr, cst.Attribute):
            if isinstance(expr.value, cst.Name) and expr.value.value == "self":
                return expr.attr.value in self.const_attrs
            if expr.attr.value in ("dtype", "ndim") and self.rows(expr.value) is not None:
                return True
            root = expr
            while isinstance(root, cst.Attribute):
                root = root.value
            return isinstance(root, cst.Name) and root.value in ctx.imports
        if isinstance(expr, cst.Subscript):
            value = expr.value
            if (
                isinstance(value, cst.Attribute) and value.attr.value == "shape"
                and self.rows(value.value) is not None and len(expr.slice) == 1
            ):
                index = expr.slice[0].slice
                return isinstance(index, cst.Index) and isinstance(index.value, cst.Integer) and int(index.value.value) >= 1
            return self.is_fixed(value) and all(
                isinstance(e.slice, cst.Index) and self.is_fixed(e.slice.value) for e in expr.slice
            )
        if isinstance(expr, cst.Call):
            qual = ctx.qualified_name(expr.func)
            known = qual in call_table().constant_calls or qual in elementwise_arithmetic() or effects.is_pure_numpy(qual)
            return known and all(not a.star and self.is_fixed(a.value) for a in expr.args)
        return False


class _RowScope:
    """The names of one iteration of a per-row loop, and what its statements may do."""

    def __init__(self, proof: RowWiseProof, index: str, local: set[str]):
        self.proof, self.index, self.local = proof, index, local

    def may_bind(self, name: str) -> bool:
        """A loop-local name must not hide a value of the function or module: it would carry one row's
        value to the code after the loop, or change what a setting means."""
        proof = self.proof
        return name not in proof.env and name not in proof.fixed and not is_module_name(proof.ctx, name)

    def row(self, expr) -> bool:
        """`texts[i]`: the loop's row of a value derived row by row from the batch."""
        return (
            isinstance(expr, cst.Subscript) and isinstance(expr.value, cst.Name)
            and self.proof.rows(expr.value) is not None and len(expr.slice) == 1
            and isinstance(expr.slice[0].slice, cst.Index) and isinstance(expr.slice[0].slice.value, cst.Name)
            and expr.slice[0].slice.value.value == self.index
        )

    def writes_own_row(self, target) -> bool:
        """`out[i] = ...` or `out[i, :n] = ...` into a fresh array: row i and nothing else."""
        if not (isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name)):
            return False
        dest = self.proof.env.get(target.value.value)
        first, *rest = [e.slice for e in target.slice]
        return (
            dest is not None and dest.owned
            and isinstance(first, cst.Index) and isinstance(first.value, cst.Name) and first.value.value == self.index
            and all(self.pure_slice(e) for e in rest)
        )

    def pure_slice(self, element) -> bool:
        if isinstance(element, cst.Index):
            return element.star is None and self.pure(element.value)
        return all(p is None or self.pure(p) for p in (element.lower, element.upper, element.step))

    def pure(self, expr, bound: frozenset[str] = frozenset()) -> bool:
        """Computed from this row and settings alone, deterministically, changing nothing."""
        pure = lambda e: self.pure(e, bound)  # noqa: E731
        proof, table = self.proof, call_table()
        if isinstance(expr, cst.Name):
            return expr.value in self.local or expr.value in bound or (
                expr.value != self.index and proof.is_fixed(expr)
            )
        if isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString)):
            return True
        if isinstance(expr, cst.Subscript):
            return self.row(expr) or pure(expr.value) and all(self.pure_slice(e.slice) for e in expr.slice)
        if isinstance(expr, cst.Attribute):
            return proof.is_fixed(expr)
        if isinstance(expr, cst.UnaryOperation):
            return pure(expr.expression)
        if isinstance(expr, (cst.BinaryOperation, cst.BooleanOperation)):
            return pure(expr.left) and pure(expr.right)
        if isinstance(expr, cst.Comparison):
            return pure(expr.left) and all(pure(c.comparator) for c in expr.comparisons)
        if isinstance(expr, cst.IfExp):
            return pure(expr.test) and pure(expr.body) and pure(expr.orelse)
        if isinstance(expr, (cst.Tuple, cst.List)):
            return all(isinstance(e, cst.Element) and pure(e.value) for e in expr.elements)
        if isinstance(expr, (cst.ListComp, cst.GeneratorExp, cst.SetComp)):
            names = set(bound)
            clause = expr.for_in
            while clause is not None:
                if clause.asynchronous is not None or not self.pure(clause.iter, frozenset(names)):
                    return False
                targets = list(walk(clause.target))
                if not all(isinstance(t, (cst.Name, cst.Tuple, cst.Element)) for t in targets):
                    return False
                names |= {t.value for t in targets if isinstance(t, cst.Name)}
                if not all(self.pure(c.test, frozenset(names)) for c in clause.ifs):
                    return False
                clause = clause.inner_for_in
            return self.pure(expr.elt, frozenset(names))
        if isinstance(expr, cst.Call):
            if any(a.star or (a.keyword is not None and a.keyword.value in ("out", "where")) for a in expr.args):
                return False
            if not all(pure(a.value) for a in expr.args):
                return False
            func = expr.func
            if isinstance(func, cst.Name) and func.value in table.per_row_builtins:
                shadows = {self.index} | self.local | bound | set(proof.env) | proof.fixed
                return func.value not in shadows and not module_binds(proof.ctx, func.value)
            if isinstance(func, cst.Attribute) and func.attr.value in table.per_row_methods:
                receiver = func.value
                if is_self_attr(receiver) in proof.changed_by_calls:
                    return False
                return pure(receiver)
            if isinstance(func, cst.Attribute) and func.attr.value in table.reduction_methods:
                return pure(func.value)  # `row.mean()`: a statistic of this row alone
            qual = proof.ctx.qualified_name(func)
            return qual in table.constant_calls or qual in elementwise_arithmetic() or effects.is_pure_numpy(qual) \
                or qual in table.reduction_functions
        return False


def row_loop_header(loop: cst.For) -> tuple[str, str | None, str] | None:
    """(index, item, source) for `for index, item in enumerate(source)` and (index, None, source) for
    `for index in range(len(source))` or `range(source.shape[0])`; None for any other loop."""
    if loop.orelse is not None or loop.asynchronous is not None:
        return None
    it = loop.iter
    if not (isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and len(it.args) == 1 and not it.args[0].keyword):
        return None
    bound = it.args[0].value
    if it.func.value == "enumerate" and isinstance(loop.target, cst.Tuple) and len(loop.target.elements) == 2:
        index, item = (e.value for e in loop.target.elements)
        if isinstance(index, cst.Name) and isinstance(item, cst.Name) and isinstance(bound, cst.Name):
            return index.value, item.value, bound.value
        return None
    if it.func.value != "range" or not isinstance(loop.target, cst.Name):
        return None
    if isinstance(bound, cst.Call) and isinstance(bound.func, cst.Name) and bound.func.value == "len" and len(bound.args) == 1:
        source = bound.args[0].value
    elif isinstance(bound, cst.Subscript) and isinstance(bound.value, cst.Attribute) and bound.value.attr.value == "shape":
        first = bound.slice[0].slice if len(bound.slice) == 1 else None
        if not (isinstance(first, cst.Index) and int_literal(first.value) == 0):
            return None
        source = bound.value.value
    else:
        return None
    return (loop.target.value, None, source.value) if isinstance(source, cst.Name) else None


def changed_by_calls(functions) -> set[str]:
    """`self` attributes per-batch code calls a method on that is not a known per-row (harmless) one."""
    found = set()
    harmless = call_table().per_row_methods
    for func in functions:
        for node in walk(func.body):
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value not in harmless:
                if (attr := is_self_attr(node.func.value)) is not None:
                    found.add(attr)
    return found


def vectorised_body(body: list, rows: str) -> list:
    """Statements of a function of the rows `rows`, with each loop over them that vectorised_loop
    recognises replaced by its whole-array form (what the row-wise proofs then read)."""
    assigned = {rows}
    result = list(body)
    for position, stmt in enumerate(result):
        loop = vectorised_loop(stmt, assigned)
        if loop is not None:
            result[position] = loop
        for node in walk(result[position]):
            if isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name):
                assigned.add(node.target.value)
    return result


def vectorised_loop(stmt, env_names: set[str]):
    """`for i in range(len(b)): t[i] = E(b[i])`, E element-wise: the same as `t[:] = E(b)`. Returns
    the replacement statement, or None."""
    header = row_loop_header(stmt) if isinstance(stmt, cst.For) else None
    if header is None or header[2] not in env_names:
        return None
    loop_var, element, source = header
    body = stmt.body
    if not (isinstance(body, cst.IndentedBlock) and len(body.body) == 1 and isinstance(body.body[0], cst.SimpleStatementLine)):
        return None
    line = body.body[0]
    if len(line.body) != 1 or not isinstance(line.body[0], cst.Assign) or len(line.body[0].targets) != 1:
        return None
    assign = line.body[0]

    def row_of(node):
        if (
            isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name) and node.value.value in env_names
            and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index)
            and isinstance(node.slice[0].slice.value, cst.Name) and node.slice[0].slice.value.value == loop_var
        ):
            return node.value
        return None

    target = row_of(assign.targets[0].target)
    if target is None:
        return None

    class _Unrow(cst.CSTTransformer):
        def leave_Subscript(self, original, updated):
            name = row_of(original)
            return name.with_changes(lpar=updated.lpar, rpar=updated.rpar) if name is not None else updated

        def leave_Name(self, original, updated):
            return updated.with_changes(value=source) if original.value == element else updated

        def leave_Attribute(self, original, updated):
            return updated.with_changes(attr=original.attr)

    value = assign.value.visit(_Unrow())
    if any(isinstance(n, cst.Name) and n.value == loop_var for n in walk(value)):
        return None
    for node in walk(value):
        if isinstance(node, (cst.Subscript, cst.Lambda)) or (
            isinstance(node, cst.Attribute) and attribute_root(node) in env_names | {None}
        ):
            return None  # per-row methods and indexing mean something else on the whole array
    new = cst.parse_statement(f"{target.value}[:] = x\n").with_changes(leading_lines=stmt.leading_lines)
    small = new.body[0].with_changes(value=value)
    return new.with_changes(body=[small], trailing_whitespace=line.trailing_whitespace)


def in_place_target(target, name: str) -> bool:
    if not (isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name) and target.value.value == name):
        return False
    if len(target.slice) != 1:
        return False
    index = target.slice[0].slice
    if isinstance(index, cst.Slice):
        return index.lower is None and index.upper is None and index.step is None
    return isinstance(index, cst.Index) and isinstance(index.value, cst.Ellipsis)


def is_module_name(ctx, name: str) -> bool:
    """A name the module (or the builtins a setting is usually built with) gives one value for the run."""
    return name in ("float", "int", "abs", "min", "max", "round") or module_binds(ctx, name)


def module_binds(ctx, name: str) -> bool:
    """`name` is imported, assigned, or defined at module level."""
    return name in ctx.imports or name in _module_names(ctx)


def _module_names(ctx) -> frozenset[str]:
    """The names the module's top level defines or assigns, collected once per module."""
    cached = ctx.__dict__.get("_module_level_names")
    if cached is None:
        names = set()
        for stmt in ctx.module.body:
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                names.add(stmt.name.value)
            elif isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Assign):
                        names |= {n.value for t in small.targets for n in walk(t.target) if isinstance(n, cst.Name)}
        cached = ctx.__dict__["_module_level_names"] = frozenset(names)
    return cached


def attribute_root(node) -> str | None:
    """`np` for `np.log1p`, `self` for `self.mu`; None when the chain starts elsewhere."""
    while isinstance(node, cst.Attribute):
        node = node.value
    return node.value if isinstance(node, cst.Name) else None


def _minus_one(expr) -> bool:
    return isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus) and int_literal(expr.expression) == 1


def int_literal(expr) -> int | None:
    if isinstance(expr, cst.Integer):
        return int(expr.value)
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus) and isinstance(expr.expression, cst.Integer):
        return -int(expr.expression.value)
    return None
