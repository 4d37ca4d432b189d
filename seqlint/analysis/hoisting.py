"""Turning regions of deterministic steps into code that runs once: SEQ101's fix.

For a dataset attribute `self.x` whose rows every per-batch use sends through the same region
(regions.py), the region's code moves into a function `f`, `__init__` ends with
`self.x = seqkit.preprocess_once(f, self.x)`, and per-batch code reads the rows of the result where it
used to compute `f` of them: the article's Example 2, whatever shape the code had (steps inline in one
expression, over several statements, in a helper, in a loop over rows, per sample in a loop over ids).

The code is sliced by statements. In the function holding the source, a statement is
- a **chain** statement when all it does is compute region values (`x = x / 255.`, `b[:] = b * 2`, a
  loop filling rows): it moves into `f`;
- the **consumer** when it uses the region's last value inside something else (`return x / 255., y`,
  `batch.append(img / 255.)`): only that expression moves, replaced by the source's rows.
Names `f` needs besides its parameter (a local `scale = 1 / 255.`) are copied into it when they hold
constants. Anything else (a step inside a compound statement's header, a name rebound between the read
and the use, ...) means no fix: code that cannot be moved exactly is left alone.

Whether the fix is safe (the batches provably stay the same) is decided here too: see `Hoist.safe`.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field

import libcst as cst

from seqlint.analysis.hotpath import Phase, assignment_targets, bound_names, is_self_attr, variables, walk
from seqlint.analysis.batchflow import flow_tables
from seqlint.analysis.regions import SAMPLE, CleanSteps, Region, elementwise, is_file, location, pads_rows, regions
from seqlint.analysis.regions import trailing as trailing_step
from seqlint.analysis.tables import elementwise_arithmetic, elementwise_numpy
from seqlint.analysis.rowwise import RowWiseProof, is_module_name, vectorised_body
from seqlint.analysis.values import Op, Value
from seqlint.findings import Edit
from seqlint.fixes import indentation_of, is_docstring, line_start, replace, source_lines


@dataclass
class Hoist:
    """How to compute one dataset attribute's preprocessing once."""

    location: tuple
    function: str                 # what preprocess_once gets: `self.prep`, a lambda, or a new method's name
    method: str | None            # the code of a new method holding the steps (class-body indentation)
    per_sample: bool              # the steps work on one sample: applied row by row
    as_array: bool                # the attribute's type is unknown: hand preprocess_once np.asarray(...)
    safe: bool
    reason: str                   # why it is not safe, when it is not
    edits: list[Edit] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    new_attribute: str | None = None  # the result goes here, not into the attribute itself
    # The steps applied to the whole attribute at once, without preprocess_once: for rows that may be
    # ragged Python lists (token ids before pad_sequences), which preprocess_once cannot take.
    direct: str | None = None

    @property
    def source(self) -> str:
        return attribute_code(self.location)

    @property
    def target(self) -> str:
        return f"self.{self.new_attribute}" if self.new_attribute else self.source


def attribute_code(loc: tuple) -> str:
    text = f"self.{loc[0]}"
    for part in loc[1:]:
        text += part if isinstance(part, str) and part.startswith(".") else f"[{part!r}]"
    return text


# ---------------------------------------------------------------------------------------------------
# Planning


def plan_hoists(ctx, seq, flow, clean: CleanSteps) -> dict[tuple, Hoist]:
    """One Hoist per dataset attribute whose per-batch reads can be preprocessed once.

    When every read of the attribute goes through the same steps, the attribute itself is overwritten
    with the result (the article's Example 2). When reads differ (windows scaled one way, targets
    another; raw rows also used as they are), the largest group of reads that agree gets a new private
    attribute of its own and the other reads keep the original: memory for one more array, no change of
    what the rest of the class sees."""
    found = regions(flow, clean)
    by_location: dict[tuple, dict[int, list[Region]]] = {}
    for region in found:
        loc = location(region.origin)
        if loc is not None:
            by_location.setdefault(loc, {}).setdefault(id(region.origin), []).append(region)
    plans = {}
    for loc, by_origin in by_location.items():
        if not _hoistable_location(seq, flow, loc):
            continue
        reads = [v for v in flow.values if v.origin and location(v) == loc]
        # Every way each read can be extracted (a region, or a shorter run of it), then the function the
        # most reads agree on: windows and their targets scaled alike share one preprocessed array even
        # when one of them goes on with a cast of its own.
        options: dict[int, list[_Extraction]] = {}
        for key, candidates in by_origin.items():
            # a fork reads a new attribute, named once the plan is known (`_plan_new_attribute`)
            built = [e for r in candidates
                     if (e := _Extraction.build(ctx, flow, clean, r, target="_new" if r.fork else None)) is not None]
            if built:
                options[key] = built
        if not options:
            continue
        groups: dict[str, dict[int, _Extraction]] = {}
        for key, built in options.items():
            for extraction in built:
                groups.setdefault(extraction.signature, {}).setdefault(key, extraction)
        chosen = list(max(groups.values(), key=len).values())  # the first, longest, on a tie
        if len(chosen) == len(reads) and not any(e.region.fork for e in chosen):
            plan = _plan(ctx, seq, flow, loc, chosen, target=None)
        else:
            plan = _plan_new_attribute(ctx, seq, flow, clean, loc, chosen)
        if plan is not None:
            plans[loc] = plan
    return plans


def _hoistable_location(seq, flow, loc: tuple) -> bool:
    if len(loc) > 2 or (len(loc) == 2 and not isinstance(loc[1], str)) or any(
        isinstance(p, str) and p.startswith(".") for p in loc[1:]
    ):
        return False  # only `self.x` and `self.data["key"]` can be reassigned as a whole
    if loc[0] in flow.volatile:
        return False
    init = seq.own_methods.get("__init__")
    return not (init is None or not isinstance(init.body, cst.IndentedBlock) or any(
        isinstance(n, (cst.Return, cst.Yield)) for n in walk(init.body)
    ) or not _assigns_attribute(init, loc[0]))


def _plan_new_attribute(ctx, seq, flow, clean: CleanSteps, loc: tuple, chosen: list) -> Hoist | None:
    """Preprocess into `self._<attr>_preprocessed`, read by the agreeing reads only."""
    if len(loc) != 1:
        return None
    name = f"_{loc[0].lstrip('_')}_preprocessed"
    while name in seq.methods or _assigns_attribute(seq.own_methods["__init__"], name):
        name += "_"
    rebuilt = []
    for extraction in chosen:
        again = _Extraction.build(ctx, flow, clean, extraction.region, target=name)
        if again is None:
            return None
        rebuilt.append(again)
    return _plan(ctx, seq, flow, loc, rebuilt, target=name)


