"""Turning a file read per sample into a packed cache of the user's own loader: SEQ201's fix.

A loop (or comprehension) over the batch's keys (paths or ids) reads one file per key and computes a
sample from it:

    for i, ID in enumerate(list_IDs_temp):
        X[i,] = np.load('data/' + ID + '.npy')

The sample is a function of the key alone: the read, and the deterministic steps after it that the
model (batchflow.py, regions.py) proves to read nothing but that sample and settings. That function
becomes a method of the class, `__init__` ends with `self._samples = seqkit.pack_samples(self._load,
self.list_IDs)` (every key of the dataset: what the batch's keys are picked from), and the loop reads
the packed rows instead:

- a batch filled row by row in an `enumerate` loop: one `X[:len(keys)] = self._samples.take(keys)`
  before the loop, the loop keeping whatever else it does (labels);
- a comprehension whose element is the sample: `list(self._samples.take(keys))`;
- otherwise (a list appended to, random augmentation after the sample): the sample's expression becomes
  `self._samples.take([key])[0]`.

The values are exactly what the user's code produced: the same code runs, once per key, in
seqkit.pack_samples. The fix is always unsafe: it writes a cache to disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import libcst as cst

from seqlint.analysis.batchflow import flow_tables, only_permuted
from seqlint.analysis.hotpath import bound_names, is_self_attr, root_name, variables, walk
from seqlint.analysis.regions import SAMPLE, CleanSteps, is_file
from seqlint.analysis.values import Op, Value
from seqlint.findings import Edit
from seqlint.fixes import indentation_of, insert, line_start, replace


@dataclass
class Pack:
    """One packed cache: `self.<attribute> = seqkit.pack_samples(self.<method_name>, <keys>)`."""

    attribute: str                # where the pack is kept: `_samples`
    method_name: str
    keys: str                     # code of every key of the dataset: `self.list_IDs`
    method: str                   # code of the loader method (class-body indentation)


@dataclass
class PackPlan:
    """How to pack the per-sample reads behind one file read of a Sequence class."""

    read: Value                   # the file read (the call a SEQ201 finding points at)
    packs: list[Pack]
    edits: list[Edit] = field(default_factory=list)
    init_lines: list[str] = field(default_factory=list)  # after the pack_samples lines (label arrays)


def plan_packs(ctx, seq, flow, clean: CleanSteps) -> dict[int, PackPlan]:
    """read value id -> how to pack it, for the reads seqlint can turn into a packed loader."""
    from seqlint.analysis.packing_handles import handle_plans

    plans: dict[int, PackPlan] = {}
    init = seq.own_methods.get("__init__")
    if init is None or not isinstance(init.body, cst.IndentedBlock) or any(
        isinstance(n, (cst.Return, cst.Yield)) for n in walk(init.body)
    ):
        return plans
    used_names = set(seq.methods) | _attributes(seq)
    for read in flow.origins:
        if not is_file(read) or read.op is not Op.READ or id(read) in plans:
            continue
        plan = _plan(ctx, seq, flow, clean, read, used_names)
        if plan is not None:
            plans[id(read)] = plan
            used_names |= {name for pack in plan.packs for name in (pack.method_name, pack.attribute)}
    for plan in handle_plans(ctx, seq, flow, clean, used_names):
        plans.setdefault(id(plan.read), plan)
    return plans


def _attributes(seq) -> set[str]:
    found = set()
    for method in seq.methods.values():
        for node in walk(method.body):
            if (name := is_self_attr(node)) is not None:
                found.add(name)
    return found


def _plan(ctx, seq, flow, clean, read: Value, used_names: set[str]) -> PackPlan | None:
    frontier = _sample_frontier(ctx, flow, clean, read)
    if frontier is None:
        return None
    func = frontier.func
    if not isinstance(func, cst.FunctionDef) or not isinstance(frontier.node, cst.BaseExpression):
        return None
    loop = _enclosing_loop(ctx, frontier.node, func)
    if loop is None:
        return None
    header = _loop_key(loop)
    if header is None:
        return None
    index_name, key, keys_node, parts = header
    key_names = set(parts) or {key}
    key_code = f"({', '.join(parts)})" if parts else key  # one key, in the loop's own names
    frontier_stmt = ctx.statement_of(frontier.node)
    padded = _padded_row(ctx, flow, func, loop, frontier, index_name)
    if padded is not None:
        # the sample is the whole row the batch array ends up with: padding included
        frontier_stmt, frontier = padded.stmt, _At(padded.stmt.body[0].value)
    elif _is_list(frontier.node):
        return None  # a list per sample (ragged tokens) left as it is: not rows of one array
    elif (named := _named_fill(ctx, flow, frontier, index_name)) is not None:
        # `img = load_img(path)` then `x[j] = img`: the fill is where the sample goes into the batch
        frontier_stmt, frontier = named, _At(named.body[0].value)
    body = _loop_body(loop)
    opened = _opened_around(ctx, frontier_stmt, body)
    if opened is None:
        return None
    anchor = opened if opened is not True else frontier_stmt
    slice_stmts = _backward_slice(ctx, flow, anchor, anchor if opened is not True else frontier.node, body)
    if slice_stmts is None:
        return None
    moved, kept = slice_stmts
    # Everything the loader reads besides its key: constants the class or module holds.
    loader_stmts = sorted(moved + kept, key=lambda s: _start(ctx, s))
    if not _reads_only_key_and_settings(ctx, flow, func, loop, loader_stmts, frontier.node, key_names):
        return None
    if opened is not True:
        # `with open(path) as fh: batch.append(self.encode(fh.read()))`: the loader opens the file the
        # same way and returns the sample from inside the block; the block leaves the loop
        inside = [s for s in opened.body.body if s is not frontier_stmt]
        if not _reads_only_key_and_settings(ctx, flow, func, loop, [*loader_stmts, *inside], opened.items[0].item,
                                            key_names):
            return None
        moved = [*moved, opened]
    if padded is not None and not all(_reads_only_key_and_settings(ctx, flow, func, loop, [], part, key_names)
                                      for part in padded.row_parts()):
        return None
    keys = _all_keys(ctx, flow, keys_node) or (None if parts else _indexed_keys(flow, key, [*loader_stmts, frontier.node]))
    if keys is None:
        return None
    name = _name_of(frontier_stmt, frontier.node, loader_stmts)
    method_name = _unique(f"_load_{name}", used_names)
    attribute = _unique("_samples" if name == "sample" else f"_{name}_samples", used_names | {method_name})
    after = _after_the_stack(ctx, flow, clean, read, loop, key_names)
    extra_body, result = [], frontier.node
    if padded is not None:
        row = _fresh_name(f"{padded.array}_row", [*loader_stmts, frontier.node])
        extra_body = [cst.parse_statement(f"{row} = {padded.row_allocation(ctx)}\n"),
                      cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(padded.row_target(row))], frontier.node)])]
        result = cst.Name(row)
    elif after is not None:
        # Element-wise steps on the stacked samples run on each sample inside the loader instead.
        extra_body = [cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name(after.param))], frontier.node)]),
                      *after.body]
        result = after.result
    if opened is not True:
        if extra_body:
            return None
        block = opened.with_changes(body=opened.body.with_changes(
            body=[*inside, cst.SimpleStatementLine([cst.Return(result)])]), leading_lines=[])
        method = _loader_method(method_name, key, [*loader_stmts, block], None, parts)
    else:
        method = _loader_method(method_name, key, [*loader_stmts, *extra_body], result, parts)
    labels = [] if parts else _label_lookups(ctx, flow, func, loop, index_name, key, used_names | {method_name, attribute})
    rewrite = _loop_edits(ctx, flow, func, loop, index_name, key_code, keys_node, frontier, frontier_stmt, moved, attribute,
                          labels, whole_rows=padded is not None)
    if rewrite is None:
        return None
    edits, gathered = rewrite
    if not gathered:
        labels = []  # looked up per key as before: no label array to build
    if after is not None:
        from seqlint.analysis.hoisting import deletion_edits

        merged = _merge_edits(ctx, loop, edits, after.edits)
        if merged is None:
            return None
        edits = merged + deletion_edits(ctx, after.deleted)
    init_lines = [
        f"self.{name} = np.asarray([self.{attr}[k] for k in self.{attribute}.keys]{', dtype=' + dtype if dtype else ''})"
        for _stmt, _target, attr, _alloc, dtype, name in labels
    ]
    return PackPlan(read, [Pack(attribute, method_name, keys, method)], edits, init_lines)


def _label_lookups(ctx, flow, func, loop, index_name, key, used: set[str]) -> list[tuple]:
    """`y[i] = self.labels[ID]` in the loop, into `y = np.empty(n, dtype=int)` made before it: the
    labels of every key become one array built once, `self._labels_by_key`, and `y` picks its rows.
    (stmt, y, attribute, allocation statement, dtype code, new attribute name) for each."""
    if not isinstance(loop, cst.For) or index_name is None:
        return []
    found = []
    top = list(func.body.body)
    for stmt in _loop_body(loop):
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)
                and len(stmt.body[0].targets) == 1):
            continue
        target, value = stmt.body[0].targets[0].target, stmt.body[0].value
        if not (isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name) and len(target.slice) == 1
                and isinstance(target.slice[0].slice, cst.Index) and isinstance(target.slice[0].slice.value, cst.Name)
                and target.slice[0].slice.value.value == index_name):
            continue
        if not (isinstance(value, cst.Subscript) and (attr := is_self_attr(value.value)) is not None and len(value.slice) == 1
                and isinstance(value.slice[0].slice, cst.Index) and isinstance(value.slice[0].slice.value, cst.Name)
                and value.slice[0].slice.value.value == key) or attr in flow.volatile:
            continue
        name = target.value.value
        allocations = [s for s in top if isinstance(s, cst.SimpleStatementLine) and len(s.body) == 1
                       and isinstance(s.body[0], cst.Assign) and len(s.body[0].targets) == 1
                       and isinstance(s.body[0].targets[0].target, cst.Name) and s.body[0].targets[0].target.value == name
                       and _start(ctx, s) < _start(ctx, loop)]
        if len(allocations) != 1 or not isinstance(allocations[0].body[0].value, cst.Call):
            continue
        alloc = allocations[0].body[0].value
        if ctx.qualified_name(alloc.func) not in ("numpy.empty", "numpy.zeros", "numpy.ones"):
            continue
        writes = [n for n in walk(func.body) if isinstance(n, cst.AssignTarget) and root_name(n.target) == name]
        if len(writes) != 2:
            continue  # the allocation and this row's write, nothing else
        dtype = next((ctx.code(a.value) for a in alloc.args if a.keyword is not None and a.keyword.value == "dtype"), None)
        new = _unique(f"_{attr.lstrip('_')}_by_key", used)
        used = used | {new}
        found.append((stmt, name, attr, allocations[0], dtype, new))
    return found


def _merge_edits(ctx, loop, loop_edits: list[Edit], other: list[Edit]) -> list[Edit] | None:
    """The loop's rewrite and the rewrite of the statement holding it (which moved its element-wise
    steps out) as non-overlapping edits: the loop's new code goes inside the statement's."""
    start, end = ctx.position(loop)
    old = ctx.code(loop)
    merged = list(other)
    for edit in loop_edits:
        holders = [o for o in merged if o.location <= start and end <= o.end_location and o.content]
        if not holders:
            if any(o.location < end and start < o.end_location for o in merged):
                return None
            merged.append(edit)
            continue
        holder = holders[0]
        if edit.location != start or edit.end_location != end or holder.content.count(old) != 1:
            return None
        merged[merged.index(holder)] = Edit(holder.content.replace(old, edit.content), holder.location,
                                            holder.end_location)
    return merged


def _after_the_stack(ctx, flow, clean, read: Value, loop, key_names: set[str]):
    """The element-wise steps applied to the stacked samples right after the comprehension that reads
    them (`np.stack([np.load(p) for p in paths]).astype(np.float32)`, then `waves /= 32768.0`), as an
    extraction of hoisting.py: they commute with the stacking (no dtype cast in between)."""
    from seqlint.analysis.hoisting import _Extraction
    from seqlint.analysis.regions import regions

    if not isinstance(loop, (cst.ListComp, cst.GeneratorExp)):
        return None
    for region in regions(flow, clean):
        if region.origin is not read or region.gather is None:
            continue
        if not any(v.node is loop for v in region.gathering):
            continue
        if any(v.op in (Op.WRITE, Op.LOOP) for v in region.gathering):
            return None
        extraction = _Extraction.build(ctx, flow, clean, region)
        if extraction is not None and extraction.trailing_only and not key_names & variables(
            cst.Module(body=[*extraction.body, cst.SimpleStatementLine([cst.Return(extraction.result)])])
        ):
            return extraction
    return None


def _sample_frontier(ctx, flow, clean, read: Value) -> Value | None:
    """The last value computed from one sample read, deterministically, before the batch gathers it
    (a list, a filled array, a stack) or randomness touches it: the read itself, a helper reading it
    (`self.read(path)`), or a step after either. Follows the read into and out of helpers."""
    current = read
    for _ in range(10_000):
        users = _uses(flow, current)
        steps = [u for u in users if _sample_step(flow, u, read)]
        if len(steps) == len(users) > 1:
            # `(sig - sig.mean(0)) / sig.std(0)`: several steps use it, and meet again further on
            joined = _where_paths_meet(flow, current, read)
            if joined is None:
                break
            current = joined
            continue
        if len(steps) != 1 or len(users) != 1:
            break
        current = steps[0]
    while current.op is Op.PARAM:
        return None  # handed to a helper that does nothing with it the model can follow
    return current if id(current) in flow.live else None


def _picks_keys(origin: Value) -> bool:
    """`self.index[lo:hi]`: an origin that only picks the batch's keys (ids, paths, positions)."""
    return origin.op is Op.SUBSCRIPT and "rows-only" in origin.flags and origin.base is not None \
        and origin.base.attr is not None


