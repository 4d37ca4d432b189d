"""Deterministic steps on one sample source: what SEQ101 reports, and what can be computed once.

A value is a *clean step* of a source (rows of `self.x`, a file read) when it is computed, without
randomness, from that source alone plus constants, by operations whose meaning seqlint knows. Which
operations qualify depends on what the source's rows are:
- a **batch** (`self.x[lo:hi]`, `self.x[index_array]`): operations that keep one result per row; a
  reduction over the batch axis is a batch statistic and stops the run;
- one **sample** (`self.x[i]` with an int `i`, a file read): any known deterministic operation, since
  applying it to each row of the dataset in turn gives the same values;
- unknown: only operations that do not care about the leading axis (element-wise arithmetic, astype).

`clean_steps` maps every value to its source when it is such a step. `Region` is the part of a run
that can be moved as one piece: every value in it, except the last (`frontier`), is used only inside it,
so replacing the frontier by the source's rows, once the dataset attribute holds the result, changes
nothing else in the function.
"""

from __future__ import annotations

from dataclasses import dataclass
import libcst as cst

from seqlint.analysis import effects
from seqlint.analysis.batchflow import flow_tables, owned
from seqlint.analysis.hotpath import assignment_targets, is_self_attr, walk
from seqlint.analysis.rowwise import call_table, int_literal
from seqlint.analysis.tables import elementwise_arithmetic, elementwise_numpy, preprocessing_table
from seqlint.analysis.values import Op, Value

BATCH = "batch"
SAMPLE = "sample"

_ARITHMETIC = (
    cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.FloorDivide, cst.Modulo, cst.Power, cst.BitAnd,
    cst.BitOr, cst.BitXor, cst.MatrixMultiply,
)
_AXIS_ATTRIBUTES = frozenset({"T", "mT", "flat"})


def origin_unit(origin: Value) -> str | None:
    """Whether the source's rows are a batch, one sample, or unknown."""
    if origin.op is Op.READ:
        return SAMPLE
    if origin.op is Op.PARAM:
        return None
    index = origin.index
    if index is None:
        return None
    if index.scalar:
        return SAMPLE
    if index.scalar is False or "slice" in index.flags:
        return BATCH
    return None


def location(origin: Value) -> tuple | None:
    """The dataset attribute an origin picks rows of, ("x",) or ("data", "image"); None for files and
    for samples handed over by code in another file."""
    if origin.op in (Op.READ, Op.PARAM):
        return None
    attr = origin.base.attr
    return None if attr is None or attr[0] == "@file" else attr


def is_file(origin: Value | None) -> bool:
    if origin is None:
        return False
    return origin.op is Op.READ or (origin.base is not None and origin.base.attr is not None
                                    and origin.base.attr[0] == "@file")


@dataclass
class Step:
    """What a clean step is: its source, and whether it is preprocessing work worth reporting."""

    source: Value
    unit: str | None
    work: bool