def _plan(ctx, seq, flow, loc: tuple, extractions: list, target: str | None) -> Hoist | None:
    first = extractions[0]
    edits = [edit for e in extractions for edit in e.edits]
    edits += deletion_edits(ctx, [span for e in extractions for span in e.deleted])
    safe, reason = first.safety(ctx, seq, flow, loc)
    if target is None and safe:
        shape_kept = all(elementwise(v) for e in extractions for v in e.region.steps)
        other = _other_uses(ctx, seq, flow, loc, shape_kept)
        if other:
            safe, reason = False, f"`{attribute_code(loc)}` is also read by {other}, which would see the preprocessed rows"
    function, method = first.function_code(ctx, seq, loc)
    direct = first.direct_code(function, attribute_code(loc)) if first.pads_ragged_rows(ctx) else None
    return Hoist(
        location=loc,
        function=function,
        method=method,
        per_sample=first.unit == SAMPLE and not first.trailing_only,
        as_array=first.as_array(flow, loc),
        safe=safe,
        reason=reason,
        edits=edits,
        regions=[e.region for e in extractions],
        new_attribute=target,
        direct=direct,
    )


def _assigns_attribute(init: cst.FunctionDef, attr: str) -> bool:
    for node in walk(init.body):
        for target in assignment_targets(node):
            for sub in walk(target):
                if is_self_attr(sub) == attr:
                    return True
    return False


def _other_uses(ctx, seq, flow, loc: tuple, shape_kept: bool = False) -> str | None:
    """A method (other than `__init__`) reading the attribute other than through the hoisted reads, its
    length or `.shape[0]` (or, when every step keeps the shape, any of `.shape` and `.ndim`)."""
    allowed = set()
    for value in flow.values:
        if value.origin and location(value) == loc:
            for node in walk(value.node):
                allowed.add(id(node))
    for name, method in seq.methods.items():
        if name == "__init__":
            continue
        for node in walk(method.body):
            if not (isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self"
                    and node.attr.value == loc[0]) or id(node) in allowed:
                continue
            parent = ctx.parent(node)
            if isinstance(parent, cst.Arg):
                call = ctx.parent(parent)
                if isinstance(call, cst.Call) and ctx.qualified_name(call.func) == "len":
                    continue
            if isinstance(parent, cst.Attribute) and parent.attr.value in ("shape", "ndim") and shape_kept:
                continue  # element-wise steps: the preprocessed array has the raw one's shape
            if isinstance(parent, cst.Attribute) and parent.attr.value == "shape":
                sub = ctx.parent(parent)
                if isinstance(sub, cst.Subscript) and ctx.code(sub).replace(" ", "").endswith(".shape[0]"):
                    continue
            return f"`{name}`"
    return None


# ---------------------------------------------------------------------------------------------------
# Slicing one region out of its function


def _stmt_of(ctx, node):
    if isinstance(node, (cst.For, cst.SimpleStatementLine)):
        return node
    return ctx.statement_of(node)


def _start(ctx, node):
    position = ctx.position(node)[0]
    return (position.row, position.column)


def _binds(stmt, name: str) -> bool:
    return name in bound_names(stmt)


class _Swap(cst.CSTTransformer):
    """Replace one node (by identity) with new code."""

    def __init__(self, swaps: dict[int, cst.CSTNode]):
        self.swaps = swaps

    def on_leave(self, original, updated):
        new = self.swaps.get(id(original))
        if new is None:
            return updated
        if isinstance(new, cst.BaseExpression) and hasattr(updated, "lpar"):
            return new.with_changes(lpar=updated.lpar, rpar=updated.rpar) if hasattr(new, "lpar") else new
        return new


class _Rename(cst.CSTTransformer):
    """Rename a variable (not attributes or keywords of the same name)."""

    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def leave_Attribute(self, original, updated):
        return updated.with_changes(attr=original.attr)

    def leave_Arg(self, original, updated):
        return updated.with_changes(keyword=original.keyword)

    def leave_Name(self, original, updated):
        return updated.with_changes(value=self.new) if original.value == self.old else updated