def _uses(flow, value: Value) -> list[Value]:
    """The values computed from `value` that matter: not a tuple a helper returns for its caller to
    unpack, nor the value a name keeps after a loop when nothing reads it (`img` once a second loop
    reassigns it)."""
    return [u for u in value.users
            if not _unpacked_return(u) and not (u.op is Op.JOIN and id(u) not in flow.live)]


def _where_paths_meet(flow, start: Value, read: Value, limit: int = 64) -> Value | None:
    """The first value every path of sample steps from `start` goes through, when nothing computed
    between them is used anywhere else."""
    order = {id(v): i for i, v in enumerate(flow.values)}
    between: dict[int, Value] = {}
    pending = _uses(flow, start)
    while pending and len(between) < limit:
        # the value computed first among those pending: when it is the only one left, every path is in it
        pending.sort(key=lambda v: order.get(id(v), 1 << 30))
        if len({id(v) for v in pending}) == 1:
            meet = pending[0]
            joined = _sample_step(flow, meet, read) and all(id(u) in between or u is start for u in meet.data_ins())
            return meet if joined else None
        value = pending.pop(0)
        if id(value) in between:
            continue
        if not _sample_step(flow, value, read):
            return None
        between[id(value)] = value
        users = _uses(flow, value)
        if not users:
            return None  # a path ends without joining the others
        pending += users
    return None