class CleanSteps:
    """Which values are clean steps of which source, for one BatchFlow."""

    def __init__(self, flow):
        self.flow = flow
        self.ctx = flow.ctx
        self.steps: dict[int, Step] = {}
        self._state_writers: dict[int, bool] = {}
        # Loops make the graph cyclic (a batch filled row by row joins itself): classify until nothing
        # changes, a loop head first taking its inputs from before the loop.
        for _ in range(4):
            changed = False
            for value in flow.values:
                step = self._classify(value)
                old = self.steps.get(id(value))
                if step is None:
                    changed |= self.steps.pop(id(value), None) is not None
                elif old is None or (old.source, old.unit, old.work) != (step.source, step.unit, step.work):
                    self.steps[id(value)] = step
                    changed = True
            if not changed:
                break

    def of(self, value: Value) -> Step | None:
        return self.steps.get(id(value))

    # -- classification -------------------------------------------------------------------------------
    def _classify(self, v: Value) -> Step | None:
        if v.origin:
            return Step(v, origin_unit(v), False)
        if not v.data or v.random or v.op in (Op.RANDOM, Op.OPAQUE, Op.BOOK):
            return None
        if v.op is Op.JOIN:
            return self._joined(v)
        if v.op is Op.WRITE and "full" not in v.flags:
            return self._filled(v)
        if v.op is Op.ITEM:
            # One element of a value, as iteration gives it: a sample of a batch, part of a sample.
            container = self.steps.get(id(v.ins[0])) if v.ins else None
            if container is None:
                return None
            return Step(container.source, SAMPLE if container.unit == BATCH else container.unit, False)
        if v.op is Op.PACK:
            return self._mapped(v)
        if v.op is Op.PARAM:
            sources = [self.steps.get(id(u)) for u in v.ins]
            if sources and all(s is not None for s in sources) and len({id(s.source) for s in sources}) == 1:
                return Step(sources[0].source, sources[0].unit, False)
            return None
        if v.op is Op.HELPER:
            ret = self.steps.get(id(v.ins[0]))
            if ret is None or "writes-input" in v.flags or self._writes_state(v.callee):
                return None
            return Step(ret.source, ret.unit, False)
        data = [u for u in v.data_ins() if not self._pending(u)]  # a loop head waits for its body
        sources = [self.steps.get(id(u)) for u in data]
        if not sources or any(s is None for s in sources) or len({id(s.source) for s in sources}) != 1:
            return None
        source = sources[0].source
        if v.op is Op.SUBSCRIPT and v.index is not None and not v.index.data and not v.index.random \
                and not v.index.const and not (keeps_rows(v.node, sources[0].unit) and self._setting(v.index, source)):
            if v.index.scalar and sources[0].unit == BATCH and len(v.node.slice) == 1 and self._setting(v.index, source):
                return Step(source, SAMPLE, False)  # `texts[row]` in a loop over the rows: one sample
            # A window or an element picked with bounds that change per batch (`walk[first:last]`,
            # `x[n, i, j]` in loops over the shape): still the same source's values, in an order only
            # element-wise steps commute with.
            return Step(source, None, False)
        if any(not self._setting(u, source) for u in v.ins if not u.data) or (
            v.test is not None and not self._setting(v.test, source)
        ):
            return None
        unit = sources[0].unit
        work = self._allowed(v, unit)
        if work is None:
            return None
        return Step(sources[0].source, unit, work)

    def _setting(self, value: Value, source: Value, depth: int = 0) -> bool:
        """A non-data input a step may read: a constant, or a size or shape of the same source's steps
        (`np.empty(b.shape)`, `len(b)`), which the hoisted code computes from the rows it is given."""
        if value.const:
            return True
        if value.random or depth > 20 or value.op not in (
            Op.BOOK, Op.ATTRIBUTE, Op.OPERATOR, Op.SUBSCRIPT, Op.PACK, Op.JOIN, Op.ITEM, Op.CALL
        ):
            return False
        if value.op is Op.ATTRIBUTE and "shape" not in value.flags:
            return False
        if value.test is not None and not self._setting(value.test, source, depth + 1):
            return False
        for u in value.ins:
            if u.data:
                step = self.steps.get(id(u))
                if step is None or step.source is not source:
                    return False
            elif not self._setting(u, source, depth + 1):
                return False
        return True

    def _joined(self, v: Value) -> Step | None:
        """Branches under a setting, or a loop head: the same source's steps whichever way it went."""
        parts = [self.steps.get(id(u)) for u in v.ins if u.data]
        known = [p for p in parts if p is not None]
        if not known or len({id(p.source) for p in known}) != 1:
            return None
        if v.test is not None and not self._setting(v.test, known[0].source):
            return None
        if len(known) < len(parts) and v.node is not None and not isinstance(v.node, (cst.For, cst.While)):
            return None  # only a loop head may wait for what its body makes
        return Step(known[0].source, known[0].unit, False)

    def _pending(self, u: Value) -> bool:
        return u.op is Op.JOIN and isinstance(u.node, (cst.For, cst.While)) and id(u) not in self.steps

    def _filled(self, v: Value) -> Step | None:
        """`batch[i] = sample`, `rows.append(sample)`: a batch assembled from one source's samples, in an
        array or list the function made (fresh zeros, `[]`)."""
        before, *written = v.ins
        if not written or not (owned(before) or before.op is Op.JOIN or self.steps.get(id(before))):
            return None
        pending = before.op is Op.JOIN and isinstance(before.node, (cst.For, cst.While)) and id(before) not in self.steps
        parts = [self.steps.get(id(u)) for u in ((*written,) if pending else (before, *written)) if u.data]
        if not parts or any(p is None for p in parts) or len({id(p.source) for p in parts}) != 1:
            return None
        return Step(parts[0].source, BATCH, False)

    def _const_iteration(self, node) -> bool:
        clause = node.for_in
        return clause.inner_for_in is None and not clause.ifs and all(
            v.const for v in self.flow.values_at(clause.iter)
        ) and bool(self.flow.values_at(clause.iter))

    def _mapped(self, v: Value) -> Step | None:
        """`[f(r) for r in rows]`: the same steps applied to every element, one result per element."""
        node = v.node
        if isinstance(node, (cst.List, cst.Tuple)) or (
            isinstance(node, (cst.ListComp, cst.GeneratorExp)) and self._const_iteration(node)
        ):
            # `[rows[c].values for c in COLUMNS]`, `(x[:, 0], x[:, 1])`: several steps of one source
            parts = [self.steps.get(id(u)) for u in v.ins]
            if parts and all(p is not None for p in parts) and len({id(p.source) for p in parts}) == 1:
                return Step(parts[0].source, parts[0].unit, False)
            return None
        if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
            if node.for_in.inner_for_in is not None or node.for_in.ifs:
                return None
            iterable = node.for_in.iter
        elif isinstance(node, cst.Call) and self.ctx.qualified_name(node.func) in flow_tables().mapping_calls \
                and len(node.args) == 2:
            iterable = node.args[1].value
        else:
            return None
        if v.element is None:
            return None
        element = self.steps.get(id(v.element))
        if element is None:
            return None
        if is_file(element.source):
            return Step(element.source, BATCH, False)  # one file read per element: a batch of samples
        iterated = [self.steps.get(id(i)) for i in self.flow.values_at(iterable)]
        if iterated and all(i is not None and i.source is element.source for i in iterated):
            return Step(element.source, iterated[0].unit, False)
        elt = getattr(node, "elt", None)
        if elt is not None and self.ctx.contains(elt, element.source.node):
            # rows picked afresh for each element (`[self.series[s:s + n] for s in starts]`): a batch
            # gathered from the source, whose axes after the first are the rows' own
            return Step(element.source, None, False)
        return None

    def _allowed(self, v: Value, unit: str | None) -> bool | None:
        """None when `v` is not a clean step for a source of this unit, else whether it does real work
        (arithmetic, a preprocessing call) rather than only copying or viewing."""
        node = v.node
        if v.op is Op.OPERATOR:
            if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply):
                return True if unit in (BATCH, SAMPLE) else None
            return True
        if v.op is Op.LOOP:
            # The work is in the loop's body, whose steps are reported on their own.
            return False if unit in (BATCH, SAMPLE) and owned(v.base) else None
        if v.op is Op.WRITE:
            if "full" not in v.flags or not owned(v.ins[0]):
                return None  # writing into the dataset's own rows (a view), not into a copy
            return False
        if v.op is Op.ATTRIBUTE:
            # `rows.values`, a DataFrame's column `rows.label`; not `x.T`, which swaps the batch axis away
            name = node.attr.value if isinstance(node, cst.Attribute) else ""
            return None if name in _AXIS_ATTRIBUTES and unit != SAMPLE else False
        if v.op is Op.SUBSCRIPT:
            if v.index is not None and v.index.data and v.base is not None and not v.base.data and len(node.slice) == 1:
                # `np.eye(k)[labels]`, `self.embedding[tokens]`: a lookup in a constant array, one result
                # for each element of the data that indexes it (a dict lookup per sample is not the work)
                if "table" in v.base.flags:
                    return True
                kind = self.flow.kinds.of(v.base.node, v.base.func) if v.base.node is not None else None
                return True if kind is not None and kind.type == "ndarray" else None
            if unit == SAMPLE or keeps_rows(node, unit) or _column(node) or (
                v.index is not None and v.index.const and v.index.scalar is None and "slice" not in v.index.flags
                and len(node.slice) == 1
            ):
                return False  # also `rows[c]` with `c` a name of a column (never an int: that picks a row)
            return None
        if v.op is Op.CALL:
            return self._call(v, unit)
        return None

    def _call(self, v: Value, unit: str | None) -> bool | None:
        qual = v.qual or ""
        tables = flow_tables()
        node = v.node
        if "stack" in v.flags or qual in tables.stacking_calls or qual == "numpy.append":
            return False  # samples assembled into one array: SEQ103's concern, not preprocessing
        if "copy" in v.flags:
            return False
        if qual.startswith("."):
            method = qual[1:]
            receiver = v.base
            if receiver is not None and not receiver.data:
                # a method of a setting applied to the data (a fitted scaler's transform), or a setting
                # called on it (`self.tokenizer(texts)`)
                if method in tables.fitting_methods or not receiver.const:
                    return None
                table = preprocessing_table()
                known = method in table.methods or (
                    "self" in receiver.flags and any(word in method.lower() for word in table.callable_receivers)
                ) or (unit == SAMPLE and method in call_table().per_row_methods)  # `vocab.get(word, OOV)`
                return True if known and unit in (SAMPLE, BATCH) else None
            if method in tables.fitting_methods:
                return None
            if method in tables.decoding_methods or method in tables.layout_methods:
                return False
            if method in call_table().per_row_methods:
                return False  # string and dict plumbing (`text.lower().split()`): a step, not the work
            if method == "astype" and is_file(self._source_of(v)):
                return False  # converting what was just decoded is part of decoding it
            if method in tables.reduction_methods:
                return True if self._rowwise_reduction(node, unit, method=True) else None
            if method in tables.elementwise_methods:
                return True
            # With rows of unknown kind (one sample or a batch?) a known deterministic call is still
            # reported; whether it can be hoisted is hoisting.py's question (only element-wise steps).
            if effects.is_pure_array_method(method) or method in preprocessing_table().methods:
                return True
            if unit == SAMPLE and method in call_table().per_row_methods:
                return True
            return None
        if effects.is_random_call(qual) or effects.is_io_call(qual):
            return None
        if qual in tables.decoding_functions or qual in tables.layout_functions:
            return False
        if qual in tables.reduction_functions:
            return True if self._rowwise_reduction(node, unit, method=False) else None
        if qual in elementwise_arithmetic() or qual in elementwise_numpy() or _keras_name(qual) in tables.trailing_axes_functions \
                or qual in tables.trailing_axes_functions:
            return True
        if qual in call_table().fixed_width and unit != SAMPLE:
            # padding a batch to its own longest row is a statistic of the batch, not a step to do once
            return True if pads_rows(v) else None
        table = preprocessing_table()
        if table.is_function(qual) or table.is_function(_keras_name(qual)) or qual in call_table().one_hot:
            return True
        if effects.is_pure_numpy(qual) or qual in call_table().axis_transforms:
            return True
        if unit == SAMPLE and qual in call_table().per_row_builtins:
            return True
        return None

    def _source_of(self, v: Value) -> Value | None:
        for u in v.data_ins():
            step = self.steps.get(id(u))
            if step is not None:
                return step.source
        return None

    def _rowwise_reduction(self, node, unit: str | None, method: bool) -> bool:
        """A reduction keeps one result per row when it runs over one sample, or over axes of a batch
        other than the first."""
        if unit == SAMPLE:
            return True
        if unit != BATCH or not isinstance(node, cst.Call):
            return False
        axis = None
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value == "axis":
                axis = arg.value
        positional = [a for a in node.args if a.keyword is None]
        if axis is None and len(positional) >= (1 if method else 2):
            axis = positional[0 if method else 1].value
        if axis is None:
            return False
        axes = [e.value for e in axis.elements] if isinstance(axis, cst.Tuple) else [axis]
        numbers = [int_literal(a) for a in axes]
        return all(n is not None and n >= 1 for n in numbers)

    def _writes_state(self, func) -> bool:
        """A helper that assigns attributes of `self` has effects beyond its result: never one step."""
        if func is None:
            return True
        key = id(func)
        if key not in self._state_writers:
            writes = False
            for node in walk(func):
                if any(is_self_attr(sub) is not None for target in assignment_targets(node) for sub in walk(target)):
                    writes = True
            self._state_writers[key] = writes
        return self._state_writers[key]