@dataclass
class _Extraction:
    region: Region
    holder: str                  # how the rows are read at the frontier: a name, or the read's own code
    param: str                   # the hoisted function's parameter
    body: list                   # statements of the hoisted function (origin replaced by the parameter)
    result: cst.BaseExpression   # what it returns
    edits: list[Edit]
    deleted: list[tuple[int, int]]  # line spans of the statements that move
    unit: str | None
    trailing_only: bool
    # The per-batch code wrote into the dataset's own rows (`x = self.x[a:b]; x /= 255.`, a view): every
    # epoch changed them again, where preprocessed once they change once.
    writes_source: bool = False

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def build(cls, ctx, flow, clean: CleanSteps, region: Region, target: str | None = None) -> _Extraction | None:
        """The slice of the region's function to move; with `target`, the reads of the region take their
        rows from `self.<target>` instead of the attribute (see plan_hoists)."""
        func, origin, frontier = region.func, region.origin, region.frontier
        if func is None or not isinstance(func, cst.FunctionDef) or not region.steps:
            return None
        step_ids = {id(v) for v in region.steps}
        origin_node = region.entry
        statements: list = []
        for value in region.steps:
            stmt = _stmt_of(ctx, value.node)
            if stmt is None or not ctx.contains(func, stmt):
                return None
            if all(stmt is not s for s in statements):
                statements.append(stmt)
        # A loop computing rows moves whole: the statements of its body are part of it.
        statements = [s for s in statements if not any(o is not s and _within(ctx, s, o) for o in statements)]
        statements.sort(key=lambda s: _start(ctx, s))
        chain, frontier_stmt, consumer = [], None, None
        bound_name = None
        for stmt in statements:
            kind, name = _classify(ctx, flow, stmt, step_ids, frontier)
            if kind == "chain":
                chain.append(stmt)
            elif kind == "frontier":
                frontier_stmt, bound_name = stmt, name
            elif kind == "consumer" and consumer is None:
                consumer = stmt
            else:
                return None
        if (frontier_stmt is None) == (consumer is None):
            return None
        if consumer is not None:
            inside = {id(n) for n in walk(frontier.node)}
            for value in region.steps:
                if _within(ctx, value.node, consumer) and id(value.node) not in inside:
                    return None
        last = frontier_stmt if frontier_stmt is not None else consumer
        if any(_start(ctx, s) > _start(ctx, last) for s in chain):
            return None
        moving = [*chain, *([frontier_stmt] if frontier_stmt is not None else [])]
        read_into = ctx.parent(origin_node)
        origin_name = origin_node.value if isinstance(origin_node, cst.Name) else read_into.targets[0].target.value if (
            isinstance(read_into, cst.Assign) and read_into.value is origin_node and len(read_into.targets) == 1
            and isinstance(read_into.targets[0].target, cst.Name)
        ) else None
        # A frontier inside a statement that stays (`return x, eye[y]`) reads names of its own.
        reading = [*moving, *([frontier.node] if consumer is not None else [])]
        support = _supporting_definitions(ctx, flow, clean, func, origin, origin_node, reading, last, origin_name,
                                          bound_name)
        if support is None:
            return None
        copied, moved = support
        chain = sorted([*chain, *moved], key=lambda s: _start(ctx, s))
        # Sizes and shapes read from the rows stay right only inside the moved code (or as row counts).
        kept_reads = [u for v in (origin, *region.steps) if v is not frontier
                      for u in flow.readers(v) if not u.data]
        for user in kept_reads:
            if user.node is None or _counts_rows_node(user.node):
                continue
            if not any(_within(ctx, user.node, m) for m in (*chain, *([frontier_stmt] if frontier_stmt else []))):
                return None
        # How the rows are read where the frontier was.
        origin_stmt = _stmt_of(ctx, origin_node)
        parent = ctx.parent(origin_node)
        holder = None
        if isinstance(origin_node, cst.Name):
            # The rows came back from a helper (`X, y = self.get_batch(i)`): read through the name.
            origin_stmt = _binding_before(ctx, func, origin_node)
            if origin_stmt is None or _rebound_between(ctx, func, origin_node.value, origin_stmt, last, chain):
                return None
            parent = None
        if (
            isinstance(parent, cst.Assign) and parent.value is origin_node and len(parent.targets) == 1
            and isinstance(parent.targets[0].target, cst.Name) and all(origin_stmt is not s for s in chain)
            and origin_stmt is not last
        ):
            holder = parent.targets[0].target.value
            if _rebound_between(ctx, func, holder, origin_stmt, last, chain):
                holder = None
        if isinstance(origin_node, cst.Name):
            holder = origin_node.value
        inline = holder is None
        if inline:
            names = {n.value for n in walk(origin_node) if isinstance(n, cst.Name)} - {"self"}
            if any(_rebound_between(ctx, func, name, origin_stmt, last, chain) for name in names):
                return None
            holder = ctx.code(origin_node)
            if target is not None:
                holder = _read_of(ctx, origin, origin_node, target)
                if holder is None:
                    return None
        read = holder  # what the frontier becomes
        if region.fork:
            # the raw rows stay as they are read; the frontier reads the new attribute's rows afresh,
            # with the same index, which must mean the same rows there
            names = {n.value for n in walk(origin_node) if isinstance(n, cst.Name)} - {"self"}
            read = _read_of(ctx, origin, origin_node, target) if target is not None and origin_stmt is not None else None
            if read is None or any(_rebound_between(ctx, func, name, origin_stmt, last, chain) for name in names):
                return None
        loc = location(origin)
        base = loc[-1] if loc and isinstance(loc[-1], str) and loc[-1].isidentifier() else "rows"
        param = holder if not inline else _fresh(base, [*chain, *copied, *([frontier_stmt] if frontier_stmt else []),
                                                         *([frontier.node] if consumer is not None else [])])
        swaps = {id(origin_node): cst.Name(param)}
        cast = _gather_cast(ctx, region)
        if isinstance(cast, cst.BaseExpression):
            # the steps ran on rows the gather had cast (`np.array([...], dtype=np.float32)`): moved
            # before it, they cast first, and the gather's own cast then changes nothing
            swaps[id(origin_node)] = cst.Call(cst.Attribute(cst.Name(param), cst.Name("astype")), [cst.Arg(cast)])
        body = [s.visit(_Swap(swaps)) for s in chain]
        edits: list[Edit] = []
        # Kept code writing into the rows in place needs its own copy: the cached array is read-only.
        copy = ".copy()" if _mutated_later(flow, frontier) and not _picked_by_index_array(origin) else ""
        deleted: list[tuple[int, int]] = []
        # When the name the rows were read into serves only the moved code, the read takes the frontier's
        # name instead (`encoded = self.waves[...]`), rather than keeping `encoded = batch`.
        renamed = (
            not inline and not copy and frontier_stmt is not None and bound_name != holder
            and all(any(r is m or _within(ctx, r, m) for m in (*chain, frontier_stmt))
                    for r in _reads(ctx, func, holder) if not _within(ctx, r, origin_stmt))
            and not _rebound_between(ctx, func, bound_name, origin_stmt, last, chain)
            and not any(_within(ctx, r, origin_stmt) for r in _reads(ctx, func, bound_name))
        )
        renamed = renamed and parent is not None and not region.fork
        # `pad_sequences` both pads the gathered rows and stacks them into one array: moved before the
        # gather, the stacking stays behind as `np.asarray(rows)` (a list of padded rows otherwise).
        stacks = region.gather is not None and any(pads_rows(v) for v in region.steps)
        wrap = str
        if stacks:
            numpy_name = next((name for name, module in ctx.imports.items() if module == "numpy"), None)
            if numpy_name is None:
                return None
            renamed = False
            wrap = lambda text: f"{numpy_name}.asarray({text})"  # noqa: E731
        if renamed:
            edits.append(replace(ctx, parent.targets[0].target, bound_name))
        # `batch_x = self.x[s].copy()` ... `batch_x[:] = ...`: the read stays where it was, as
        # `batch_x = self.x[s]`, rather than moving down to where the last step was.
        early = None
        if inline and frontier_stmt is not None and any(origin_stmt is c for c in chain) and _binds(origin_stmt, bound_name) \
                and not region.fork:
            early = origin_stmt
        kept_read = holder == bound_name and not region.fork  # the rows are read into the frontier's name
        if frontier_stmt is not None and isinstance(frontier_stmt, cst.SimpleStatementLine) and isinstance(
            frontier_stmt.body[0], cst.Assign
        ) and frontier_stmt.body[0].value is frontier.node:
            result = frontier.node.visit(_Swap(swaps))
            if (kept_read or renamed) and not copy and not stacks:
                deleted.append(statement_lines(ctx, frontier_stmt))
            else:
                edits.append(replace(ctx, frontier.node, wrap(read + copy)))
        elif frontier_stmt is not None:
            body.append(frontier_stmt.visit(_Swap(swaps)))
            result = cst.Name(bound_name)
            if (kept_read or renamed) and not copy and not stacks:
                deleted.append(statement_lines(ctx, frontier_stmt))
            elif early is not None:
                deleted.append(statement_lines(ctx, frontier_stmt))
                edits.append(_replace_statement(ctx, early, f"{bound_name} = {wrap(read + copy)}"))
                chain = [c for c in chain if c is not early]
            else:
                edits.append(_replace_statement(ctx, frontier_stmt, f"{bound_name} = {wrap(read + copy)}"))
        else:
            result = frontier.node.visit(_Swap(swaps))
            edits.append(replace(ctx, frontier.node, wrap(read + copy)))
        deleted += [statement_lines(ctx, stmt) for stmt in chain]
        deleted += [statement_lines(ctx, stmt) for stmt in _served_only(ctx, func, copied, reading)]
        if target is not None and not inline and not region.fork:
            # the read stays where it is and takes its rows from the new attribute
            base = origin.base.node if origin.base is not None else None
            if not (isinstance(base, cst.Attribute) and is_self_attr(base) == location(origin)[0]):
                return None
            if any(_within(ctx, base, m) for m in chain):
                return None
            edits.append(replace(ctx, base, f"self.{target}"))
        unit = region.unit
        trailing = all(trailing_step(v) for v in region.steps)
        writes = _writes_into_param(body, param)
        if writes:
            # preprocess_once hands over read-only rows (and they are the user's data): in-place steps
            # work on a copy, as the per-batch code did on its batch
            body = [cst.parse_statement(f"{param} = {param}.copy()\n"), *body]
        writes_source = writes and origin.op is Op.SUBSCRIPT and not is_file(origin) and not _picked_by_index_array(origin)
        return cls(region, holder, param, [*copied, *body], result, edits, deleted, unit, trailing, writes_source)

    # -- the function ---------------------------------------------------------------------------------
    @property
    def signature(self) -> str:
        """The moved code up to the names of its own variables: two reads of one attribute preprocessed
        by the same code (`left = f(x[a])`, `right = f(x[b])`) share one hoisted function."""
        module = cst.Module(body=[*self.body, cst.SimpleStatementLine([cst.Return(self.result)])])
        names = [self.param]
        for node in walk(module):
            if isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name) and node.target.value not in names:
                names.append(node.target.value)
        for position, name in enumerate(names):
            module = module.visit(_Rename(name, f"__v{position}"))
        return re.sub(r"\s+", " ", module.code) + f"|{self.unit}"

    def helper_reference(self) -> str | None:
        """`self.prep` when the whole function is one call of a helper on the rows."""
        result = self.result
        if self.body or not isinstance(result, cst.Call) or len(result.args) != 1:
            return None
        arg = result.args[0]
        if arg.keyword is not None or arg.star or not (isinstance(arg.value, cst.Name) and arg.value.value == self.param):
            return None
        value = self.region.frontier
        if value.op is not Op.HELPER:
            return None
        if isinstance(value.callee, cst.FunctionDef) and any(
            isinstance(s, cst.FunctionDef) and s is value.callee for s in self.body
        ):
            return None
        return cst.Module([]).code_for_node(result.func)

    def pads_ragged_rows(self, ctx) -> bool:
        """A step makes ragged rows one width (`pad_sequences(seqs, maxlen=...)`): the rows before it may
        be Python lists of different lengths."""
        from seqlint.analysis.rowwise import call_table

        widths = call_table().fixed_width
        return any(v.op is Op.CALL and v.qual in widths for v in self.region.steps)

    def direct_code(self, function: str, source: str) -> str:
        """The steps applied to `source` itself: the lambda's expression, or a call of the function."""
        if function.startswith("lambda ") and not self.body:
            names = {id(n): cst.parse_expression(source) for n in walk(self.result)
                     if isinstance(n, cst.Name) and n.value == self.param}
            return cst.Module([]).code_for_node(self.result.visit(_Swap(names)))
        return f"{function}({source})"

    def function_code(self, ctx, seq, loc: tuple) -> tuple[str, str | None]:
        reference = self.helper_reference()
        if reference is not None:
            return reference, None
        if not self.body:
            result = self.result
            if self.param != "rows":
                result = result.visit(_Rename(self.param, _fresh("rows", [result])))
            param = "rows" if self.param == "rows" else _fresh("rows", [self.result])
            return f"lambda {param}: {cst.Module([]).code_for_node(result)}", None
        name = _method_name(seq, loc)
        ret = cst.SimpleStatementLine([cst.Return(self.result)])
        body = [s.with_changes(leading_lines=[l for l in s.leading_lines if l.comment is not None])
                if hasattr(s, "leading_lines") else s for s in self.body]
        method = cst.FunctionDef(
            name=cst.Name(name),
            params=cst.Parameters([cst.Param(cst.Name("self")), cst.Param(cst.Name(self.param))]),
            body=cst.IndentedBlock(body=[*body, ret]),
            leading_lines=[cst.EmptyLine(indent=False)],
        )
        return f"self.{name}", cst.Module([]).code_for_node(method)

    def as_array(self, flow, loc: tuple) -> bool:
        """preprocess_once takes one array: an attribute of unknown type goes through np.asarray (a no-op
        for arrays and memmaps; a list of equal-shaped samples becomes one array)."""
        container = flow.kinds.attribute_container(loc[0]) if len(loc) == 1 else None
        per_sample = self.unit == SAMPLE and not self.trailing_only  # (then x is indexed as it is)
        return not per_sample and container != "ndarray"

    def safety(self, ctx, seq, flow, loc: tuple) -> tuple[bool, str]:
        """Safe when each row's result is provably the same computed per batch or once for all rows.

        An attribute set from a constructor parameter is taken to hold an array (a NumPy array, memmap,
        tensor or DataFrame), as the numeric steps on its rows already require: then indexing the array
        made of it picks the same values. It is not safe when the class makes it a Python list, or
        when the steps use its rows with `*` or `+` and an int or list, which would repeat or extend a
        list instead of computing."""
        container = flow.kinds.attribute_container(loc[0]) if len(loc) == 1 else None
        if self.writes_source:
            return False, (f"the per-batch code changes `{attribute_code(loc)}`'s own rows in place (a view of them), "
                           "again in every epoch; preprocessed once, they change once")
        if self.unit == SAMPLE:
            return True, ""  # applied to each row as the per-batch code applied it to each sample
        if container == "list" or (container is None and self.list_arithmetic(seq)):
            return False, f"`{attribute_code(loc)}` may be a Python list, on which `*` and `+` mean something else"
        region = self.region
        picks_within = region.origin.op is Op.SUBSCRIPT and region.origin.node is not None and \
            len(region.origin.node.slice) > 1
        if region.gather is not None or picks_within:
            # Steps moved before a gather, or onto whole rows of which the read picks a part (a window,
            # a column): they commute with the picking only when they are element-wise with scalar
            # settings, and when no gather casts the values into an array of another dtype.
            # (padding each row to a fixed width commutes with gathering whole rows, not with picks)
            padding = [v for v in region.steps if pads_rows(v)] if not picks_within else []
            if not all(trailing_step(v) or v in padding for v in region.steps):
                return False, "the steps are not all element-wise"
            if any(v.op in (Op.LOOP, Op.WRITE) and v.element is None for v in region.gathering):
                return False, "the rows are copied into a preallocated array, whose dtype may differ"
            if _gather_cast(ctx, region) is False:
                return False, "the gather casts the rows to a dtype seqlint cannot carry over"
            if not all(scalar_setting(ctx, flow, u) for v in region.steps if v not in padding
                       for u in v.ins if not u.data):
                return False, "a setting of the steps may not be a single number"
            return True, ""
        if self.unit is None:
            if not self.trailing_only:
                return False, "seqlint cannot tell whether the rows are one sample or a batch"
            return True, ""
        if not self.proven_rowwise(ctx, seq, flow):
            return False, "the steps are not proven to compute each row from that row alone"
        return True, ""

    def list_arithmetic(self, seq) -> bool:
        """The rows themselves meet `*` or `+` with an int or a list: list repetition or concatenation if
        the attribute were a list."""
        target = self._helper_def(seq)
        body = list(target.body.body) if target is not None else [*self.body, self.result]
        names = {self.param, self._helper_param(target)}
        for stmt in body:
            for node in walk(stmt):
                if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Multiply, cst.Add)):
                    sides = (node.left, node.right)
                    for mine, other in (sides, sides[::-1]):
                        if isinstance(mine, cst.Name) and mine.value in names and isinstance(
                            other, (cst.Integer, cst.List, cst.ListComp, cst.Tuple)
                        ):
                            return True
        return False

    def _helper_def(self, seq):
        """The helper the whole function calls on the rows (referenced, or copied along), if that is
        all it does: its body is what the proofs look at."""
        result, value = self.result, self.region.frontier
        if value.op is not Op.HELPER or not isinstance(value.callee, cst.FunctionDef):
            return None
        if any(not isinstance(s, cst.FunctionDef) for s in self.body):
            return None
        if not (isinstance(result, cst.Call) and len(result.args) == 1 and isinstance(result.args[0].value, cst.Name)
                and result.args[0].value.value == self.param and result.args[0].keyword is None):
            return None
        return value.callee

    @staticmethod
    def _helper_param(target) -> str | None:
        if target is None:
            return None
        params = [p.name.value for p in target.params.params]
        if params and params[0] == "self":
            params = params[1:]
        return params[0] if params else None

    def proven_rowwise(self, ctx, seq, flow) -> bool:
        consts = {a for a in _init_attributes(seq) if a not in flow.volatile}
        functions = ctx.batch_functions(seq, (Phase.BATCH, Phase.EPOCH))
        nested = {s.name.value: s for s in self.body if isinstance(s, cst.FunctionDef)}
        helpers = _helper_resolver(ctx, seq, nested)
        target = self._helper_def(seq)
        if target is not None:
            return _helper_proof(ctx, seq, target, consts, functions, helpers, flow.table_attributes)
        proof = RowWiseProof(ctx, self.param, consts, functions, helpers, table_attrs=flow.table_attributes)
        body = vectorised_body([s for s in self.body if not isinstance(s, cst.FunctionDef)], self.param)
        if not proof.statements(body):
            return False
        rows = proof.rows(self.result)
        return rows is not None and rows.filled


