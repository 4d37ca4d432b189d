"""The nodes of the batch data-flow graph: one `Value` per evaluation of an expression.

A value records how it was made (its `op` and the values it was made from, `ins`) and, once the graph
is complete, what it is: sample data or not, which sample sources (`origins`) it comes from, whether a
random draw or anything that changes between batches reaches it. Those facts are computed by one
fixpoint over the graph (`compute_facts`), because loops make it cyclic; see batchflow.py for how the
graph is built and queried.
"""

from __future__ import annotations

from enum import Enum

import libcst as cst


class Op(str, Enum):
    CONST = "const"          # literal, setting, module name, a dataset attribute as a whole
    INDEX = "index"          # the batch index Keras passes to __getitem__
    STATE = "state"          # an attribute changed per batch or epoch (self.indexes)
    RANDOM = "random"        # a random draw
    SUBSCRIPT = "subscript"  # base[index]: picks rows of a dataset (an origin), of data, or a lookup
    ATTRIBUTE = "attribute"  # value.name
    CALL = "call"            # a call of code seqlint does not interpret (NumPy, cv2, a method of data)
    READ = "read"            # a file read (np.load, cv2.imread, ...)
    HELPER = "helper"        # a method or function of the module, interpreted in place: ins = (return,)
    PARAM = "param"          # a helper's parameter: ins = the arguments of the call
    OPERATOR = "operator"    # binary, unary, comparison and boolean operators
    PACK = "pack"            # tuple, list, dict, set, comprehension: a container of values
    ITEM = "item"            # one element taken out of a container or iterable
    JOIN = "join"            # control flow meets (if/else, loop head): ins = the alternatives
    WRITE = "write"          # a container or array after `c[i] = v`, `c.append(v)`: ins = (before, v)
    LOOP = "loop"            # arrays after a loop computing them row by row: ins = what the loop reads
    BOOK = "book"            # a size, index, path or text computed from other values
    OPAQUE = "opaque"        # anything else: the result depends on its inputs in unknown ways


class Value:
    """One evaluation of an expression (or a loop, or a join) in per-batch code."""

    __slots__ = (
        "op", "node", "func", "ins", "test", "attr", "items", "element", "callee", "qual", "flags",
        "scalar", "base", "index", "args", "site", "guards", "data", "random", "varies", "origins", "origin", "users", "_hash",
    )

    def __init__(self, op: Op, node: cst.CSTNode | None, func: cst.FunctionDef | None, ins=(), **extra):
        self.op = op
        self.node = node
        self.func = func
        self.ins: list[Value] = list(ins)
        self.test: Value | None = extra.get("test")          # JOIN: the condition that chose
        self.attr: tuple | None = extra.get("attr")          # CONST: dataset location ("data", "image")
        self.items = extra.get("items")                      # PACK: tuple of values, or dict key -> value
        self.element: Value | None = extra.get("element")    # PACK/BOOK: what iterating it gives
        self.callee = extra.get("callee")                    # HELPER: the FunctionDef interpreted
        self.qual: str | None = extra.get("qual")            # CALL/READ: qualified name, or ".method"
        self.flags: frozenset[str] = extra.get("flags", frozenset())  # static facts: "rows-only", ...
        self.scalar: bool | None = extra.get("scalar")       # bookkeeping: one int (True), many (False)
        self.base: Value | None = extra.get("base")          # SUBSCRIPT/ATTRIBUTE/CALL receiver
        self.index: Value | None = extra.get("index")        # SUBSCRIPT: the index
        self.args: list[Value] = list(extra.get("args", ()))  # HELPER: the call's arguments
        self.site: Value | None = None                        # PARAM: the HELPER value of its call
        self.guards: tuple[Value, ...] = extra.get("guards", ())  # the `if`/`while` tests it runs under
        # Facts, computed by compute_facts once the graph is complete.
        self.data = False
        self.random = False
        self.varies = op in (Op.INDEX, Op.STATE, Op.RANDOM)
        self.origins: frozenset[Value] = frozenset()
        self.origin = False
        self.users: list[Value] = []

    def __repr__(self) -> str:
        code = cst.Module([]).code_for_node(self.node).strip() if isinstance(self.node, cst.BaseExpression) else ""
        flags = "".join(c for c, on in (("D", self.data), ("R", self.random), ("V", self.varies), ("O", self.origin)) if on)
        return f"<{self.op.value} {code[:40]!r} {flags}>"

    @property
    def const(self) -> bool:
        """The same for every batch and for the whole run."""
        return not (self.varies or self.random or self.data)

    def data_ins(self) -> list[Value]:
        """The inputs whose values flow into this one (not those that only pick, size or name it)."""
        op = self.op
        if op is Op.SUBSCRIPT:
            if self.origin:
                return []
            ins = [self.base] if self.base.data else []
            # `rows-only`: `x[ids]` only picks rows of x, unless x is no data (`np.eye(k)[labels]`)
            if self.index is not None and self.index.data and ("rows-only" not in self.flags or not self.base.data):
                ins.append(self.index)
            return ins
        if op in (Op.BOOK, Op.READ, Op.CONST, Op.INDEX, Op.STATE):
            return []
        if op is Op.ATTRIBUTE and "shape" in self.flags:
            return []
        return [v for v in self.ins if v.data]