def _keras_name(qual: str) -> str:
    """The Keras 3 name of a function reached through tf.keras or the Keras 2 package (tf_keras)."""
    for prefix in ("tensorflow.keras.", "tf_keras."):
        if qual.startswith(prefix):
            return "keras." + qual[len(prefix):]
    return qual


def _column(node) -> bool:
    """`rows["label"]`, `rows[["a", "b"]]`: named columns or fields of every row (a DataFrame's, a
    record array's)."""
    if not (isinstance(node, cst.Subscript) and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index)):
        return False
    index = node.slice[0].slice.value
    strings = (cst.SimpleString, cst.ConcatenatedString)
    if isinstance(index, (cst.List, cst.Tuple)):
        return bool(index.elements) and all(isinstance(e.value, strings) for e in index.elements)
    return isinstance(index, strings)


def keeps_rows(node, unit: str | None) -> bool:
    """`b[:, 1:]`, `b[..., None]`, `b[:, ::-1]`: indexing that keeps every row of a batch (and, for an
    unknown unit, only trailing axes: an Ellipsis first)."""
    if not isinstance(node, cst.Subscript) or not node.slice:
        return False
    first = node.slice[0].slice
    if isinstance(first, cst.Index) and isinstance(first.value, cst.Ellipsis):
        return True
    if unit != BATCH:
        return False
    return isinstance(first, cst.Slice) and first.lower is None and first.upper is None and first.step is None