def _classify(ctx, flow, stmt, step_ids: set[int], frontier: Value) -> tuple[str, str | None]:
    """("chain" | "frontier" | "consumer" | "other", the name the statement binds)."""
    if isinstance(stmt, cst.For):
        values = [v for v in flow.values_at(stmt) if id(v) in step_ids]
        names = {_loop_written(stmt)}
        if len(values) != 1 or None in names:
            return "other", None
        return ("frontier" if values[0] is frontier else "chain"), names.pop()
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return "other", None
    small = stmt.body[0]
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target = small.targets[0].target
        if isinstance(target, cst.Name):
            values = [v for v in flow.values_at(small.value) if id(v) in step_ids]
            if values:
                return ("frontier" if values[0] is frontier else "chain"), target.value
            return "consumer", None
        if isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name):
            values = [v for v in flow.values_at(target) if id(v) in step_ids]
            if values:
                return ("frontier" if values[0] is frontier else "chain"), target.value.value
            return "consumer", None
        return "consumer", None
    if isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name):
        values = [v for v in flow.values_at(small) if id(v) in step_ids]
        if values:
            return ("frontier" if values[0] is frontier else "chain"), small.target.value
    if isinstance(small, (cst.Expr, cst.Return, cst.Assign, cst.AugAssign)):
        return "consumer", None
    return "other", None