def _sample_step(flow, value: Value, read: Value) -> bool:
    """A step on the read sample alone: the user's own code, packed as it is, so any deterministic step
    qualifies (a DataFrame's `ffill()` as well as a known preprocessing call, a comprehension over the
    sample's own tokens), but no random one. Besides the read it may use the key itself (`labels[k]`
    with `k` one of the keys): the loader has it too, and what else it reads is checked when it is built."""
    if not (value.data and read in value.origins and not value.random):
        return False
    if any(o is not read and not _picks_keys(o) for o in value.origins):
        return False
    if value.op is Op.PACK and isinstance(value.node, (cst.ListComp, cst.GeneratorExp)):
        # over the sample's parts (`[vocab.get(w) for w in text.split()]`) or over positions in it
        # (`[signal[k * hop:k * hop + n] for k in range(frames)]`), not over the batch's keys
        parts = flow.values_at(value.node.for_in.iter)
        return bool(parts) and all(not p.data or p.origins == frozenset((read,)) for p in parts)
    if value.op is Op.JOIN:
        # the branches of an `if` on the sample (`signal[:n]` or `np.pad(signal, ...)`), not a batch
        # being built up in a loop
        return not any(u.op in (Op.WRITE, Op.LOOP) or (u.op is Op.PACK and not u.data) for u in value.ins)
    if "stack" in value.flags and value.op is Op.CALL:
        # stacking what a per-sample comprehension made (a sample's frames) is part of the sample
        made = value.data_ins()
        return bool(made) and all(u.op is Op.PACK and _sample_step(flow, u, read) for u in made)
    # (a part of the sample picked by a varying index, `signal[k * hop:...]`, is a step too: what the
    # index reads is checked when the loader is built, which must read only its key and settings)
    return value.op not in (Op.PACK, Op.WRITE, Op.LOOP, Op.JOIN, Op.RANDOM, Op.OPAQUE) and "stack" not in value.flags


