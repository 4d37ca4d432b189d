"""SEQ201's fix for a batch of rows read through an open file: `f["t1"][rows]` from an HDF5 file opened
in `__getitem__`.

    rows = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])
    with h5py.File(self.h5_path, "r") as f:
        t1 = f["t1"][rows]
        grade = f["grade"][rows]
    t1 = np.clip(t1.astype(np.float32), 0, 4000) / 4000.0

Every dataset read from the handle is indexed by the batch's keys, which are picked from one attribute
(`self.order`): row `k` of the read is the file's row `k`. So each read becomes a loader of one key,
the same code with the key in place of the batch's keys, packed once like a per-sample read
(packing.py):

    def _load_t1(self, row):
        with h5py.File(self.h5_path, "r") as f:
            t1 = f["t1"][row]
        return np.clip(t1.astype(np.float32), 0, 4000) / 4000.0

and `__getitem__` takes the batch's rows from the pack: `t1 = self._t1_samples.take(rows)`, the file no
longer opened. Steps after the read move into the loader only when they commute with picking rows
(element-wise, with scalar settings: regions.trailing), so applying them per row gives the same values.
"""

from __future__ import annotations

import libcst as cst

from seqlint.analysis.hotpath import variables, walk
from seqlint.analysis.packing import (
    Pack, PackPlan, _reads_only_key_and_settings, _start, _unique, keys_attribute,
)
from seqlint.analysis.regions import is_file, regions
from seqlint.analysis.values import Op, Value
from seqlint.findings import Edit
from seqlint.fixes import indentation_of, line_start, replace, source_lines


def handle_plans(ctx, seq, flow, clean, used_names: set[str]) -> list[PackPlan]:
    """One plan per file handle whose every use reads rows of the batch's keys."""
    groups: dict[int, tuple[Value, list[Value]]] = {}
    for origin in flow.origins:
        handle = _handle_of(origin)
        if handle is not None and is_file(origin):
            groups.setdefault(id(handle), (handle, []))[1].append(origin)
    plans = []
    for handle, origins in groups.values():
        plan = _plan(ctx, flow, clean, handle, origins, used_names)
        if plan is not None:
            plans.append(plan)
            used_names |= {name for pack in plan.packs for name in (pack.method_name, pack.attribute)}
    return plans


def _handle_of(origin: Value) -> Value | None:
    """The open file `origin` reads rows of: `f` in `f["t1"][rows]` (also `f["a"]["b"][rows]`)."""
    if origin.op is not Op.SUBSCRIPT or origin.index is None or origin.index.const or not origin.ins:
        return None
    base = origin.ins[0]
    while base.op is Op.SUBSCRIPT and base.index is not None and base.index.const and base.ins:
        base = base.ins[0]
    return base if base.op is Op.READ and base.node is not None else None


class _Read:
    """One dataset read from the handle, and what it becomes."""

    def __init__(self, origin: Value, keys: str, key: str, name: str):
        self.origin = origin
        self.keys = keys      # every key: `self.order`
        self.key = key        # the loader's parameter
        self.name = name      # `t1`


def _plan(ctx, flow, clean, handle: Value, origins: list[Value], used_names: set[str]) -> PackPlan | None:
    func = handle.func
    if not isinstance(func, cst.FunctionDef) or any(o.func is not func for o in origins):
        return None
    opening = _opening(ctx, handle)
    if opening is None:
        return None
    kind, stmt, handle_name = opening
    if not _only_reads(ctx, func, stmt, handle_name, origins, kind):
        return None
    reads = []
    for origin in origins:
        read = _read(ctx, flow, origin)
        if read is None:
            return None
        reads.append(read)
    # The open (path and mode) must be computable from settings alone, once, outside any batch.
    open_parts = [handle.node] + ([stmt] if kind == "assign" else [])
    if not _reads_only_key_and_settings(ctx, flow, func, None, [], handle.node, set()) or not all(
        _settings_only(ctx, flow, func, part) for part in open_parts
    ):
        return None
    packs, edits, replacements = [], [], {}
    used = set(used_names)
    for read in reads:
        method_name = _unique(f"_load_{read.name}", used)
        attribute = _unique(f"_{read.name}_samples", used | {method_name})
        used |= {method_name, attribute}
        extraction = _steps_after(ctx, flow, clean, read, stmt if kind == "with" else None)
        method = _loader(ctx, kind, stmt, handle, read, method_name, extraction)
        if method is None:
            return None
        packs.append(Pack(attribute, method_name, read.keys, method))
        index = read.origin.node.slice[0].slice.value
        replacements[id(read.origin.node)] = f"self.{attribute}.take({ctx.code(index)})"
        if extraction is not None:
            from seqlint.analysis.hoisting import deletion_edits

            edits += extraction.edits + deletion_edits(ctx, extraction.deleted)
    edits += _unopened(ctx, func, kind, stmt, handle_name, replacements)
    if edits is None or any(e is None for e in edits):
        return None
    return PackPlan(handle, packs, edits)