def _loop_written(loop: cst.For) -> str | None:
    names = set()
    for node in walk(loop.body):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Subscript) and isinstance(target.target.value, cst.Name):
                    names.add(target.target.value.value)
    return names.pop() if len(names) == 1 else None


def _binding_before(ctx, func, name: cst.Name):
    """The last statement of `func` before the name's use that binds it."""
    use = _start(ctx, name)
    found = None
    for stmt in _all_statements(func):
        if isinstance(stmt, cst.SimpleStatementLine) and _start(ctx, stmt) < use and _binds(stmt, name.value):
            found = stmt
    return found


def _rebound_between(ctx, func, name: str, first, last, moved) -> bool:
    """`name` is bound by a statement of `func` that stays, after `first` and before `last`."""
    start, end = _start(ctx, first), _start(ctx, last)
    for stmt in _all_statements(func):
        if any(stmt is m for m in moved) or stmt is first or stmt is last:
            continue
        if start < _start(ctx, stmt) < end and isinstance(stmt, cst.SimpleStatementLine) and _binds(stmt, name):
            return True
        if start < _start(ctx, stmt) < end and isinstance(stmt, (cst.For, cst.With)) and _binds(
            stmt.target if isinstance(stmt, cst.For) else stmt, name
        ):
            return True
    return False