def _unpacked_return(value: Value) -> bool:
    """A helper's returned tuple that its call site unpacks (`img, mask = self._load_pair(name)`): the
    model binds each name to its element, so the tuple as a whole goes nowhere."""
    return value.op is Op.PACK and bool(value.users) and all(
        u.op is Op.HELPER and not u.users for u in value.users
    )


def _returned_by_helper(flow, value: Value) -> Value | None:
    for user in value.users:
        if user.op is Op.HELPER and user.ins and user.ins[0] is value:
            return user
    return None


def _enclosing_loop(ctx, node, func):
    for ancestor in ctx.ancestors(node):
        if ancestor is func:
            return None
        if isinstance(ancestor, (cst.For, cst.ListComp, cst.GeneratorExp)):
            return ancestor
    return None


def _loop_key(loop) -> tuple[str | None, str, cst.BaseExpression, tuple[str, ...]] | None:
    """(index name, key name, the iterated keys, the names a key unpacks into) of `for i, key in
    enumerate(keys)`, `for key in keys`, `[... for key in keys]`, and with a key that is a tuple
    unpacked by the loop (`for subject, k in items`): then the key's name is "key" and the last item
    names its parts."""
    if isinstance(loop, cst.For):
        target, iterable = loop.target, loop.iter
        if loop.orelse is not None or loop.asynchronous is not None:
            return None
    else:
        clause = loop.for_in
        if clause.inner_for_in is not None or clause.ifs:
            return None
        target, iterable = clause.target, clause.iter
    index = None
    if (
        isinstance(target, cst.Tuple) and len(target.elements) == 2 and isinstance(iterable, cst.Call)
        and isinstance(iterable.func, cst.Name) and iterable.func.value == "enumerate" and len(iterable.args) == 1
        and isinstance(target.elements[0].value, cst.Name)
    ):
        index, target, iterable = target.elements[0].value.value, target.elements[1].value, iterable.args[0].value
    if isinstance(target, cst.Name):
        return index, target.value, iterable, ()
    if isinstance(target, (cst.Tuple, cst.List)) and target.elements and all(
        isinstance(e.value, cst.Name) and not isinstance(e, cst.StarredElement) for e in target.elements
    ):
        parts = tuple(e.value.value for e in target.elements)
        name = "key"
        while name in parts or name == index:
            name += "_"
        return index, name, iterable, parts
    return None


def _all_keys(ctx, flow, keys_node) -> str | None:
    """`self.list_IDs` when the batch's keys are picked from it (`self.list_IDs[k] for k in indexes`,
    `self.paths[lo:hi]`, `self.files[idx]`): the dataset's every key, for the pack."""
    for value in flow.values_at(keys_node):
        found = keys_attribute(flow, value)
        if found is not None:
            return found
    return _zipped_keys(ctx, flow, keys_node)