# ---------------------------------------------------------------------------------------------------
# Regions


@dataclass
class Region:
    """A run of clean steps from one source that can move as one piece."""

    origin: Value
    steps: list[Value]  # in evaluation order, the origin excluded
    frontier: Value
    unit: str | None
    entry: cst.CSTNode  # where the steps' function reads the rows: the origin itself, or a name holding them
    # For steps that follow a gather (`np.stack([x[s:s + n] for s in starts])`, a batch filled row by
    # row): the gathered value, and the values gathering it, which stay where they are.
    gather: Value | None = None
    gathering: tuple = ()
    # The rows read are also used as they are (`y = self.labels[s]` returned, and `np.where(y == 1, ...)`
    # as sample weights): the steps' result can only be a new attribute, read afresh at the frontier.
    fork: bool = False

    @property
    def func(self):
        return self.steps[0].func if self.steps else self.origin.func


def regions(flow, clean: CleanSteps) -> list[Region]:
    """For every live source, the largest single-exit region of its clean steps, in the function that
    reads it (its own, or a caller that received the rows unchanged from a helper: `X, y = self.load(i)`)."""
    everyone: dict[int, list[Value]] = {}
    for value in flow.values:
        # A helper's parameter is its call's use of the argument: the call is the step.
        user = value.site if value.op is Op.PARAM and value.site is not None else value
        for source in value.ins:
            everyone.setdefault(id(source), []).append(user)
    found = []
    for origin in flow.origins:
        by_function: dict[int, list[Value]] = {}
        for v in flow.values:
            step = clean.of(v)
            if step is not None and step.source is origin and v is not origin and v.op is not Op.PARAM:
                by_function.setdefault(id(v.func), []).append(v)
        for members in by_function.values():
            func = members[0].func
            if func is origin.func:
                entry = origin.node
            else:
                entry = _entry_name(flow, origin, members)
                if entry is None:
                    continue
            region = _largest_region(origin, members, everyone, clean, entry)
            if region is None and func is origin.func and origin.op is Op.SUBSCRIPT:
                region = _largest_region(origin, members, everyone, clean, entry, fork=True)
                if region is not None:
                    found.append(region)
                continue
            if region is not None:
                found.append(region)
                found += _after_gather(flow, region, everyone)
                before = _before_gather(region, everyone)
                if before is not None:
                    found.append(before)
    return found