def _all_statements(func):
    for node in walk(func.body):
        if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            yield node


def _fresh(base: str, statements) -> str:
    """`base`, or `base_`, ... : a variable name none of the statements uses (attribute and keyword names
    of the same spelling do not count)."""
    used = set()
    for stmt in statements:
        used |= variables(stmt)
    name = base
    while name in used:
        name += "_"
    return name


def statement_lines(ctx, stmt) -> tuple[int, int]:
    """The lines a statement fills, with the comment lines right above it (they describe it)."""
    start, end = ctx.position(stmt)
    first = start.row
    for line in reversed(getattr(stmt, "leading_lines", ())):
        if line.comment is None:
            break
        first -= 1
    return first, end.row


def _writes_into_param(body: list, param: str) -> bool:
    """Whether the statements write into `param`'s elements (`param[i] = ...`, `param[:] *= 2`) before
    rebinding the name to something else."""
    for stmt in body:
        for node in walk(stmt):
            for target in assignment_targets(node):
                if isinstance(target, cst.Subscript):
                    root = target.value
                    while isinstance(root, cst.Subscript):
                        root = root.value
                    if isinstance(root, cst.Name) and root.value == param:
                        return True
                elif isinstance(target, cst.Name) and target.value == param and isinstance(node, cst.AugAssign):
                    return True  # `x += 1` on an array writes into it
        if isinstance(stmt, cst.SimpleStatementLine) and any(
            isinstance(small, cst.Assign) and any(isinstance(t.target, cst.Name) and t.target.value == param
                                                  for t in small.targets) for small in stmt.body
        ):
            return False
    return False


