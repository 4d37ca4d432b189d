"""ModuleContext: every fact about one module that rules share, computed once (positions lazily).

Positions need a code-generation pass over the whole module, so they are resolved only when a rule
reports something or builds a fix; most files have no finding and never pay for them.
"""

from __future__ import annotations

from functools import cached_property

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from seqlint.analysis.hotpath import CallGraph, Phase, children
from seqlint.analysis.names import collect_imports, dotted_name, qualify
from seqlint.analysis.project import ProjectIndex
from seqlint.analysis.sequences import SequenceClass, find_sequences
from seqlint.findings import Finding, Fix, Location

_PHASE_ORDER = (Phase.BATCH, Phase.EPOCH, Phase.ONCE)


class ModuleContext:
    def __init__(self, source: str, filename: str, module: cst.Module, project: ProjectIndex | None = None):
        self.source = source
        self.filename = filename
        self.module = module
        self.project = project
        self.wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        self.imports: dict[str, str] = collect_imports(module)
        self.sequences: list[SequenceClass] = find_sequences(module, self.imports, filename, project)
        self.module_functions: dict[str, cst.FunctionDef] = {
            stmt.name.value: stmt for stmt in module.body if isinstance(stmt, cst.FunctionDef)
        }

    # -- names --------------------------------------------------------------------------------------
    def qualified_name(self, expr: cst.BaseExpression) -> str | None:
        """Fully qualified dotted name of a name chain ("numpy.random.rand" for `np.random.rand` after
        `import numpy as np`); for a Call, that of the function called. `self.<attr>...` chains are
        returned as written ("self.helper"); use `method_of` to get the method. Unimported heads are
        returned as written (local variables), except conventional module aliases (`np`, `tf`)."""
        if isinstance(expr, cst.Call):
            expr = expr.func
        dotted = dotted_name(expr)
        if dotted is None:
            return None
        if dotted == "self" or dotted.startswith("self."):
            return dotted
        return qualify(dotted, self.imports)

    def method_of(self, seq: SequenceClass, expr: cst.BaseExpression) -> cst.FunctionDef | None:
        """The method `self.<name>` (or a call of it) refers to, if the class has it in this module."""
        if isinstance(expr, cst.Call):
            expr = expr.func
        if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
            return seq.methods.get(expr.attr.value)
        return None

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    # -- where code runs -----------------------------------------------------------------------------
    @cached_property
    def call_graph(self) -> CallGraph:
        return CallGraph(self.sequences, self.module_functions)

    def batch_flow(self, seq: SequenceClass):
        """The batch data-flow model of one Sequence class (analysis/batchflow.py), built on first use."""
        flows = self.__dict__.setdefault("_batch_flows", {})
        if id(seq.node) not in flows:
            from seqlint.analysis.batchflow import BatchFlow

            flows[id(seq.node)] = BatchFlow(self, seq)
        return flows[id(seq.node)]

    def is_sample_data(self, node: cst.CSTNode, live: bool = False) -> bool:
        """Whether the expression holds sample data in some Sequence's per-batch code (and, with `live`,
        data that reaches the returned batch rather than only picking rows or naming files)."""
        return id(node) in self._sample_data_nodes[1 if live else 0]

    @cached_property
    def _sample_data_nodes(self) -> tuple[frozenset[int], frozenset[int]]:
        """(nodes holding sample data, those whose data reaches a batch), over every Sequence's flow."""
        data, live = set(), set()
        for seq in self.sequences:
            flow = self.batch_flow(seq)
            for node_id, values in flow.by_node.items():  # (a name read holds the value bound to it)
                if any(value.data for value in values):
                    data.add(node_id)
                    if any(value.data and id(value) in flow.live for value in values):
                        live.add(node_id)
        return frozenset(data), frozenset(live)

    def clean_steps(self, seq: SequenceClass):
        """Which values of `seq`'s batch flow are deterministic steps of one sample source (regions.py)."""
        cache = self.__dict__.setdefault("_clean_steps", {})
        if id(seq.node) not in cache:
            from seqlint.analysis.regions import CleanSteps

            cache[id(seq.node)] = CleanSteps(self.batch_flow(seq))
        return cache[id(seq.node)]

    def pack_plans(self, seq: SequenceClass) -> dict:
        """File read (value id) -> how to pack the per-sample loader around it (packing.py)."""
        cache = self.__dict__.setdefault("_pack_plans", {})
        if id(seq.node) not in cache:
            from seqlint.analysis.packing import plan_packs

            cache[id(seq.node)] = plan_packs(self, seq, self.batch_flow(seq), self.clean_steps(seq))
        return cache[id(seq.node)]

    def hoist_plans(self, seq: SequenceClass) -> dict:
        """Dataset attribute -> how to compute its per-batch preprocessing once (hoisting.py)."""
        cache = self.__dict__.setdefault("_hoist_plans", {})
        if id(seq.node) not in cache:
            from seqlint.analysis.hoisting import plan_hoists

            cache[id(seq.node)] = plan_hoists(self, seq, self.batch_flow(seq), self.clean_steps(seq))
        return cache[id(seq.node)]

    def commuting_moves(self, seq: SequenceClass) -> dict:
        """Dataset attribute -> element-wise steps to move up across a random rearrangement, so that
        its hoist takes them too (commuting.py)."""
        cache = self.__dict__.setdefault("_commuting_moves", {})
        if id(seq.node) not in cache:
            from seqlint.analysis.commuting import commuting_moves

            cache[id(seq.node)] = commuting_moves(self, self.batch_flow(seq), self.hoist_plans(seq))
        return cache[id(seq.node)]

    def batch_functions(self, seq: SequenceClass, phases: tuple[Phase, ...] = (Phase.BATCH,)) -> list[cst.FunctionDef]:
        """The functions `seq` runs in `phases`, by default per batch (`__getitem__` and everything it
        calls), in discovery order."""
        reached = self.call_graph.reached[seq.name]
        return [func for phase in phases for func in reached[phase]]

    def functions_in_phase(self, phase: Phase) -> list[tuple[cst.FunctionDef, SequenceClass, tuple[str, ...]]]:
        """(function, a Sequence it runs for, call path from the Keras entry point), each function once
        and only under its most frequent phase, so that a rule walking them reports a line once."""
        out = []
        seen: set[int] = set()
        for func, seq, path, func_phase in self._placements:
            if func_phase is phase and id(func) not in seen:
                seen.add(id(func))
                out.append((func, seq, path))
        return out

    def phase_of_function(self, func: cst.FunctionDef) -> Phase | None:
        return self._function_phase.get(id(func))

    def call_path(self, func: cst.FunctionDef) -> tuple[str, ...]:
        for f, _seq, path, _phase in self._placements:
            if f is func:
                return path
        return ()

    @cached_property
    def _placements(self):
        placements = []
        for phase in _PHASE_ORDER:
            for seq in self.sequences:
                for func, path in self.call_graph.reached[seq.name][phase].items():
                    placements.append((func, seq, path, self._function_phase.get(id(func), phase)))
        return placements

    @cached_property
    def _function_phase(self) -> dict[int, Phase]:
        phases: dict[int, Phase] = {}
        for phase in _PHASE_ORDER:
            for seq in self.sequences:
                for func in self.call_graph.reached[seq.name][phase]:
                    phases.setdefault(id(func), phase)
        return phases

    def phase_of(self, node: cst.CSTNode) -> Phase | None:
        """How often the code holding `node` runs, or None outside Sequence code."""
        func = self.enclosing_function(node)
        while func is not None:
            phase = self._function_phase.get(id(func))
            if phase is not None:
                return phase
            func = self.enclosing_function(func)  # a nested def runs when its parent does
        return None

    def enclosing_function(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        parent = self.parent(node)
        while parent is not None and not isinstance(parent, cst.FunctionDef):
            parent = self.parent(parent)
        return parent

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self._parents.get(id(node))

    def ancestors(self, node: cst.CSTNode):
        parent = self.parent(node)
        while parent is not None:
            yield parent
            parent = self.parent(parent)

    @cached_property
    def _parents(self) -> dict[int, cst.CSTNode]:
        parents: dict[int, cst.CSTNode] = {}
        stack: list[cst.CSTNode] = [self.module]
        while stack:
            node = stack.pop()
            for child in children(node):
                parents[id(child)] = node
                stack.append(child)
        return parents

    # -- positions and findings -----------------------------------------------------------------------
    @cached_property
    def _positions(self):
        return self.wrapper.resolve(PositionProvider)

    def position(self, node: cst.CSTNode) -> tuple[Location, Location]:
        """1-based start and (exclusive) end of the node's code, without surrounding parentheses."""
        code_range = self._positions[node]
        return (
            Location(code_range.start.line, code_range.start.column + 1),
            Location(code_range.end.line, code_range.end.column + 1),
        )

    def statement_of(self, node: cst.CSTNode) -> cst.CSTNode:
        """The statement holding `node` (itself if it is one). Remembered for every node on the way up, so
        that asking for every node of a deeply nested expression stays linear."""
        memo = self.__dict__.setdefault("_statements", {})
        path = []
        current: cst.CSTNode | None = node
        found = None
        while current is not None:
            if id(current) in memo:
                found = memo[id(current)]
                break
            if isinstance(current, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                found = current
                break
            path.append(current)
            current = self.parent(current)
        for step in path:
            memo[id(step)] = found
        return found if found is not None else node

    def contains(self, outer: cst.CSTNode, inner: cst.CSTNode) -> bool:
        """Whether `inner` lies inside `outer` (or is it), by their source ranges."""
        if outer is inner:
            return True
        (start, end), (inner_start, inner_end) = self.position(outer), self.position(inner)
        return start <= inner_start and inner_end <= end

    def report(self, rule, node: cst.CSTNode, message: str | None = None, fix: Fix | None = None,
               hint: str | None = None) -> Finding:
        start, end = self.position(node)
        statement_row = self.position(self.statement_of(node))[0].row
        return Finding(
            code=rule.code,
            name=rule.name,
            message=message or rule.summary,
            filename=self.filename,
            location=start,
            end_location=end,
            fix=fix,
            statement_row=statement_row,
            hint=hint,
        )
