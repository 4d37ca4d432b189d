"""What kind of value an expression holds: an ndarray of which rank and element kind, an int, a dict.

A fix that turns `for r in rows: parts.append(self.x[r])` into one `self.x[rows]` is the same only when
`self.x` is an ndarray (a DataFrame's `[r]` picks a column, a list cannot take an index array) of a known
rank, and `rows` is a 1-D array of integers (a boolean array would be a mask). Those facts follow from
how the values are made: the NumPy constructors of seqlint/data/arrays.toml, literals, `len`, `range`,
`enumerate` indices, dict comprehensions, subscripts, and the returns of module-level functions.

An attribute of `self` has the kind every assignment `self.a = ...` in the class agrees on; a local has
the kind of its last assignment before the use, when all its assignments are top-level statements of
the function (so no branch or loop can pick another). Like the rest of seqlint, this trusts that a class
owns its attributes: `gen.x = frame` from outside the class is not seen.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import libcst as cst

from seqlint.analysis.hotpath import assignment_targets, is_self_attr, names_in, walk
from seqlint.analysis.tables import load_data_table

_NUMERIC = ("int", "float", "number")


@dataclass(frozen=True)
class Kind:
    """A static fact about a value. `ndim` is the lowest and highest possible rank of an ndarray."""

    type: str  # "ndarray", "int", "float", "bool", "range", "dict", "tuple"
    ndim: tuple[int, int] = (0, 0)
    dtype: str = "any"  # an ndarray's exact dtype ("float32"), or only "number" (int or float) or "any"
    items: tuple[Kind | None, ...] = ()  # a tuple's elements; a dict's values as one entry

    @property
    def rank(self) -> int | None:
        """The exact rank of an ndarray, or None when it is not one or its rank is not pinned down."""
        return self.ndim[0] if self.type == "ndarray" and self.ndim[0] == self.ndim[1] else None


INT = Kind("int")
FLOAT = Kind("float")


def is_index_vector(kind: Kind | None) -> bool:
    """A 1-D array of integers or a range: iterating it and indexing with it pick the same rows."""
    if kind is None:
        return False
    if kind.type == "range":
        return True
    return kind.rank == 1 and dtype_class(kind.dtype) in ("int", "number")


def dtype_class(dtype: str) -> str:
    """"int", "float", "bool", "number" (some int or float) or "any"."""
    for prefix, name in (("int", "int"), ("uint", "int"), ("float", "float"), ("bool", "bool"), ("number", "number")):
        if dtype.startswith(prefix):
            return name
    return "any"


@dataclass(frozen=True)
class _Constructor:
    rank: object  # int, (lo, hi), "shape" or "data"
    dtype: str
    rank_keyword: str | None


@lru_cache(maxsize=None)
def _tables() -> tuple[dict[str, _Constructor], dict[str, str]]:
    table = load_data_table("arrays.toml")
    constructors = {
        name: _Constructor(tuple(e["rank"]) if isinstance(e["rank"], list) else e["rank"], e["dtype"], e.get("rank_keyword"))
        for name, e in table["constructors"].items()
    }
    return constructors, dict(table["dtypes"])


def _join(a: Kind | None, b: Kind | None) -> Kind | None:
    """What is true of a value that may be either `a` or `b`."""
    if a is None or b is None or a.type != b.type or len(a.items) != len(b.items):
        return None
    if a == b:
        return a
    if a.type == "ndarray":
        classes = {dtype_class(a.dtype), dtype_class(b.dtype)}
        dtype = a.dtype if a.dtype == b.dtype else "number" if classes <= set(_NUMERIC) else "any"
        return Kind("ndarray", (min(a.ndim[0], b.ndim[0]), max(a.ndim[1], b.ndim[1])), dtype)
    items = tuple(_join(x, y) for x, y in zip(a.items, b.items))
    return Kind(a.type, items=items)


class ValueKinds:
    """Kinds of expressions in one module's functions, for the methods of one Sequence class."""

    def __init__(self, ctx, seq=None):
        self.ctx, self.seq = ctx, seq
        self._attrs: dict[str, Kind | None] = {}
        self._returns: dict[str, Kind | None] = {}
        self._busy: set[str] = set()  # attributes and functions being resolved (recursion guard)
        self._replaced: dict[str, set[int]] = {}

    def of(self, expr: cst.BaseExpression, func: cst.FunctionDef | None, scope: dict[str, Kind] | None = None) -> Kind | None:
        """The kind of `expr` as evaluated inside `func` (at its position), or None when unknown."""
        scope = scope or {}
        if isinstance(expr, cst.Integer):
            return INT
        if isinstance(expr, cst.Float):
            return FLOAT
        if isinstance(expr, cst.Name):
            if expr.value in scope:
                return scope[expr.value]
            if expr.value in ("True", "False"):
                return Kind("bool")
            return self._local(expr, func)
        if isinstance(expr, cst.Attribute):
            attr = is_self_attr(expr)
            return self.attribute(attr) if attr is not None and self.seq is not None else None
        if isinstance(expr, cst.Tuple):
            return Kind("tuple", items=tuple(
                self.of(el.value, func, scope) if isinstance(el, cst.Element) else None for el in expr.elements
            ))
        if isinstance(expr, cst.BinaryOperation):
            return self._arithmetic(expr, func, scope)
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.Minus, cst.Plus)):
            operand = self.of(expr.expression, func, scope)
            return operand if operand in (INT, FLOAT) else None
        if isinstance(expr, cst.Subscript):
            return self._subscript(expr, func, scope)
        if isinstance(expr, cst.DictComp):
            inner = self._comprehension_scope(expr.for_in, func, scope)
            return Kind("dict", items=(self.of(expr.value, func, inner),))
        if isinstance(expr, cst.Call):
            return self._call(expr, func, scope)
        return None

    # -- names and attributes ---------------------------------------------------------------------------

    def attribute(self, name: str) -> Kind | None:
        """The kind all assignments of `self.<name>` in the class agree on."""
        if name in self._attrs:
            return self._attrs[name]
        key = f"self.{name}"
        if key in self._busy:
            return None
        self._busy.add(key)
        kind, seen = None, False
        replaced = self._replaced_in_init(name)
        for method in self.seq.methods.values():
            for node in walk(method.body):
                if isinstance(node, cst.AugAssign) and is_self_attr(node.target) == name:
                    kind, seen = None, True
                    break
                if not isinstance(node, cst.Assign) or id(node) in replaced:
                    continue
                for target in node.targets:
                    if not any(is_self_attr(n) == name for n in walk(target.target)):
                        continue
                    found = _assigned_kind(target.target, lambda t: is_self_attr(t) == name, self.of(node.value, method))
                    if found is False:
                        continue  # `self.x.y = ...`, `self.x[i] = ...`: it writes into the value, not the name
                    kind = found if not seen else _join(kind, found)
                    seen = True
            if seen and kind is None:
                break
        self._busy.discard(key)
        self._attrs[name] = kind if seen else None
        return self._attrs[name]

    def attribute_container(self, name: str) -> str | None:
        """"ndarray" when every assignment of `self.<name>` in the class makes a NumPy array, "list" when
        one makes a Python list or tuple, None when seqlint cannot tell (a constructor parameter)."""
        found = set()
        replaced = self._replaced_in_init(name)
        for method in self.seq.methods.values():
            for node in walk(method.body):
                if not isinstance(node, cst.Assign) or id(node) in replaced:
                    continue
                for target in node.targets:
                    value = assigned_part(target.target, node.value, name)
                    if value is not False:
                        found.add(self._container(value))
        if "list" in found:
            return "list"
        return "ndarray" if found == {"ndarray"} else None

    def _container(self, value) -> str | None:
        if value is None:
            return None
        if isinstance(value, (cst.List, cst.ListComp, cst.Tuple)):
            return "list"
        if isinstance(value, cst.IfExp):
            kinds = {self._container(value.body), self._container(value.orelse)}
            return "list" if "list" in kinds else kinds.pop() if len(kinds) == 1 else None
        if isinstance(value, cst.Call):
            qual = self.ctx.qualified_name(value.func) or ""
            if qual in ("list", "tuple", "sorted"):
                return "list"
            constructors, _ = _tables()
            if qual in constructors or qual in _ARRAY_FUNCTIONS:
                return "ndarray"
            if _one_array_from_function(self.ctx, value, qual):
                return "ndarray"
            if isinstance(value.func, cst.Attribute) and value.func.attr.value in _array_methods() \
                    and self._container(value.func.value) == "ndarray":
                return "ndarray"  # `np.load(path).astype(np.float32)`
        kind = self.of(value, None)
        return "ndarray" if kind is not None and kind.type == "ndarray" else None

    def _may_read(self, node, name: str, seen: set[str]) -> bool:
        """Whether code `node` runs, other than its own reads, may read `self.<name>`: a method of the class
        it calls that reads it (or calls on), `self` handed to other code, a method that is not the class's."""
        for sub in walk(node):
            if isinstance(sub, cst.Arg) and isinstance(sub.value, cst.Name) and sub.value.value == "self":
                return True
            if not (isinstance(sub, cst.Call) and isinstance(sub.func, cst.Attribute)):
                continue
            method = is_self_attr(sub.func)
            if method is None or method in seen:
                continue
            body = self.seq.methods.get(method)
            if body is None:
                return True  # inherited, or an attribute holding a callable: unknown code
            seen.add(method)
            if any(is_self_attr(n) == name for n in walk(body.body)) or self._may_read(body.body, name, seen):
                return True
        return False

    def _replaced_in_init(self, name: str) -> set[int]:
        """Assignments of `self.<name>` in `__init__` that a later one replaces before any other code
        can see them: both are statements of `__init__`'s own body, and nothing in between calls a method
        that may read it or hands `self` on. (`self.x = x`, then `self.x = np.asarray(self.x)`: only the
        second is what the other methods read.)"""
        if name in self._replaced:
            return self._replaced[name]
        init = self.seq.methods.get("__init__")
        if init is None:
            return set()
        replaced: set[int] = set()
        self._replaced[name] = replaced
        pending: list[int] = []
        for stmt in init.body.body:
            assigns = [small for small in getattr(stmt, "body", ()) if isinstance(small, cst.Assign)] \
                if isinstance(stmt, cst.SimpleStatementLine) else []
            sets_it = [a for a in assigns if any(is_self_attr(t.target) == name for t in a.targets)]
            if self._may_read(stmt, name, set()):
                pending = []  # a method called here may read the value set so far
            if sets_it:
                replaced.update(pending)
                pending = [id(a) for a in sets_it]
            elif _writes_attribute(stmt, name):
                pending = []  # written some other way (a tuple target, `+=`, in a branch): it may carry over
        return replaced

    def _local(self, name: cst.Name, func: cst.FunctionDef | None) -> Kind | None:
        """The kind of the last top-level assignment of a local before its use."""
        last = self.reaching_assignment(name, func)
        if last is None:
            return None
        value = self.of(last.value, func)
        for target in last.targets:
            found = _assigned_kind(target.target, lambda t: isinstance(t, cst.Name) and t.value == name.value, value)
            if found is not False:
                return found
        return None

    def reaching_assignment(self, name: cst.Name, func: cst.FunctionDef | None) -> cst.Assign | None:
        """The assignment that gave the local `name` its value where it is used, when that is certain:
        all assignments of the name are top-level statements of `func`, and this is the last one before."""
        if func is None:
            return None
        params = func.params
        if any(p.name.value == name.value for p in (*params.params, *params.kwonly_params, *params.posonly_params)):
            return None
        use_row = self.ctx.position(name)[0].row
        top_level = {id(line) for line in func.body.body}
        last = None
        for node in walk(func.body):
            if _binds(node, name.value):
                return None  # bound some other way: give up rather than reason about it
            if isinstance(node, cst.Assign) and any(_binds_target(t.target, name.value) for t in node.targets):
                line = self.ctx.parent(node)
                if id(line) not in top_level:
                    return None
                if self.ctx.position(node)[0].row < use_row:
                    last = node
        return last

    def _comprehension_scope(self, comp: cst.CompFor, func, scope) -> dict[str, Kind]:
        """Names a comprehension binds, with what is known of them (an enumerate index is an int)."""
        inner = dict(scope)
        while comp is not None:
            iterable = comp.iter
            qual = self.ctx.qualified_name(iterable.func) if isinstance(iterable, cst.Call) else None
            target = comp.target
            if qual == "enumerate" and isinstance(target, cst.Tuple) and len(target.elements) == 2:
                index, item = (el.value for el in target.elements)
                if isinstance(index, cst.Name):
                    inner[index.value] = INT
                for name in names_in(item):
                    inner.pop(name, None)
            elif qual == "range" and isinstance(target, cst.Name):
                inner[target.value] = INT
            else:
                for name in names_in(target):
                    inner.pop(name, None)
            comp = comp.inner_for_in
        return inner

    # -- expressions ------------------------------------------------------------------------------------

    def _arithmetic(self, expr: cst.BinaryOperation, func, scope) -> Kind | None:
        left, right = self.of(expr.left, func, scope), self.of(expr.right, func, scope)
        if left not in (INT, FLOAT) or right not in (INT, FLOAT):
            return None
        op = expr.operator
        if isinstance(op, cst.Divide):
            return FLOAT
        if isinstance(op, (cst.Add, cst.Subtract, cst.Multiply, cst.FloorDivide, cst.Modulo)):
            return INT if left == right == INT else FLOAT
        return None

    def _subscript(self, expr: cst.Subscript, func, scope) -> Kind | None:
        base = self.of(expr.value, func, scope)
        if base is None:
            return None
        if base.type == "dict" and len(expr.slice) == 1:
            return base.items[0]
        if base.type != "ndarray":
            return None
        consumed = dropped = added = 0
        for element in expr.slice:
            part = element.slice
            if isinstance(part, cst.Slice):
                consumed += 1
            elif isinstance(part.value, cst.Name) and part.value.value == "None":
                added += 1
            elif self.of(part.value, func, scope) == INT:
                consumed += 1
                dropped += 1
            else:
                return None  # an index array, a mask or an Ellipsis: the rank is another matter
        low, high = base.ndim
        if high < consumed:
            return None  # too many indices: the code raises here
        return replace(base, ndim=(max(low, consumed) - dropped + added, high - dropped + added))

    def _call(self, call: cst.Call, func, scope) -> Kind | None:
        qual = self.ctx.qualified_name(call.func)
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        if qual in ("len", "int"):
            return INT
        if qual == "float":
            return FLOAT
        if qual == "range":
            return Kind("range")  # range() takes integers only, or raises
        constructors, _ = _tables()
        if qual in constructors:
            return self._construct(constructors[qual], positional, keywords, func, scope)
        if isinstance(call.func, cst.Name) and qual == call.func.value:
            return self._returns_of(call.func.value)
        return None

    def _construct(self, spec: _Constructor, positional, keywords, func, scope) -> Kind | None:
        first = positional[0] if positional else keywords.get("object", keywords.get("shape"))
        data = self._data(first, func, scope) if spec.rank == "data" or spec.dtype == "data" else None
        if spec.rank == "shape":
            if first is None:
                return None
            shape = self.of(first, func, scope)
            if isinstance(first, (cst.Tuple, cst.List)):
                rank = (len(first.elements),) * 2
            elif shape == INT:
                rank = (1, 1)
            else:
                return None
        elif spec.rank == "data":
            if data is None:
                return None
            rank = data.ndim
        elif isinstance(spec.rank, int):
            rank = (spec.rank, spec.rank)
        else:
            rank = spec.rank
        if spec.rank_keyword in keywords:
            if not isinstance(keywords[spec.rank_keyword], cst.Integer):
                return None
            rank = (max(rank[0], int(keywords[spec.rank_keyword].value)), max(rank[1], int(keywords[spec.rank_keyword].value)))
        if "dtype" in keywords:
            dtype = self._dtype(keywords["dtype"])
        elif spec.dtype == "data":
            dtype = data.dtype if data is not None else "any"
        else:
            dtype = spec.dtype
        return Kind("ndarray", rank, dtype)

    def _data(self, expr, func, scope) -> Kind | None:
        """What np.array makes of its argument: the rank and element kind of nested lists or an array."""
        if expr is None:
            return None
        if isinstance(expr, (cst.List, cst.ListComp)):
            if isinstance(expr, cst.ListComp):
                # Its element kind says nothing of an empty result, which np.array makes float64.
                inner = self._comprehension_scope(expr.for_in, func, scope)
                item = self.of(expr.elt, func, inner)
                return Kind("ndarray", (1, 1), "any") if item in (INT, FLOAT, Kind("bool")) else None
            else:
                items = [self.of(el.value, func, scope) if isinstance(el, cst.Element) else None for el in expr.elements]
            if not items or any(item is None for item in items):
                return None
            if all(item in (INT, FLOAT, Kind("bool")) for item in items):
                kinds = {item.type for item in items}
                dtype = "float64" if "float" in kinds else "int64" if "int" in kinds else "bool"
                return Kind("ndarray", (1, 1), dtype)
            return None
        kind = self.of(expr, func, scope)
        return kind if kind is not None and kind.type == "ndarray" else None

    def _dtype(self, expr) -> str:
        _, dtypes = _tables()
        if isinstance(expr, cst.SimpleString):
            text = expr.evaluated_value if isinstance(expr.evaluated_value, str) else ""
            return text if text in dtypes.values() else "any"
        return dtypes.get(self.ctx.qualified_name(expr) or "", "any")

    def _returns_of(self, name: str) -> Kind | None:
        """The kind every `return` of the module-level function `name` agrees on."""
        if name in self._returns:
            return self._returns[name]
        if name in self._busy:
            return None
        defs = [s for s in self.ctx.module.body if isinstance(s, cst.FunctionDef) and s.name.value == name]
        if len(defs) != 1:
            return None
        function = defs[0]
        self._busy.add(name)
        kind, seen = None, False
        for node in walk(function.body):
            if isinstance(node, (cst.Yield, cst.FunctionDef, cst.Lambda)):
                kind, seen = None, True
                break
            if isinstance(node, cst.Return):
                found = self.of(node.value, function) if node.value is not None else None
                kind = found if not seen else _join(kind, found)
                seen = True
        self._busy.discard(name)
        self._returns[name] = kind
        return kind