def _zipped_keys(ctx, flow, keys_node) -> str | None:
    """`list(zip(self.images, self.masks))` when the batch's keys are `zip(a, b)` of picks made alike
    (the same index, in the same function) from attributes that keep their keys and their order for
    as long as the generator lives: shuffled apart, they would pair other keys. A pair the pack does
    not hold is refused by `take` at run time, never served as another."""
    if not (isinstance(keys_node, cst.Call) and ctx.qualified_name(keys_node.func) == "zip"
            and len(keys_node.args) >= 2 and all(a.keyword is None and not a.star for a in keys_node.args)):
        return None
    attributes, picks = [], set()
    for arg in keys_node.args:
        pick = next((p for v in flow.values_at(arg.value) if (p := _keys_pick(v, 0)) is not None), None)
        if pick is None or pick.base.attr[0] in flow.volatile:
            return None
        attributes.append(f"self.{pick.base.attr[0]}")
        picks.add((id(pick.func), ctx.code(pick.node.slice[0].slice), _picked_over(ctx, pick)))
    if len(picks) != 1 or len(set(attributes)) != len(attributes):
        return None
    return f"list(zip({', '.join(attributes)}))"


def keys_attribute(flow, value: Value) -> str | None:
    """`self.ids` when `value` (a batch's keys) is picked from that attribute, and the attribute holds
    the same keys for as long as the generator lives (per-epoch shuffles only reorder them)."""
    pick = _keys_pick(value, 0)
    if pick is None:
        return None
    attribute = pick.base.attr[0]
    if attribute in flow.volatile and not only_permuted(flow.ctx, flow.seq, attribute):
        return None
    return f"self.{attribute}"


def _keys_pick(value: Value, depth: int) -> Value | None:
    """The subscript that picks the batch's keys from one attribute, followed back from `value`."""
    if depth > 8:
        return None
    if value.op is Op.SUBSCRIPT and value.origin and value.base is not None and value.base.attr is not None \
            and len(value.base.attr) == 1 and "rows-only" in value.flags and isinstance(value.node, cst.Subscript):
        return value
    if value.op is Op.PACK and value.element is not None:
        return _keys_pick(value.element, depth + 1)
    if value.op in (Op.PARAM, Op.JOIN, Op.HELPER) and value.ins and len({id(v) for v in value.ins}) == 1:
        return _keys_pick(value.ins[0], depth + 1)
    if value.op is Op.CALL and value.ins and ("copy" in value.flags or value.qual in flow_tables().reordering_calls):
        return _keys_pick(value.ins[0], depth + 1)
    return None


def _picked_over(ctx, pick: Value) -> str:
    """The code of what a pick's index runs over when it sits in a comprehension (`for k in indexes`),
    so that two picks by the same name `k` over different index lists do not count as alike."""
    node = pick.func
    code = ""
    if pick.index is not None and isinstance(pick.index.node, cst.Name):
        for comp in (n for n in walk(node) if isinstance(n, cst.CompFor)):
            if isinstance(comp.target, cst.Name) and comp.target.value == pick.index.node.value:
                code += ctx.code(comp.iter) + ";"
    return code


def _loop_body(loop) -> list:
    if isinstance(loop, cst.For) and isinstance(loop.body, cst.IndentedBlock):
        return list(loop.body.body)
    return []


def _backward_slice(ctx, flow, frontier_stmt, frontier_node, body: list):
    """(statements of the loop body that compute the sample and nothing else, statements that compute
    it and something else too) before the frontier's statement; None when the sample needs something
    the loop computes another way."""
    if not body:
        return [], []  # a comprehension: the element is the whole computation
    if all(frontier_stmt is not s for s in body):
        return None
    position = next(i for i, s in enumerate(body) if s is frontier_stmt)
    needed = variables(frontier_node)
    picked = []
    for stmt in reversed(body[:position]):
        bound = bound_names(stmt)
        if not bound & needed:
            continue
        if isinstance(stmt, cst.BaseCompoundStatement) and not isinstance(stmt, cst.With):
            return None
        needed |= variables(stmt) - bound
        picked.append(stmt)
    # A statement moves when only the loader's own code reads what it binds; it is copied when the loop
    # still needs it (`path` also gives the label).
    moved, kept = [], []
    for stmt in picked:
        inside = [frontier_stmt, *picked]
        (moved if _read_only_within(ctx, flow, stmt, inside) else kept).append(stmt)
    return moved, kept


def _read_only_within(ctx, flow, stmt, statements) -> bool:
    values = []
    for node in walk(stmt):
        if isinstance(node, cst.Assign):
            values += flow.values_at(node.value)
        elif isinstance(node, cst.WithItem):
            values += flow.values_at(node.item)
    # `a, b = self.helper(k)` binds the elements of the tuple the helper returns
    values += [element for value in values if value.op is Op.HELPER and not value.users
               for returned in value.ins if returned.op is Op.PACK for element in returned.ins]
    for value in values:
        for user in flow.readers(value):
            if _unpacked_return(user) or (user.op is Op.JOIN and id(user) not in flow.live):
                continue
            # a helper's parameter is used where the helper is called
            where = user.site.node if user.op is Op.PARAM and user.site is not None else user.node
            if where is not None and not any(ctx.contains(s, where) for s in statements):
                return False
    return bool(values)


