"""Element-wise steps that a random rearrangement separates from the steps before them.

    x = self.images[sel].astype(np.float32) / 255.0   # a region: computed once by SEQ101's fix
    flip = rng.random(len(x)) < 0.5
    x[flip] = x[flip, :, ::-1]                        # random: stays per batch
    x = (x - MEAN) / STD                              # deterministic, but after the random step

Hoisting only the region would leave the batch gathering widened rows while the normalisation still
runs per batch (measured slower than not hoisting at all). A flip, a crop, a roll or a permutation of
rows only moves elements, and an element-wise step with single-number settings computes each element
from that element alone, so the two give the same values in either order. `commuting_moves` finds such
tails: the element-wise statements can move up to right after the region, where the next pass of the
fix hoists region and tail together, and the rearrangement stays per batch on the preprocessed rows.

A move is **safe** when every setting of the moved steps is a single number. A setting that is an array
(a per-channel mean) commutes only if the rearrangement leaves the axis it varies along alone, which
seqlint cannot see without the array's rank: then the move is offered as unsafe.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from seqlint.analysis.batchflow import flow_tables
from seqlint.analysis.hoisting import scalar_setting
from seqlint.analysis.hotpath import assignment_targets, bound_names, root_name, walk
from seqlint.analysis.regions import Region
from seqlint.analysis.tables import elementwise_numpy
from seqlint.analysis.values import Op, Value

_DTYPE_ONLY = frozenset({".astype"})  # their arguments are a dtype, not a number


@dataclass
class Move:
    """Element-wise statements to move up, across rearrangements, to the end of a region."""

    region: Region
    name: str                 # the variable holding the rows
    after: cst.CSTNode        # the statement computing the region's last value
    statements: list          # the element-wise statements that move, in order
    crossed: list             # the rearranging statements they move across
    safe: bool
    reason: str


def commuting_moves(ctx, flow, plans: dict) -> dict[tuple, Move]:
    """Dataset attribute -> the move that lets its hoist take the element-wise steps after a
    rearrangement, for the attributes SEQ101 can hoist (`plans`, from hoisting.plan_hoists)."""
    found = {}
    for loc, plan in plans.items():
        for region in plan.regions:
            move = _tail_after(ctx, flow, region)
            if move is not None:
                found[loc] = move
                break
    return found


def _tail_after(ctx, flow, region: Region) -> Move | None:
    frontier = region.frontier
    if frontier.node is None:
        return None
    after = ctx.statement_of(frontier.node)
    name = _bound_by(flow, after, frontier)
    block = ctx.parent(after)
    if name is None or not isinstance(block, cst.IndentedBlock):
        return None
    body = list(block.body)
    position = next(i for i, stmt in enumerate(body) if stmt is after)
    crossed, tail, settings = [], [], []
    for stmt in body[position + 1:]:
        step = _elementwise_statement(flow, stmt, name)
        if step is not None:
            if not crossed:
                return None  # nothing random in between: the region would have taken it already
            tail.append(stmt)
            settings += step
            continue
        if tail or not _rearranges(ctx, flow, stmt, name, region.origin):
            break
        crossed.append(stmt)
    if not tail or not any(flow.is_random(node) for stmt in crossed for node in walk(stmt)):
        return None
    read = {n.value for stmt in tail for n in walk(stmt) if isinstance(n, cst.Name)} - {name}
    if any(bound_names(stmt) & read for stmt in crossed):
        return None  # a setting of the tail is rebound on the way: it would read another value
    arrays = [u for u in settings if not scalar_setting(ctx, flow, u)]
    if arrays:
        shown = ctx.code(arrays[0].node) if arrays[0].node is not None else "a setting"
        return Move(region, name, after, tail, crossed, False,
                    f"`{shown}` may be an array, which commutes with the rearrangement only if it varies "
                    "along an axis the rearrangement leaves alone")
    return Move(region, name, after, tail, crossed, True, "")


def _rebinding(stmt) -> tuple[str, cst.CSTNode] | None:
    """For `x = e` or `x op= e` alone on its line: the name, and the node whose values are its new value
    (`e` itself, or the augmented assignment)."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    small = stmt.body[0]
    if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
        return small.targets[0].target.value, small.value
    if isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name):
        return small.target.value, small
    return None


def _bound_by(flow, stmt, frontier: Value) -> str | None:
    """The name `stmt` binds to the frontier's value (`x = ...` or `x /= ...`)."""
    rebinding = _rebinding(stmt)
    if rebinding is None or not any(v is frontier for v in flow.values_at(rebinding[1])):
        return None
    return rebinding[0]