def moves(value: Value) -> bool:
    """A value that only moves the source's values around: picks, packs, stacks, fills, copies."""
    if value.op in (Op.ITEM, Op.PACK, Op.JOIN, Op.LOOP, Op.WRITE, Op.SUBSCRIPT):
        return True
    if value.op is Op.CALL:
        qual = value.qual or ""
        return bool(value.flags & {"stack", "copy"}) or qual in flow_tables().layout_functions \
            or qual[1:] in flow_tables().layout_methods
    return False


def trailing(value: Value) -> bool:
    """A step whose meaning does not depend on the leading axes: the same per element wherever the
    element sits (element-wise arithmetic, astype, clip)."""
    tables = flow_tables()
    if value.op is Op.OPERATOR:
        node = value.node
        return not (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply))
    if value.op is Op.SUBSCRIPT:
        return keeps_rows(value.node, None)
    if value.op is Op.CALL:
        qual = value.qual or ""
        if "copy" in value.flags:
            return True
        if qual.startswith("."):
            return qual[1:] in tables.elementwise_methods
        return qual in elementwise_arithmetic() or qual in elementwise_numpy() or qual in tables.trailing_axes_functions
    return False


def elementwise(value: Value) -> bool:
    """A step computing each element from that element alone, keeping the shape: it commutes with any
    picking or gathering of elements (unlike a one-hot encoding, which adds an axis)."""
    if value.op is Op.OPERATOR:
        node = value.node
        return not (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply))
    if value.op is Op.CALL:
        qual = value.qual or ""
        if "copy" in value.flags:
            return True
        if qual.startswith("."):
            return qual[1:] in flow_tables().elementwise_methods
        return qual in elementwise_arithmetic() or qual in elementwise_numpy() or qual in flow_tables().elementwise_functions
    return False