def _reads_only_key_and_settings(ctx, flow, func, loop, stmts, frontier_node, key_names: set[str]) -> bool:
    """The loader reads its key, `self` attributes fixed after `__init__`, module names and names
    bound inside it: nothing else of the function (it runs once per key, outside any batch)."""
    bound = set(key_names)
    for stmt in stmts:
        bound |= bound_names(stmt)
    outside = {p.name.value for p in (*func.params.params, *func.params.kwonly_params)} - {"self"}
    for node in walk(func.body):
        if isinstance(node, (cst.AssignTarget, cst.For, cst.CompFor)):
            outside |= {n.value for n in walk(getattr(node, "target")) if isinstance(n, cst.Name)}
    for part in (*stmts, frontier_node):
        for name in variables(part):
            if name in bound or name == "self":
                continue
            if name in outside:
                values = [v for node in walk(part) if isinstance(node, cst.Name) and node.value == name
                          for v in flow.values_at(node)]
                if not values or not all(v.const for v in values):
                    return False
    for part in (*stmts, frontier_node):
        for node in walk(part):
            if (attr := is_self_attr(node)) is not None and attr in flow.volatile:
                return False
    return True


def _start(ctx, node):
    position = ctx.position(node)[0]
    return (position.row, position.column)


def _name_of(frontier_stmt, frontier_node, loader_stmts: list) -> str:
    """A name for the samples: the variable they are assigned to (`images[i] = ...`), else the one the
    loader's result is computed from (`img` in `x[i] = img / 255.0`), else "sample"."""
    candidates = []
    if isinstance(frontier_stmt, cst.SimpleStatementLine) and isinstance(frontier_stmt.body[0], cst.Assign):
        target = frontier_stmt.body[0].targets[0].target
        while isinstance(target, cst.Subscript):
            target = target.value
        if isinstance(target, cst.Name):
            candidates.append(target.value)
    bound = set().union(*(bound_names(s) for s in loader_stmts)) if loader_stmts else set()
    candidates += sorted(variables(frontier_node) & bound)
    for candidate in candidates:
        if len(candidate) > 2:
            return re.sub(r"[^0-9A-Za-z_]", "_", candidate.lower()).strip("_") or "sample"
    return "sample"


def _unique(name: str, used: set[str]) -> str:
    while name in used:
        name += "_"
    return name


def _opened_around(ctx, frontier_stmt, body: list):
    """True when the sample's statement is a statement of the loop body; the `with` block holding it
    when it sits in one (`with open(p) as fh: batch.append(...)`), directly, after statements that only
    serve it; None otherwise."""
    if not body or any(frontier_stmt is s for s in body):
        return True
    block = ctx.parent(ctx.parent(frontier_stmt))
    if not (isinstance(block, cst.With) and any(block is s for s in body) and len(block.items) == 1
            and block.asynchronous is None and isinstance(block.body, cst.IndentedBlock)):
        return None
    statements = list(block.body.body)
    if statements[-1] is not frontier_stmt:
        return None
    return block


def _loader_method(name: str, key: str, stmts: list, result, parts: tuple[str, ...] = ()) -> str:
    body = [s.with_changes(leading_lines=[l for l in s.leading_lines if l.comment is not None])
            if hasattr(s, "leading_lines") else s for s in stmts]
    if parts:
        body.insert(0, cst.parse_statement(f"{', '.join(parts)} = {key}\n"))
    if result is not None:
        body.append(cst.SimpleStatementLine([cst.Return(result)]))
    method = cst.FunctionDef(
        name=cst.Name(name),
        params=cst.Parameters([cst.Param(cst.Name("self")), cst.Param(cst.Name(key))]),
        body=cst.IndentedBlock(body=body),
        leading_lines=[cst.EmptyLine(indent=False)],
    )
    return cst.Module([]).code_for_node(method)


def _loop_edits(ctx, flow, func, loop, index_name, key, keys_node, frontier, frontier_stmt, moved, attribute,
                labels=(), whole_rows=False):
    """The rewrite of the loop: one gather for a batch filled row by row, `list(take(keys))` for a
    comprehension, one row per key otherwise."""
    from seqlint.analysis.hoisting import deletion_edits, statement_lines

    keys_code = ctx.code(keys_node)
    take = f"self.{attribute}.take"
    if isinstance(loop, (cst.ListComp, cst.GeneratorExp)):
        if loop.elt is not frontier.node:
            return [replace(ctx, frontier.node, f"{take}([{key}])[0]")], False
        return [replace(ctx, loop, f"list({take}({keys_code}))")], False
    fill = fill_target(frontier_stmt, frontier.node, index_name)
    if fill is not None and whole_rows:
        fill = fill[0], []  # the packed rows are whole padded rows
    elif whole_rows:
        return None
    if fill is not None and isinstance(keys_node, (cst.Name, cst.Attribute)) and index_name is not None:
        array, rest = fill
        rest_code = "".join(f", {ctx.code(r)}" for r in rest)
        lines = [f"{array}[:len({keys_code}){rest_code}] = {take}({keys_code})"]
        # label arrays built once: one pick per batch, in place of the allocation and the loop's writes
        lines += [f"{y} = self.{new}[self.{attribute}.rows({keys_code})]" for _s, y, _a, _alloc, _d, new in labels]
        indent = indentation_of(ctx, loop)
        first, last = ctx.position(loop)
        text = "".join(f"{indent}{line}\n" for line in lines)
        body = _loop_body(loop)
        gone = [frontier_stmt, *moved, *(s for s, *_rest in labels)]
        edits = deletion_edits(ctx, [statement_lines(ctx, alloc) for _s, _y, _a, alloc, _d, _n in labels])
        if all(any(s is g for g in gone) for s in body):
            # nothing left in the loop: the gathers take its place (its comments stay above them)
            edits.append(Edit(text, line_start(first.row), line_start(last.row + 1)))
        else:
            edits.append(insert(line_start(first.row), text))
            edits += deletion_edits(ctx, [statement_lines(ctx, s) for s in gone])
        return edits, True
    appended = _appended_list(ctx, func, loop, frontier_stmt, frontier.node, moved, index_name)
    if appended is not None:
        # `specs = []` + a loop appending one sample per key: the samples of all the keys at once
        start_stmt, name = appended
        first, _ = ctx.position(start_stmt)
        _, last = ctx.position(loop)
        text = f"{indentation_of(ctx, start_stmt)}{name} = list({take}({keys_code}))\n"
        return [Edit(text, line_start(first.row), line_start(last.row + 1))], False
    if any(ctx.contains(m, frontier_stmt) for m in moved):
        return None  # the sample's statement is inside a block that leaves the loop
    edits = [replace(ctx, frontier.node, f"{take}([{key}])[0]")]
    if moved:
        edits += deletion_edits(ctx, [statement_lines(ctx, s) for s in moved])
    return edits, False