def _opening(ctx, handle: Value):
    """("with", the With statement, "f") for `with h5py.File(p) as f:`; ("assign", the statement, "f")
    for `f = h5py.File(p)`; ("inline", None, None) for `h5py.File(p)["x"][rows]`."""
    parent = ctx.parent(handle.node)
    if isinstance(parent, cst.WithItem):
        with_stmt = ctx.parent(parent)
        if isinstance(with_stmt, cst.With) and len(with_stmt.items) == 1 and with_stmt.asynchronous is None \
                and parent.asname is not None and isinstance(parent.asname.name, cst.Name) \
                and isinstance(with_stmt.body, cst.IndentedBlock):
            return "with", with_stmt, parent.asname.name.value
        return None
    if isinstance(parent, cst.Assign) and parent.value is handle.node and len(parent.targets) == 1 \
            and isinstance(parent.targets[0].target, cst.Name):
        stmt = ctx.statement_of(handle.node)
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
            return "assign", stmt, parent.targets[0].target.value
        return None
    if isinstance(parent, cst.Subscript):
        return "inline", None, None
    return None


def _only_reads(ctx, func, stmt, handle_name, origins, kind) -> bool:
    """Nothing but the rows reads use the handle (and `f.close()`, which goes with it)."""
    if kind == "inline":
        return len(origins) == 1
    inside = [o.node for o in origins]
    for node in walk(func.body):
        if not (isinstance(node, cst.Name) and node.value == handle_name):
            continue
        if kind == "with" and _is_binding(ctx, node, stmt):
            continue
        if kind == "assign" and ctx.contains(stmt, node):
            continue
        if any(ctx.contains(o, node) for o in inside):
            continue
        if _close_call(ctx, node) is not None:
            continue
        return False
    # every read is inside the with block (a read after it would fail on a closed file anyway)
    return kind != "with" or all(ctx.contains(stmt.body, o) for o in inside)


def _is_binding(ctx, name: cst.Name, with_stmt: cst.With) -> bool:
    item = with_stmt.items[0]
    return item.asname is not None and item.asname.name is name


def _close_call(ctx, name: cst.Name):
    """The statement `f.close()` when `name` is its `f`."""
    attribute = ctx.parent(name)
    call = ctx.parent(attribute) if isinstance(attribute, cst.Attribute) else None
    if isinstance(call, cst.Call) and call.func is attribute and attribute.attr.value == "close" and not call.args:
        stmt = ctx.statement_of(call)
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr) \
                and stmt.body[0].value is call:
            return stmt
    return None


def _read(ctx, flow, origin: Value) -> _Read | None:
    node = origin.node
    if not (isinstance(node, cst.Subscript) and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index)):
        return None
    keys = keys_attribute(flow, origin.index)
    if keys is None:
        return None
    index = node.slice[0].slice.value
    name = None
    parent = ctx.parent(node)
    if isinstance(parent, cst.Assign) and parent.value is node and len(parent.targets) == 1 \
            and isinstance(parent.targets[0].target, cst.Name) and len(parent.targets[0].target.value) > 1:
        name = parent.targets[0].target.value
    elif isinstance(node.value, cst.Subscript) and isinstance(node.value.slice[0].slice, cst.Index) \
            and isinstance(node.value.slice[0].slice.value, cst.SimpleString):
        name = node.value.slice[0].slice.value.evaluated_value
    name = "".join(c if c.isalnum() else "_" for c in (name or "sample").lower()).strip("_") or "sample"
    key = "row" if isinstance(index, cst.Name) and index.value in ("rows", "idx", "indices", "indexes", "index") else "key"
    return _Read(origin, keys, key, name)


def _settings_only(ctx, flow, func, node) -> bool:
    """Every name the open reads is `self`, a module name or a local holding a constant."""
    locals_ = {p.name.value for p in (*func.params.params, *func.params.kwonly_params)} - {"self"}
    for sub in walk(func.body):
        if isinstance(sub, cst.AssignTarget):
            locals_ |= {n.value for n in walk(sub.target) if isinstance(n, cst.Name)}
    for name in variables(node):
        if name in locals_:
            values = [v for sub in walk(node) if isinstance(sub, cst.Name) and sub.value == name
                      for v in flow.values_at(sub)]
            if not values or not all(v.const for v in values):
                return False
    return True