def pads_rows(value: Value) -> bool:
    """`pad_sequences(rows, maxlen=N)`: each row padded or cut to a width fixed by a setting, whatever
    the other rows are, so it commutes with gathering rows (not with picking parts of them)."""
    from seqlint.analysis.rowwise import call_table

    keyword = call_table().fixed_width.get(value.qual or "") if value.op is Op.CALL else None
    if keyword is None or not isinstance(value.node, cst.Call):
        return False
    args = [a for a in value.node.args if a.keyword is None]
    given = {a.keyword.value: a.value for a in value.node.args if a.keyword is not None}
    if len(args) != 1 or keyword not in given or (isinstance(given[keyword], cst.Name) and given[keyword].value == "None"):
        return False
    # the width and every other option settings (not `maxlen=max(len(s) for s in batch)`), one input of rows
    return sum(1 for u in value.ins if u.data) == 1 and all(u.const for u in value.ins if not u.data)


def _after_gather(flow, region: Region, everyone: dict) -> list[Region]:
    """The element-wise steps right after the source's rows were gathered, as regions of their own
    (the whole run, then each shorter start of it): they can be applied to the dataset's rows before
    the gather instead, leaving the gather where it is. The run stops at the next step that moves
    values around (`X[..., None]`): what follows stays per batch."""
    steps = region.steps
    first = next((i for i, v in enumerate(steps) if not moves(v)), None)
    if not first:
        return []
    gathered = steps[first - 1]
    run = []
    for value in steps[first:]:
        if moves(value) or not (elementwise(value) or pads_rows(value)):
            break
        run.append(value)
    if not run:
        return []
    run_ids = {id(v) for v in run}
    if any(id(u) not in run_ids for u in everyone.get(id(gathered), ())):
        return []  # the gathered rows are also used as they are
    if any(any(u is not gathered and id(u) not in run_ids for u in v.data_ins()) for v in run):
        return []
    entry = None
    for node in walk(run[0].node):
        if isinstance(node, cst.Name) and any(v is gathered for v in flow.values_at(node)):
            entry = node
            break
    if entry is None:
        entry = gathered.node if isinstance(gathered.node, cst.BaseExpression) else None
    if entry is None or not all(v.func is run[0].func for v in run):
        return []
    found = []
    for end in range(len(run), 0, -1):
        prefix = run[:end]
        inside = {id(v) for v in prefix}
        if any(any(id(u) not in inside for u in everyone.get(id(v), ())) for v in prefix[:-1]):
            continue  # a value inside is also used after the prefix ends: not one exit
        found.append(Region(region.origin, prefix, prefix[-1], None, entry, gathered, tuple(steps[:first])))
    return found