def _appended_list(ctx, func, loop, frontier_stmt, value_node, moved, index_name):
    """(`specs = []`, "specs") when the statement right before the loop makes an empty list and the loop
    does nothing but append the sample to it (the statements computing the sample moving out)."""
    if not isinstance(loop, cst.For) or index_name is not None:
        return None
    body = _loop_body(loop)
    if not all(any(s is m for m in (frontier_stmt, *moved)) for s in body):
        return None
    if not (isinstance(frontier_stmt, cst.SimpleStatementLine) and len(frontier_stmt.body) == 1
            and isinstance(frontier_stmt.body[0], cst.Expr) and isinstance(call := frontier_stmt.body[0].value, cst.Call)
            and isinstance(call.func, cst.Attribute) and call.func.attr.value == "append"
            and isinstance(call.func.value, cst.Name) and len(call.args) == 1 and call.args[0].value is value_node):
        return None
    name = call.func.value.value
    holder = ctx.parent(loop)
    siblings = list(getattr(holder, "body", ()))
    position = next((i for i, s in enumerate(siblings) if s is loop), None)
    if not position:
        return None
    before = siblings[position - 1]
    if not (isinstance(before, cst.SimpleStatementLine) and len(before.body) == 1 and isinstance(before.body[0], cst.Assign)
            and len(before.body[0].targets) == 1 and isinstance(before.body[0].targets[0].target, cst.Name)
            and before.body[0].targets[0].target.value == name and isinstance(before.body[0].value, cst.List)
            and not before.body[0].value.elements):
        return None
    return before, name


def _is_list(node) -> bool:
    """A list written out (`[...]`, a comprehension), or a slice of one: a Python list per sample."""
    while isinstance(node, cst.Subscript):
        node = node.value
    return isinstance(node, (cst.List, cst.ListComp, cst.Tuple, cst.Dict, cst.Set))


@dataclass
class _At:
    """Where the sample is, when it is not one value of the model (the name a padding write reads)."""

    node: cst.BaseExpression


@dataclass
class _Padded:
    """`x[i, :len(ids)] = ids` into `x = np.full((len(keys), maxlen), PAD, dtype=np.int32)`: each row of
    `x` is the allocation's fill with the sample written over its start."""

    stmt: cst.CSTNode             # the write
    value: Value                  # what is written (the sample)
    array: str
    allocation: cst.Call
    rest: list                    # the write's index after the row: [`:len(ids)`]

    def row_parts(self) -> list:
        """What one row's allocation reads: the shape after the batch axis, the fill, the dtype."""
        return [e.value for e in self.allocation.args[0].value.elements[1:]] + [a.value for a in self.allocation.args[1:]]

    def row_allocation(self, ctx) -> str:
        shape = self.allocation.args[0].value
        rest = [e.value for e in shape.elements[1:]]
        others = "".join(f", {a.keyword.value + '=' if a.keyword else ''}{ctx.code(a.value)}"
                         for a in self.allocation.args[1:])
        inner = ", ".join(ctx.code(r) for r in rest) + ("," if len(rest) == 1 else "")
        return f"{ctx.code(self.allocation.func)}(({inner}){others})"

    def row_target(self, row: str) -> cst.BaseExpression:
        return cst.Subscript(cst.Name(row), [cst.SubscriptElement(cst.Index(r) if not isinstance(r, cst.Slice) else r)
                                             for r in self.rest])