def _one_array_from_function(ctx, call: cst.Call, qual: str | None) -> bool:
    """A call of arrays.toml's `array_results` that applies a function to arrays and returns what the
    function returns, stacked (seqkit.preprocess_once): one ndarray when the function is a lambda whose
    body computes one array, not a tuple or a dict of them."""
    spec = load_data_table("arrays.toml").get("array_results", {}).get(qual or "")
    if spec is None:
        return False
    keywords = {a.keyword.value for a in call.args if a.keyword is not None}
    if keywords & set(spec.get("other_results", ())):
        return False
    positional = [a.value for a in call.args if a.keyword is None and not a.star]
    fn = positional[spec["function"]] if len(positional) > spec["function"] else None
    if not isinstance(fn, cst.Lambda) or len(fn.params.params) != 1:
        return False
    body, param = fn.body, fn.params.params[0].name.value
    if isinstance(body, cst.Call) and isinstance(body.func, cst.Attribute) and body.func.attr.value in _array_methods():
        return param in names_in(body.func.value)
    if isinstance(body, cst.Call):
        called = ctx.qualified_name(body.func) or ""
        constructors, _ = _tables()
        return called in constructors or called in _ARRAY_FUNCTIONS
    return isinstance(body, (cst.BinaryOperation, cst.UnaryOperation)) and param in names_in(body)