def _string_building(value: Value) -> bool:
    return "text" in value.flags


def compute_facts(values: list[Value]) -> None:
    """Data, origins, randomness and variation of every value: a fixpoint, since loop heads join values
    computed later in the loop. Every fact only grows, so a worklist visits each value a bounded number
    of times (once, plus once per change of one of its inputs)."""
    dependents: dict[int, list[Value]] = {}
    for value in values:
        for source in value.ins:
            dependents.setdefault(id(source), []).append(value)
        for test in (value.test, *value.guards):
            if test is not None:
                dependents.setdefault(id(test), []).append(value)
        if value.op is Op.WRITE and value.index is not None:
            dependents.setdefault(id(value.index), []).append(value)
    work = list(reversed(values))
    queued = {id(v) for v in values}
    while work:
        value = work.pop()
        queued.discard(id(value))
        if _transfer(value):
            for dependent in dependents.get(id(value), ()):
                if id(dependent) not in queued:
                    queued.add(id(dependent))
                    work.append(dependent)
    for value in values:
        for source in value.data_ins():
            source.users.append(value)


def _transfer(v: Value) -> bool:
    old = (v.data, v.random, v.varies, v.origins, v.origin)
    op = v.op
    ins = v.ins
    if op is Op.SUBSCRIPT:
        base, index = v.base, v.index
        picks = index is not None and (index.varies or index.random)
        lookup = "table" in base.flags and index is not None and index.data  # `self.onehot[labels]`
        v.origin = base.attr is not None and not base.data and picks and not lookup
        if v.origin:
            v.data, v.random, v.varies, v.origins = True, base.random, True, frozenset((v,))
        elif base.data:
            v.data = True
            v.origins = base.origins | (index.origins if index is not None and index.data else frozenset())
            rows_only = "rows-only" in v.flags
            v.random = base.random or (index is not None and index.random and not rows_only)
            v.varies = base.varies or (index is not None and (index.varies or index.random))
        elif index is not None and index.data:
            v.data, v.origins, v.random, v.varies = True, index.origins, index.random or base.random, True
        else:
            v.data = False
            v.random = base.random or (index is not None and index.random)
            v.varies = base.varies or v.random or (index is not None and index.varies)
    elif op is Op.READ:
        v.origin = any(i.varies or i.random for i in ins)
        v.data = v.origin
        v.origins = frozenset((v,)) if v.origin else frozenset()
        v.varies = v.origin
    elif op is Op.PARAM and "external" in v.flags:
        # A parameter of a method a base class in another file calls per batch: what it receives are
        # the samples it loads or prepares, from a source seqlint cannot see.
        v.data = v.origin = v.varies = True
        v.origins = frozenset((v,))
    elif op is Op.CONST:
        # a copy of a dataset attribute made per batch changes with it when the attribute is state
        v.varies = any(i.varies for i in ins)
    elif op in (Op.INDEX, Op.STATE):
        v.varies = True
    elif op is Op.RANDOM:
        v.random = v.varies = True
        v.data = any(i.data for i in ins)
        v.origins = _union(i.origins for i in ins)
    elif op is Op.BOOK or (op is Op.OPERATOR and _string_building(v)):
        v.data = False
        v.random = any(i.random for i in ins)
        v.varies = v.random or any(i.varies or i.data for i in ins)
    elif op is Op.ATTRIBUTE and "shape" in v.flags:
        v.data = False
        v.random = False
        v.varies = any(i.varies or i.data for i in ins)
    else:
        v.data = any(i.data for i in ins)
        v.origins = _union(i.origins for i in ins if i.data)
        v.random = any(i.random for i in ins) or (v.test is not None and v.test.random)
        if op is Op.WRITE and v.index is not None and v.index.random:
            v.random = True  # written where a random draw says: a cutout, a random patch
        v.varies = v.data or v.random or any(i.varies for i in ins) or (v.test is not None and v.test.varies)
    if v.guards and any(g.random for g in v.guards):
        v.random = True  # computed only when a random draw says so: augmentation, whatever it computes
    return old != (v.data, v.random, v.varies, v.origins, v.origin)


def _union(sets) -> frozenset:
    out: frozenset = frozenset()
    for s in sets:
        if s:
            out = out | s if out else s
    return out