def _padded_row(ctx, flow, func, loop, frontier: Value, index_name) -> _Padded | None:
    """The padding write of a ragged sample into a batch array filled with a constant, if that is what
    the loop does with it."""
    if index_name is None or not isinstance(loop, cst.For) or len(frontier.users) != 1:
        return None
    write = frontier.users[0]
    if write.op is not Op.WRITE:
        return None
    stmt = ctx.statement_of(write.node)
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)
            and len(stmt.body[0].targets) == 1 and all(s is not stmt for s in ()) and ctx.contains(loop, stmt)):
        return None
    assign = stmt.body[0]
    if frontier not in flow.values_at(assign.value):
        return None
    fill = fill_target(stmt, assign.value, index_name)
    if fill is None or not fill[1]:
        return None
    array, rest = fill
    written = variables(assign.value)
    if not (_is_list(frontier.node) or any(variables(r) & written for r in rest)):
        return None  # an array written into a fixed part of the row (`y[i, ..., 0] = m`): a plain fill
    allocations = [s for s in func.body.body if isinstance(s, cst.SimpleStatementLine) and len(s.body) == 1
                   and isinstance(s.body[0], cst.Assign) and len(s.body[0].targets) == 1
                   and isinstance(s.body[0].targets[0].target, cst.Name) and s.body[0].targets[0].target.value == array]
    if len(allocations) != 1 or _start(ctx, allocations[0]) > _start(ctx, loop):
        return None
    call = allocations[0].body[0].value
    if not (isinstance(call, cst.Call) and ctx.qualified_name(call.func) in ("numpy.full", "numpy.zeros", "numpy.ones")
            and call.args and call.args[0].keyword is None and isinstance(call.args[0].value, cst.Tuple)
            and len(call.args[0].value.elements) >= 2 and not any(a.star for a in call.args)):
        return None
    # nothing else writes into the array
    writes = [n for n in walk(func.body) if isinstance(n, (cst.AssignTarget, cst.AugAssign)) and
              root_name(n.target) == array]
    if len(writes) != 2:
        return None
    rest_nodes = [e.slice for e in stmt.body[0].targets[0].target.slice[1:]]
    rest_nodes = [r.value if isinstance(r, cst.Index) else r for r in rest_nodes]
    padded = _Padded(stmt, frontier, array, call, rest_nodes)
    # the row's allocation moves into the loader: it may read settings, not the function's locals
    local = {p.name.value for p in (*func.params.params, *func.params.kwonly_params)} | {
        n.value for node in walk(func.body) if isinstance(node, (cst.AssignTarget, cst.For, cst.WithItem))
        for n in walk(getattr(node, "target", None) or getattr(node, "asname", None) or cst.Name("_"))
        if isinstance(n, cst.Name)}
    if any(variables(part) & (local - {"self"}) for part in padded.row_parts()):
        return None
    return padded


def _named_fill(ctx, flow, frontier: Value, index_name):
    """The statement `X[i] = img` when the sample goes into the batch array through a name."""
    uses = _uses(flow, frontier)
    if index_name is None or len(uses) != 1 or uses[0].op is not Op.WRITE:
        return None
    stmt = ctx.statement_of(uses[0].node)
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)):
        return None
    value = stmt.body[0].value
    if not isinstance(value, cst.Name) or frontier not in flow.values_at(value):
        return None
    return stmt if fill_target(stmt, value, index_name) is not None else None


def _indexed_keys(flow, key: str, parts: list) -> str | None:
    """`range(len(self.paths))` when the loader uses its key only to index one attribute that no batch or
    epoch changes (`path = self.paths[k]`): the keys are that attribute's positions."""
    attributes = set()
    for part in parts:
        for node in walk(part):
            if isinstance(node, cst.Subscript) and (attr := is_self_attr(node.value)) is not None \
                    and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index) \
                    and isinstance(node.slice[0].slice.value, cst.Name) and node.slice[0].slice.value.value == key:
                attributes.add(attr)
    uses = sum(1 for part in parts for node in walk(part) if isinstance(node, cst.Name) and node.value == key)
    indexed = sum(1 for part in parts for node in walk(part) if isinstance(node, cst.Subscript)
                  and is_self_attr(node.value) in attributes and isinstance(node.slice[0].slice, cst.Index)
                  and isinstance(node.slice[0].slice.value, cst.Name) and node.slice[0].slice.value.value == key)
    if len(attributes) != 1 or uses != indexed:
        return None
    (attribute,) = attributes
    if attribute in flow.volatile:
        return None  # reordered per epoch: position k would name another sample
    return f"range(len(self.{attribute}))"


def _fresh_name(base: str, parts: list) -> str:
    taken = set()
    for part in parts:
        taken |= variables(part) | (bound_names(part) if isinstance(part, cst.BaseStatement) else set())
    name = base
    while name in taken:
        name += "_"
    return name


def fill_target(stmt, value_node, index_name):
    """("X", [rest of the index]) for `X[i] = sample`, `X[i,] = sample`, `X[i, ..., 0] = sample`."""
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)):
        return None
    assign = stmt.body[0]
    if assign.value is not value_node or len(assign.targets) != 1 or index_name is None:
        return None
    target = assign.targets[0].target
    if not (isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name)):
        return None
    first = target.slice[0].slice
    if not (isinstance(first, cst.Index) and isinstance(first.value, cst.Name) and first.value.value == index_name):
        return None
    rest = [e.slice.value if isinstance(e.slice, cst.Index) else e.slice for e in target.slice[1:]]
    if any(index_name in variables(r) for r in rest):
        return None
    return target.value.value, rest