@lru_cache(maxsize=None)
def _array_methods() -> frozenset[str]:
    return frozenset(load_data_table("arrays.toml")["methods"]["returning_arrays"])


def _writes_attribute(stmt, name: str) -> bool:
    return any(is_self_attr(n) == name for node in walk(stmt) for t in assignment_targets(node) for n in walk(t))


# NumPy functions that always return an ndarray (besides the constructors of arrays.toml).
_ARRAY_FUNCTIONS = frozenset({
    "numpy.load", "numpy.stack", "numpy.vstack", "numpy.hstack", "numpy.concatenate", "numpy.memmap",
    "numpy.asanyarray", "numpy.expand_dims", "numpy.squeeze", "numpy.transpose", "numpy.reshape",
    "numpy.float32", "numpy.uint8", "numpy.int64", "numpy.eye", "numpy.clip", "numpy.where",
    "numpy.zeros_like", "numpy.ones_like", "numpy.empty_like", "numpy.full_like", "numpy.frombuffer",
})


def assigned_part(target, value, name: str):
    """The expression `target = value` gives `self.<name>` (through tuple unpacking): None when the
    part cannot be told, False when the target does not bind it."""
    if is_self_attr(target) == name:
        return value
    if isinstance(target, (cst.Tuple, cst.List)):
        values = value.elements if isinstance(value, (cst.Tuple, cst.List)) else None
        for position, element in enumerate(target.elements):
            if isinstance(element, cst.StarredElement):
                if assigned_part(element.value, None, name) is not False:
                    return None
                continue
            part = values[position].value if values is not None and position < len(values) else None
            found = assigned_part(element.value, part, name)
            if found is not False:
                return found
    return False


def _assigned_kind(target, matches, value: Kind | None):
    """The kind `target` gives the matching name (through tuple unpacking), or False when it binds none."""
    if matches(target):
        return value
    if isinstance(target, (cst.Tuple, cst.List)):
        elements = target.elements
        for position, element in enumerate(elements):
            if isinstance(element, cst.StarredElement):
                if any(matches(n) for n in walk(element)):
                    return None
                continue
            item = value.items[position] if value is not None and value.type == "tuple" and len(value.items) == len(elements) else None
            found = _assigned_kind(element.value, matches, item)
            if found is not False:
                return found
    return False


def _binds_target(target, name: str) -> bool:
    if isinstance(target, cst.Name):
        return target.value == name
    if isinstance(target, (cst.Tuple, cst.List)):
        return any(_binds_target(el.value, name) for el in target.elements)
    if isinstance(target, cst.StarredElement):
        return _binds_target(target.value, name)
    return False


def _binds(node, name: str) -> bool:
    """`node` binds `name` other than by a plain assignment."""
    if isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor, cst.NamedExpr)):
        return _binds_target(node.target, name)
    if isinstance(node, cst.With):
        return any(item.asname is not None and _binds_target(item.asname.name, name) for item in node.items)
    return False