def deletion_edits(ctx, spans: list[tuple[int, int]]) -> list[Edit]:
    """Edits removing whole lines, adjacent spans merged (one fix's edits must not overlap), and a
    blank line dropped where removing code would leave two in a row."""
    lines = [line.rstrip("\r\n") for line in source_lines(ctx.source)]
    merged: list[list[int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    edits = []
    for first, last in merged:
        before_blank = first == 1 or not lines[first - 2].strip()
        after_blank = last < len(lines) and not lines[last].strip()
        opens_block = first > 1 and lines[first - 2].rstrip().endswith(":")
        if (before_blank or opens_block) and after_blank:
            last += 1
        edits.append(Edit("", line_start(first), line_start(last + 1)))
    return edits


def _replace_statement(ctx, stmt, code: str) -> Edit:
    """A statement (and the comment lines right above it, which move with it) replaced by one line."""
    indent = indentation_of(ctx, stmt)
    first, last = statement_lines(ctx, stmt)
    return Edit(f"{indent}{code}\n", line_start(first), line_start(last + 1))


def _picked_by_index_array(origin: Value) -> bool:
    """`self.x[idx]` with `idx` many positions (an index array or list, not a slice): NumPy's advanced
    indexing returns a new array, which kept code may write into without a copy."""
    node, index = origin.node, origin.index
    return (
        origin.op is Op.SUBSCRIPT and isinstance(node, cst.Subscript) and len(node.slice) == 1
        and isinstance(node.slice[0].slice, cst.Index) and index is not None
        and index.scalar is False and "slice" not in index.flags
    )


def _mutated_later(flow, value: Value) -> bool:
    """Kept code writes into the frontier's array in place (`x += noise`, `x[0] = ...`): reading it from
    the read-only cached array then needs a copy. The array is followed through the points where control
    flow meets (a loop writing rows under an `if`), where it is still the same array."""
    stack, seen = [value], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for user in flow.readers(current):
            if user.op is Op.WRITE and user.ins[0] is current:
                return True
            if user.op is Op.OPERATOR and isinstance(user.node, cst.AugAssign):
                return True
            if user.op is Op.CALL and user.base is current and user.qual and user.qual[1:] in ("sort", "fill", "resize", "put"):
                return True
            if user.op is Op.JOIN:
                stack.append(user)
    return False


def _supporting_definitions(ctx, flow, clean: CleanSteps, func, origin: Value, entry, moving: list, last,
                            rows_name: str | None, result_name: str | None):
    """The local names the moved code reads besides its rows, and how they come along: (statements to
    copy: constants, statements to move: sizes and fresh arrays computed from the same rows, such as
    `encoded = np.empty_like(batch)`); None when one can do neither (a parameter of the function, a
    value read elsewhere too, a value that changes per batch)."""
    params = {p.name.value for p in (*func.params.params, *func.params.kwonly_params, *func.params.posonly_params)}
    inside_origin = {id(n) for n in walk(entry)}  # the read itself becomes the parameter
    copied: list = []
    moved: list = []
    for _ in range(20):
        missing = _unbound_reads(ctx, sorted([*copied, *moved, *moving], key=lambda s: _start(ctx, s)), inside_origin)
        missing -= {"self", rows_name}
        added = False
        for name in sorted(missing):
            local = [s for s in _all_statements(func) if _binds(s, name) or _defines(s, name)]
            if not local:
                if name in params:
                    return None
                continue  # module names, builtins and closures: the same when the function runs once
            nested = [s for s in func.body.body if isinstance(s, cst.FunctionDef) and s.name.value == name]
            if len(local) == 1 and nested and local[0] is nested[0] and _self_contained(ctx, func, nested[0]):
                if all(nested[0] is not c for c in copied):
                    copied.append(nested[0])  # a helper defined in the function: it comes along
                    added = True
                continue
            defining = [s for s in local if all(s is not m for m in (*moving, *moved, *copied))]
            if len(defining) != 1 or not isinstance(defining[0], cst.SimpleStatementLine) \
                    or not isinstance(defining[0].body[0], cst.Assign) or len(defining[0].body[0].targets) != 1 \
                    or _start(ctx, defining[0]) > _start(ctx, last):
                return None
            definition = defining[0]
            values = flow.values_at(definition.body[0].value)
            if values and all(v.const for v in values):
                copied.append(definition)
            elif values and all(not v.data and clean._setting(v, origin) for v in values) and all(
                any(_within(ctx, r, m) for m in (*moving, *moved, definition))
                or (name == result_name and _start(ctx, r) > _start(ctx, last))  # the result, read later
                for r in _reads(ctx, func, name)
            ):
                moved.append(definition)
            else:
                return None
            added = True
        if not added:
            copied.sort(key=lambda s: _start(ctx, s))
            return copied, moved
    return None


def _read_of(ctx, origin: Value, origin_node, target: str) -> str | None:
    """The code of the origin's read taking its rows from `self.<target>` (`self.y[lo:hi]` ->
    `self._y_preprocessed[lo:hi]`); None when the read is not an index of the attribute itself."""
    base = origin.base.node if origin.base is not None else None
    if not (isinstance(base, cst.Attribute) and is_self_attr(base) == location(origin)[0] and ctx.contains(origin_node, base)):
        return None
    return cst.Module([]).code_for_node(origin_node.visit(_Swap({id(base): cst.parse_expression(f"self.{target}")})))


def _gather_cast(ctx, region: Region):
    """The dtype a gather casts the rows to (`np.array([...], dtype=np.float32)`) before the steps that
    move ahead of it ran: None when nothing casts, False when the cast cannot go along (two casts, a
    dtype held by a local name)."""
    if region.gather is None:
        return None
    found = []
    for value in region.gathering:
        node = value.node
        if not isinstance(node, cst.Call):
            continue
        dtype = next((a.value for a in node.args if a.keyword is not None and a.keyword.value == "dtype"), None)
        positional = [a.value for a in node.args if a.keyword is None]
        if dtype is None and len(positional) >= 2 and ctx.qualified_name(node.func) in flow_tables().dtype_second_calls:
            dtype = positional[1]
        if dtype is not None:
            found.append(dtype)
    if not found:
        return None
    dtype = found[0]
    if len(found) > 1:
        return False
    if isinstance(dtype, cst.SimpleString) or (isinstance(dtype, cst.Name) and dtype.value in ("float", "int", "bool")):
        return dtype
    root = dtype
    while isinstance(root, cst.Attribute):
        root = root.value
    return dtype if isinstance(dtype, cst.Attribute) and isinstance(root, cst.Name) and root.value in ctx.imports else False



def _served_only(ctx, func, copied: list, moving: list) -> list:
    """The copied definitions (`eye = np.eye(k)`) of `func`'s own body that only the moving code reads:
    they go with it rather than stay behind unread."""
    served = []
    for definition in copied:
        if not (isinstance(definition, cst.SimpleStatementLine) and any(definition is s for s in func.body.body)):
            continue
        assign = definition.body[0]
        if len(definition.body) != 1 or not isinstance(assign, cst.Assign) or len(assign.targets) != 1 \
                or not isinstance(assign.targets[0].target, cst.Name):
            continue
        name = assign.targets[0].target.value
        if sum(1 for s in _all_statements(func) if _binds(s, name) or _defines(s, name)) != 1:
            continue
        if all(any(r is m or _within(ctx, r, m) for m in moving) for r in _reads(ctx, func, name)):
            served.append(definition)
    return served


def _unbound_reads(ctx, statements: list, skip: set[int]) -> set[str]:
    """Names the statements, run in order, read before binding them themselves."""
    bound: set[str] = set()
    free: set[str] = set()
    for stmt in statements:
        if isinstance(stmt, cst.FunctionDef):
            bound.add(stmt.name.value)  # a helper copied along, checked to read nothing of the function's
            continue
        for name in _free_names(ctx, stmt, skip):
            if name not in bound:
                free.add(name)
        for node in walk(stmt):
            targets = []
            if isinstance(node, cst.AssignTarget):
                targets = [node.target]
            elif isinstance(node, (cst.For, cst.CompFor, cst.AugAssign, cst.NamedExpr)):
                targets = [node.target]
            for target in targets:
                if isinstance(target, cst.Name):
                    bound.add(target.value)
                elif isinstance(target, (cst.Tuple, cst.List)):
                    bound.update(e.value.value for e in target.elements if isinstance(e.value, cst.Name))
    # Names a comprehension or loop binds for itself are read after binding: not free.
    for stmt in statements:
        if isinstance(stmt, cst.FunctionDef):
            continue
        for node in walk(stmt):
            if isinstance(node, (cst.CompFor, cst.For)):
                free -= {n.value for n in walk(node.target) if isinstance(n, cst.Name)}
            if isinstance(node, cst.Lambda):
                free -= {p.name.value for p in node.params.params}
    return free


def _self_contained(ctx, func, definition: cst.FunctionDef) -> bool:
    """A function defined inside `func` that reads none of `func`'s other local names."""
    own = {p.name.value for p in (*definition.params.params, *definition.params.kwonly_params,
                                  *definition.params.posonly_params)}
    for node in walk(definition.body):
        if isinstance(node, (cst.AssignTarget, cst.For, cst.CompFor)):
            own |= {n.value for n in walk(getattr(node, "target")) if isinstance(n, cst.Name)}
    for node in walk(definition.body):
        if isinstance(node, cst.Name) and node.value not in own:
            parent = ctx.parent(node)
            if isinstance(parent, cst.Attribute) and parent.attr is node:
                continue
            if any(_binds(s, node.value) or _defines(s, node.value) for s in func.body.body if s is not definition):
                return False
    return True


def _defines(stmt, name: str) -> bool:
    """A `def`, `class` or import binding `name` (something seqlint will not move or copy)."""
    for node in walk(stmt):
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)) and node.name.value == name:
            return True
        if isinstance(node, (cst.Import, cst.ImportFrom)) and not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                bound = alias.asname.name if alias.asname is not None else alias.name
                if isinstance(bound, cst.Name) and bound.value == name:
                    return True
    return False