def elementwise(value: Value) -> bool:
    """A step computing each element from the element at the same place alone."""
    if value.op is Op.OPERATOR:
        node = value.node
        if isinstance(node, cst.AugAssign):
            return not isinstance(node.operator, cst.MatrixMultiplyAssign)
        return not (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply))
    if value.op is Op.CALL:
        qual, tables = value.qual or "", flow_tables()
        return qual in elementwise_numpy() or qual in tables.elementwise_functions or (
            qual.startswith(".") and qual[1:] in tables.elementwise_methods
        )
    return False


def _elementwise_statement(flow, stmt, name: str) -> list[Value] | None:
    """The settings of `name = f(name)` / `name op= c`, with f element-wise and its settings the same
    for every batch; None when `stmt` is not such a statement."""
    rebinding = _rebinding(stmt)
    if rebinding is None or rebinding[0] != name:
        return None
    expression = rebinding[1]
    inside = {id(v) for node in walk(expression) for v in flow.values_at(node)}
    steps, settings = [], []
    for node in walk(expression):
        for value in flow.values_at(node):
            if not value.data:
                continue
            if isinstance(node, cst.Name):
                if node.value != name:
                    return None  # other data (a mask, a second input) joins in
                continue
            if not elementwise(value):
                return None
            steps.append(value)
    if not steps:
        return None
    for value in steps:
        for u in value.ins:
            if u.data:
                if id(u) not in inside:
                    return None
            elif not u.const:
                return None  # a setting that changes from batch to batch
            elif value.qual not in _DTYPE_ONLY:
                settings.append(u)
    return settings


def _rearranges(ctx, flow, stmt, name: str, origin: Value) -> bool:
    """`stmt` leaves the rows in `name` holding the same elements, moved around (`x[flip] = x[flip, :, ::-1]`,
    a loop flipping rows at random, `x = x[:, a:b]`), or does not touch them at all; it reads them only
    to move them or for their row count, and binds no other name to them."""
    if any(isinstance(n, (cst.Return, cst.Yield, cst.Global, cst.Nonlocal)) for n in walk(stmt)):
        return False
    tables = flow_tables()
    for node in walk(stmt):
        if isinstance(node, cst.Name) and node.value == name and not _moved_or_counted(ctx, node):
            return False
        for value in flow.values_at(node):
            if not value.data or isinstance(node, cst.Name):
                continue
            if origin not in value.origins or value.origins - {origin} or value is origin:
                return False
            if value.op is Op.SUBSCRIPT:
                if value.index is not None and value.index.data:
                    return False  # picked by the values themselves (`x[x > 0]`)
            elif value.op is Op.WRITE:
                written = value.ins[1] if len(value.ins) > 1 else None
                if written is None or not written.data:
                    return False  # a constant written in (a cutout) is not a rearrangement
            elif value.op is Op.CALL:
                qual = value.qual or ""
                if qual not in tables.rearranging_functions and qual[1:] not in tables.rearranging_methods:
                    return False
            elif value.op not in (Op.ITEM, Op.JOIN, Op.LOOP):
                return False
    for sub in walk(stmt):
        if isinstance(sub, cst.For):
            targets = [(sub.target, sub.iter)]
        else:
            targets = [(target, getattr(sub, "value", None)) for target in assignment_targets(sub)]
        for target, value in targets:
            if isinstance(sub, cst.AugAssign) and root_name(target) == name:
                return False  # `x[i] *= 2` changes values
            if root_name(target) != name and value is not None and flow.is_data(value):
                return False  # the rows, or part of them, under another name
            if isinstance(target, cst.Name) and target.value == name and not flow.is_data(value):
                return False  # the name now holds something else
    return True


def _moved_or_counted(ctx, node: cst.Name) -> bool:
    """A use of the rows that only picks elements, hands them to a rearranging call, or counts them."""
    parent = ctx.parent(node)
    if isinstance(parent, cst.Subscript) and parent.value is node:
        return True  # a pick (its index is checked with the values) or a write target
    if isinstance(parent, cst.Attribute) and parent.value is node:
        if parent.attr.value == "shape":
            return True
        call = ctx.parent(parent)
        tables = flow_tables()
        return isinstance(call, cst.Call) and call.func is parent and parent.attr.value in tables.rearranging_methods
    if isinstance(parent, cst.Arg):
        call = ctx.parent(parent)
        if isinstance(call, cst.Call):
            qual = ctx.qualified_name(call.func)
            return qual == "len" or qual in flow_tables().rearranging_functions
    if isinstance(parent, cst.AssignTarget) or (isinstance(parent, cst.Assign) and parent.value is node):
        return True  # `x = x` / `x = other` is judged by the binding check
    return False