def _before_gather(region: Region, everyone: dict) -> Region | None:
    """The steps one picked sample goes through before anything gathers it
    (`np.stack([self._prep(self.images[a]) for a, _ in pairs])`, `parts.append([self.x[i] / s])`): a
    chain of its own, from the source to the first value that only moves values around, which can run
    once per row of the dataset, leaving the gather where it is."""
    members = {id(v) for v in region.steps}
    run, current = [], region.origin
    while True:
        users = everyone.get(id(current), ())
        if len(users) != 1 or id(users[0]) not in members or moves(users[0]):
            break
        current = users[0]
        run.append(current)
    if not run or len(run) == len(region.steps):
        return None
    unit = origin_unit(region.origin)
    node = region.origin.node
    if unit is None and isinstance(node, cst.Subscript) and len(node.slice) == 1 and \
            isinstance(node.slice[0].slice, cst.Index) and region.origin.index is not None and \
            region.origin.index.scalar is not False and "slice" not in region.origin.index.flags:
        # one element of the gather per key, `self.images[a]` with `a` one of the batch's keys: a sample
        unit = SAMPLE
    return Region(region.origin, run, run[-1], unit, region.entry)


def _entry_name(flow, origin: Value, members: list[Value]):
    """The name through which a caller reads rows a helper returned as they were, if there is one."""
    func = members[0].func
    names = []
    for member in members:
        for node in walk(member.node) if isinstance(member.node, cst.CSTNode) else ():
            if isinstance(node, cst.Name) and any(v is origin for v in flow.values_at(node)):
                names.append(node)
    if not names or any(v.func is not func for v in members):
        return None
    return names[0]


def _largest_region(origin: Value, members: list[Value], everyone: dict, clean: CleanSteps, entry,
                    fork: bool = False) -> Region | None:
    """The region ending at the latest member whose computation uses nothing that escapes.

    Only members with a use outside the members can be the frontier (any other member's result is
    consumed by later members), and the latest such one gives the largest region; each candidate costs
    one walk of its ancestors, and few are ever tried, which keeps this linear."""
    member_ids = {id(v) for v in members} | {id(origin)}
    func = members[0].func

    def allowed(user, a) -> bool:
        return (
            _counts_rows(user) or (not user.data and clean._setting(user, origin))
            or (fork and a == id(origin))  # the raw rows go on as they are, too
            # rows handed back unchanged to the caller (`return x, y`) travel, they are not used
            or (a == id(origin) and func is not origin.func and user.func is origin.func
                and user.op in (Op.PACK, Op.JOIN))
        )

    # Candidates: members used outside, and members used by nobody (the batch returned as it is).
    escaping = [v for v in members if not everyone.get(id(v)) or any(
        id(u) not in member_ids and not allowed(u, id(v)) for u in everyone.get(id(v), ())
    )]
    for frontier in list(reversed(escaping))[:8]:
        ancestors = _ancestors(frontier, member_ids)
        if id(origin) not in ancestors:
            continue
        inside = ancestors | {id(frontier)}
        if all(
            all(id(user) in inside or allowed(user, a) for user in everyone.get(a, ()))
            for a in ancestors if a != id(frontier)
        ):
            steps = [v for v in members if id(v) in ancestors or v is frontier]
            return Region(origin, steps, frontier, clean.of(origin).unit, entry, fork=fork)
    return None


def _ancestors(value: Value, member_ids: set[int]) -> set[int]:
    """Members the value is computed from (through data inputs), the value itself included."""
    seen: set[int] = set()
    stack = [value]
    while stack:
        current = stack.pop()
        if id(current) in seen or id(current) not in member_ids:
            continue
        seen.add(id(current))
        stack.extend(current.data_ins())
        if current.op is Op.HELPER:
            stack.extend(a for a in current.args if a.data)
    return seen


def _counts_rows(user: Value) -> bool:
    """`len(x)`: a use that the hoisted steps leave unchanged, since they keep one row per row."""
    node = user.node
    return user.op is Op.BOOK and isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "len"