def _steps_after(ctx, flow, clean, read: _Read, with_stmt):
    """The element-wise steps after the read, as hoisting.py extracts them, when they can run per row."""
    from seqlint.analysis.hoisting import _Extraction, scalar_setting

    parent = ctx.parent(read.origin.node)
    if not isinstance(parent, cst.Assign):
        return None  # read inside a larger expression: the expression stays per batch
    for region in regions(flow, clean):
        if region.origin is not read.origin or region.gather is not None:
            continue
        extraction = _Extraction.build(ctx, flow, clean, region)
        if extraction is None or not extraction.trailing_only or extraction.param != read.name:
            return None
        # (an index that keeps the rows, and a dtype, are not values broadcast against the rows)
        settings = [u for v in region.steps if v.op is not Op.SUBSCRIPT and v.qual != ".astype"
                    for u in v.ins if not u.data]
        if not all(scalar_setting(ctx, flow, u) for u in settings):
            return None
        if read.key in variables(cst.Module(body=[*extraction.body, cst.SimpleStatementLine([cst.Return(extraction.result)])])):
            return None
        if with_stmt is not None:
            start, end = ctx.position(with_stmt)
            for edit in extraction.edits:
                if not (edit.end_location <= start or end <= edit.location):
                    return None
            if any(not (last < start.row or end.row < first) for first, last in extraction.deleted):
                return None
        return extraction
    return None


def _loader(ctx, kind, stmt, handle, read: _Read, method_name: str, extraction) -> str | None:
    index = read.origin.node.slice[0].slice.value
    one = read.origin.node.with_deep_changes(read.origin.node.slice[0].slice, value=cst.Name(read.key))
    if extraction is not None:
        steps = [cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name(read.name))], one)]),
                 *extraction.body]
        result = extraction.result
    else:
        steps, result = [], one
    if kind == "with":
        item = stmt.items[0]
        if steps:
            body = [cst.With(items=[item], body=cst.IndentedBlock([steps[0]])), *steps[1:],
                    cst.SimpleStatementLine([cst.Return(result)])]
        else:
            body = [cst.With(items=[item], body=cst.IndentedBlock([cst.SimpleStatementLine([cst.Return(result)])]))]
    elif kind == "assign":
        body = [stmt.with_changes(leading_lines=[]), *steps, cst.SimpleStatementLine([cst.Return(result)])]
    else:
        body = [*steps, cst.SimpleStatementLine([cst.Return(result)])]
    if isinstance(index, cst.Name) and index.value == read.key:
        return None
    method = cst.FunctionDef(
        name=cst.Name(method_name),
        params=cst.Parameters([cst.Param(cst.Name("self")), cst.Param(cst.Name(read.key))]),
        body=cst.IndentedBlock(body=body),
        leading_lines=[cst.EmptyLine(indent=False)],
    )
    return cst.Module([]).code_for_node(method)


def _unopened(ctx, func, kind, stmt, handle_name, replacements: dict[int, str]) -> list[Edit] | None:
    """The batch's reads replaced by the packs' rows, and the file no longer opened."""
    if kind != "with":
        edits = [replace(ctx, node, text) for node in walk(func.body) if (text := replacements.get(id(node)))]
        if kind == "assign":
            from seqlint.analysis.hoisting import deletion_edits, statement_lines

            closes = [s for node in walk(func.body) if isinstance(node, cst.Name) and node.value == handle_name
                      and (s := _close_call(ctx, node)) is not None]
            edits += deletion_edits(ctx, [statement_lines(ctx, s) for s in (stmt, *closes)])
        return edits
    # `with open(...) as f:` goes; its body, the reads replaced, moves out one level.
    start, end = ctx.position(stmt)
    lines = source_lines(ctx.source)
    first_body = _start(ctx, stmt.body.body[0])[0]
    outer = indentation_of(ctx, stmt)
    inner = indentation_of(ctx, stmt.body.body[0])
    if first_body == start.row or not inner.startswith(outer) or inner == outer:
        return None
    # Replacements inside the body, applied from the last to the first on the body's text.
    text_lines = lines[first_body - 1:end.row]
    offsets, total = [], 0
    for line in text_lines:
        offsets.append(total)
        total += len(line)
    text = "".join(text_lines)
    spans = []
    for node in walk(stmt.body):
        if (new := replacements.get(id(node))) is not None:
            s, e = ctx.position(node)
            spans.append((offsets[s.row - first_body] + s.column - 1, offsets[e.row - first_body] + e.column - 1, new))
    for begin, stop, new in sorted(spans, reverse=True):
        text = text[:begin] + new + text[stop:]
    width = len(inner) - len(outer)
    dedented = "".join(line[width:] if line.startswith(inner[:width]) or not line.strip() else line
                       for line in text.splitlines(keepends=True))
    if not dedented.endswith("\n"):
        dedented += "\n"
    return [Edit(dedented, line_start(start.row), line_start(end.row + 1))]