def scalar_setting(ctx, flow, value: Value) -> bool:
    """A number: a literal, arithmetic of numbers, an attribute every assignment of which is a number,
    or a module constant assigned a number."""
    node = value.node
    if isinstance(node, (cst.Integer, cst.Float)):
        return True
    if value.op is Op.OPERATOR:
        return all(scalar_setting(ctx, flow, u) for u in value.ins)
    if value.op is Op.CONST and value.attr is not None and len(value.attr) == 1:
        kind = flow.kinds.attribute(value.attr[0])
        return kind is not None and kind.type in ("int", "float")
    if isinstance(node, cst.Name) and value.op is Op.CONST:
        for stmt in ctx.module.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(
                        small.targets[0].target, cst.Name
                    ) and small.targets[0].target.value == node.value:
                        return isinstance(small.value, (cst.Integer, cst.Float)) or (
                            isinstance(small.value, cst.UnaryOperation) and isinstance(small.value.expression, (cst.Integer, cst.Float))
                        )
    return False


def _counts_rows_node(node) -> bool:
    """`len(x)`: unchanged by steps that keep one row per row."""
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "len"


def _free_names(ctx, stmt, skip: set[int] = frozenset()) -> list[str]:
    """Names a statement reads (not attribute names or keywords, nor names under `skip`, nor the names
    it binds), in order."""
    skip = set(skip)
    for node in walk(stmt):
        targets = []
        if isinstance(node, cst.AssignTarget):
            targets = [node.target]
        elif isinstance(node, (cst.For, cst.CompFor, cst.NamedExpr)):
            targets = [node.target]
        for target in targets:
            for part in (target, *(e.value for e in getattr(target, "elements", ()))):
                if isinstance(part, cst.Name):
                    skip.add(id(part))
    found = []
    for node in walk(stmt):
        if isinstance(node, cst.Name) and node.value not in found and id(node) not in skip:
            parent = ctx.parent(node)
            if isinstance(parent, cst.Attribute) and parent.attr is node:
                continue
            if isinstance(parent, cst.Arg) and parent.keyword is node:
                continue
            found.append(node.value)
    return found


def _reads(ctx, func, name: str) -> list:
    """Name nodes of `func` that read `name` (not the targets binding it)."""
    targets = set()
    for node in walk(func.body):
        bound = []
        if isinstance(node, cst.AssignTarget):
            bound = [node.target]
        elif isinstance(node, (cst.For, cst.CompFor)):
            bound = [node.target]
        elif isinstance(node, cst.AugAssign):
            bound = []  # `x += 1` reads x as well
        for target in bound:
            for sub in walk(target):
                if isinstance(sub, cst.Name):
                    parent = ctx.parent(sub)
                    if not isinstance(parent, (cst.Subscript, cst.Attribute)) or parent.value is not sub:
                        targets.add(id(sub))
    reads = []
    for node in walk(func.body):
        if isinstance(node, cst.Name) and node.value == name and id(node) not in targets:
            parent = ctx.parent(node)
            if isinstance(parent, cst.Attribute) and parent.attr is node:
                continue
            if isinstance(parent, cst.Arg) and parent.keyword is node:
                continue
            reads.append(node)
    return reads


def _within(ctx, node, stmt) -> bool:
    return ctx.contains(stmt, node)


_BUILTINS = frozenset(dir(builtins))


def _method_name(seq, loc: tuple) -> str:
    base = "_preprocess_" + "_".join(str(p).strip("._") for p in loc)
    base = re.sub(r"[^0-9A-Za-z_]", "_", base)
    name = base
    while name in seq.methods:
        name += "_"
    return name


def _init_attributes(seq) -> set[str]:
    init = seq.own_methods.get("__init__")
    found: set[str] = set()
    if init is None:
        return found
    for node in walk(init.body):
        for target in assignment_targets(node):
            found |= {attr for sub in walk(target) if (attr := is_self_attr(sub)) is not None}
    return found


def _helper_resolver(ctx, seq, nested: dict):
    """func expression -> the FunctionDef it calls: a helper copied along, a module function, a method."""
    def resolve(func):
        if isinstance(func, cst.Name):
            return nested.get(func.value) or ctx.module_functions.get(func.value)
        if (name := is_self_attr(func)) is not None:
            method = seq.methods.get(name)
            if method is not None and not any(
                isinstance(d.decorator, cst.Name) and d.decorator.value in ("property", "staticmethod", "classmethod")
                for d in method.decorators
            ):
                return method
        return None
    return resolve


def _helper_proof(ctx, seq, helper, consts: set[str], functions, helpers=None, table_attrs=frozenset()) -> bool:
    """The helper's body, with its first parameter as the batch, is proven row-wise; its other
    parameters must keep literal defaults (they are settings)."""
    params = list(helper.params.params)
    if params and params[0].name.value == "self":
        params = params[1:]
    if not params or helper.params.kwonly_params or helper.params.posonly_params:
        return False
    if not isinstance(helper.params.star_arg, cst.MaybeSentinel) or helper.params.star_kwarg is not None:
        return False
    data, settings = params[0], params[1:]
    body = list(helper.body.body) if isinstance(helper.body, cst.IndentedBlock) else []
    if body and is_docstring(body[0]):
        body = body[1:]
    if not body or not (
        isinstance(body[-1], cst.SimpleStatementLine) and len(body[-1].body) == 1
        and isinstance(body[-1].body[0], cst.Return) and body[-1].body[0].value is not None
    ):
        return False
    body = [*vectorised_body(body[:-1], data.name.value), body[-1]]
    proof = RowWiseProof(ctx, data.name.value, consts, functions, helpers, table_attrs=table_attrs)
    proof.fixed.update(p.name.value for p in settings)
    if not proof.statements(body[:-1]):
        return False
    rows = proof.rows(body[-1].body[0].value)
    return rows is not None and rows.filled


def init_line(plan: Hoist, numpy_name: str) -> str:
    """The statement ending `__init__`."""
    source = plan.source
    if plan.direct is not None:
        call = plan.direct
        if len(plan.location) == 1 or plan.new_attribute:
            return f"{plan.target} = {call}"
        head = attribute_code(plan.location[:1])
        return f"{head} = {{**{head}, {plan.location[1]!r}: {call}}}"
    argument = f"{numpy_name}.asarray({source})" if plan.as_array else source
    options = ", per_sample=True" if plan.per_sample else ""
    call = f"seqkit.preprocess_once({plan.function}, {argument}{options})"
    if len(plan.location) == 1 or plan.new_attribute:
        return f"{plan.target} = {call}"
    head = attribute_code(plan.location[:1])
    return f"{head} = {{**{head}, {plan.location[1]!r}: {call}}}"
