"""Where the values of per-batch code come from: the dataset in memory, a file, or a random draw.

SEQ101 needs to tell `x / 255.` on a batch of the dataset (cache it) from `idx * self.batch_size`
(index arithmetic), from preprocessing of data just read from a file (SEQ201's remedy covers it) and
from augmentation (random: caching would freeze it). A small flow-insensitive taint analysis over the
per-batch functions answers that. Taint enters through subscripts of dataset attributes
(`self.x[...]`), file-reading calls and random calls, flows through assignments, loops and
comprehensions, into helper parameters from their call sites and back out through their returns.
"""

from __future__ import annotations

import libcst as cst

from seqlint.analysis import effects
from seqlint.analysis.hotpath import Phase, children, walk

MEMORY = "memory"
FILE = "file"
RANDOM = "random"
NONE: frozenset[str] = frozenset()

# Attribute names that hold indices, not data: arithmetic on them is index arithmetic.
_INDEX_WORDS = ("index", "indices", "indexes", "idx", "order", "perm", "ids", "keys")
_SIZE_ATTRS = {"shape", "ndim", "size", "dtype", "nbytes", "itemsize"}
_SIZE_FUNCS = {"len", "range", "id", "type", "isinstance", "hasattr", "getattr"}
_RANDOM_RECEIVER_WORDS = ("rng", "random", "generator")
_CONTAINER_METHODS = {"append", "extend", "insert", "add", "appendleft"}
# Calls that copy what they are given: `copy.deepcopy(self.x)` holds the dataset as much as `self.x[...]`.
_COPYING = {"copy.deepcopy", "copy.copy", "numpy.copy", "numpy.array", "numpy.asarray", "list", "tuple"}


def is_self_attr(expr) -> str | None:
    if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
        return expr.attr.value
    return None


def self_root_attr(expr) -> str | None:
    """"df" for `self.df.iloc`, `self.df["a"]`, `self.df`: the attribute a chain starts from."""
    while isinstance(expr, (cst.Attribute, cst.Subscript)):
        if (attr := is_self_attr(expr)) is not None:
            return attr
        expr = expr.value
    return None


def is_data_attr(name: str) -> bool:
    lowered = name.lower()
    return not any(word in lowered for word in _INDEX_WORDS)


def _bind(target, taint, env) -> bool:
    """Give every name bound by `target` the taint; True when something changed."""
    changed = False
    if isinstance(target, cst.Name):
        new = env.get(target.value, NONE) | taint
        if new != env.get(target.value, NONE):
            env[target.value] = new
            changed = True
    elif isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            changed |= _bind(element.value, taint, env)
    elif isinstance(target, cst.StarredElement):
        changed |= _bind(target.value, taint, env)
    elif isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name):
        changed |= _bind(target.value, taint, env)  # out[i] = row: `out` now holds data
    return changed


class BatchDataflow:
    """Taint of the names in each per-batch function of a module."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.placements = ctx.functions_in_phase(Phase.BATCH)
        self.functions = {id(func): func for func, _seq, _path in self.placements}
        self.seq_of = {id(func): seq for func, seq, _path in self.placements}
        self.env: dict[int, dict[str, frozenset[str]]] = {id(f): {} for f, _s, _p in self.placements}
        for func, _seq, _path in self.placements:
            if id(func) in ctx.call_graph.called_from_elsewhere:
                # Called by a base class in another file: its arguments are the samples it loads.
                for param in list(func.params.params)[1:]:
                    self.env[id(func)][param.name.value] = frozenset((MEMORY,))
        self.returns: dict[int, frozenset[str]] = {}
        # Functions defined inside a per-batch function share its names (closures, local helpers).
        self.nested: dict[int, dict[str, cst.FunctionDef]] = {}
        for func, _seq, _path in self.placements:
            local = {n.name.value: n for n in walk(func.body) if isinstance(n, cst.FunctionDef)}
            self.nested[id(func)] = local
            for inner in local.values():
                self.env.setdefault(id(inner), self.env[id(func)])
        for _ in range(4):
            if not self._pass():
                break

    # -- propagation ---------------------------------------------------------------------------------
    def _pass(self) -> bool:
        changed = False
        for func, seq, _path in self.placements:
            env = self.env[id(func)]
            for _ in range(3):
                local = False
                for node in walk(func.body):
                    if isinstance(node, cst.Assign):
                        taint = self.taint(func, node.value)
                        for target in node.targets:
                            local |= _bind(target.target, taint, env)
                    elif isinstance(node, (cst.AugAssign, cst.AnnAssign)) and node.value is not None:
                        local |= _bind(node.target, self.taint(func, node.value), env)
                    elif isinstance(node, (cst.For, cst.CompFor)):
                        local |= _bind(node.target, self.taint(func, node.iter), env)
                    elif isinstance(node, cst.WithItem) and node.asname is not None:
                        local |= _bind(node.asname.name, self.taint(func, node.item), env)
                    elif isinstance(node, cst.NamedExpr):
                        local |= _bind(node.target, self.taint(func, node.value), env)
                    elif isinstance(node, cst.Call):
                        local |= self._to_callee(func, seq, node)
                        local |= self._into_container(func, node, env)
                        local |= self._into_lambdas(func, node, env)
                changed |= local
                if not local:
                    break
            ret = NONE
            for node in walk(func.body):
                if isinstance(node, cst.Return) and node.value is not None:
                    ret |= self.taint(func, node.value)
            if ret != self.returns.get(id(func), NONE):
                self.returns[id(func)] = ret
                changed = True
        return changed

    def _into_lambdas(self, func, call: cst.Call, env) -> bool:
        """`map(lambda im: resize(im), rows)`: the lambda's parameters receive the other arguments."""
        lambdas = [a.value for a in call.args if isinstance(a.value, cst.Lambda)]
        if not lambdas:
            return False
        taint = NONE
        for arg in call.args:
            if not isinstance(arg.value, cst.Lambda):
                taint |= self.taint(func, arg.value)
        changed = False
        for lam in lambdas:
            for param in lam.params.params:
                changed |= _bind(param.name, taint, env)
        return changed

    def _into_container(self, func, call: cst.Call, env) -> bool:
        """`rows.append(x)`: the list now holds data."""
        target = call.func
        if (
            isinstance(target, cst.Attribute)
            and target.attr.value in _CONTAINER_METHODS
            and isinstance(target.value, cst.Name)
            and call.args
        ):
            taint = NONE
            for arg in call.args:
                taint |= self.taint(func, arg.value)
            return _bind(target.value, taint, env)
        return False

    def callee(self, seq, call: cst.Call, caller: cst.FunctionDef | None = None) -> cst.FunctionDef | None:
        func = call.func
        if (attr := is_self_attr(func)) is not None:
            return seq.methods.get(attr)
        if isinstance(func, cst.Name):
            if caller is not None and func.value in self.nested.get(id(caller), {}):
                return self.nested[id(caller)][func.value]
            return self.ctx.module_functions.get(func.value)
        return None

    def _to_callee(self, func, seq, call: cst.Call) -> bool:
        """Parameters of a helper take the taint of the arguments its call sites pass."""
        changed = False
        targets: list[tuple[cst.FunctionDef, list[cst.Arg]]] = []
        callee = self.callee(seq, call, func)
        if callee is not None:
            targets.append((callee, list(call.args)))
        else:
            # map(self.load, files) / pool.map(fn, xs): the function reference gets the other arguments.
            for arg in call.args:
                ref = arg.value
                target = seq.methods.get(is_self_attr(ref)) if is_self_attr(ref) else (
                    self.ctx.module_functions.get(ref.value) if isinstance(ref, cst.Name) else None
                )
                if target is not None:
                    rest = [a for a in call.args if a is not arg]
                    targets.append((target, rest))
        for target, args in targets:
            env = self.env.get(id(target))
            if env is None:
                continue
            params = list(target.params.posonly_params) + list(target.params.params)
            if params and params[0].name.value == "self" and (is_self_attr(call.func) or not isinstance(call.func, cst.Name)):
                params = params[1:]
            by_name = {p.name.value: p for p in params + list(target.params.kwonly_params)}
            positional = [a for a in args if a.keyword is None and not a.star]
            for param, arg in zip(params, positional):
                changed |= _bind(param.name, self.taint(func, arg.value), env)
            for arg in args:
                if arg.keyword is not None and arg.keyword.value in by_name:
                    changed |= _bind(by_name[arg.keyword.value].name, self.taint(func, arg.value), env)
        return changed

    # -- queries ----------------------------------------------------------------------------------------
    def taint(self, func: cst.FunctionDef, expr: cst.CSTNode) -> frozenset[str]:
        env = self.env.get(id(func), {})
        seq = self.seq_of.get(id(func))
        return self._taint(expr, env, seq, func)

    def _taint(self, expr, env, seq, func=None) -> frozenset[str]:
        if isinstance(expr, cst.Name):
            return env.get(expr.value, NONE)
        if isinstance(expr, cst.Subscript):
            attr = self_root_attr(expr.value)
            if attr is not None:
                return frozenset((MEMORY,)) if is_data_attr(attr) else NONE
            return self._taint(expr.value, env, seq, func)
        if isinstance(expr, cst.Attribute):
            if expr.attr.value in _SIZE_ATTRS or is_self_attr(expr) is not None:
                return NONE
            return self._taint(expr.value, env, seq, func)
        if isinstance(expr, cst.Call):
            return self._call_taint(expr, env, seq, func)
        if isinstance(expr, (cst.Lambda, cst.FunctionDef)):
            return NONE
        taint = NONE
        for child in children(expr):
            taint |= self._taint(child, env, seq, func)
        return taint

    def _call_taint(self, call: cst.Call, env, seq, func=None) -> frozenset[str]:
        qual = self.ctx.qualified_name(call.func)
        if qual in _SIZE_FUNCS:
            return NONE
        taint = NONE
        for arg in call.args:
            taint |= self._taint(arg.value, env, seq, func)
            if qual in _COPYING and (attr := is_self_attr(arg.value)) is not None and is_data_attr(attr):
                taint |= {MEMORY}
        if qual is not None:
            if effects.is_io_call(qual):
                taint |= {FILE}
            if effects.is_random_call(qual) or qual.startswith(("numpy.random.", "random.")):
                taint |= {RANDOM}
        if isinstance(call.func, cst.Attribute):
            receiver = call.func.value
            if call.func.attr.value == "copy" and (attr := is_self_attr(receiver)) is not None and is_data_attr(attr):
                taint |= {MEMORY}
            receiver_text = self.ctx.code(receiver).lower()
            taint |= self._taint(receiver, env, seq, func)
            if any(word in receiver_text for word in _RANDOM_RECEIVER_WORDS):
                taint |= {RANDOM}
        if seq is not None and (callee := self.callee(seq, call, func)) is not None:
            taint |= self.returns.get(id(callee), NONE)
        return taint

    def volatile_attrs(self, seq) -> set[str]:
        """Attributes assigned in per-batch or per-epoch code: not constants of the dataset."""
        found: set[str] = set()
        for func in self.ctx.batch_functions(seq, (Phase.BATCH, Phase.EPOCH)):
            for node in walk(func.body):
                targets = []
                if isinstance(node, cst.Assign):
                    targets = [t.target for t in node.targets]
                elif isinstance(node, (cst.AugAssign, cst.AnnAssign)):
                    targets = [node.target]
                for target in targets:
                    for sub in walk(target):
                        if (attr := is_self_attr(sub)) is not None:
                            found.add(attr)
        return found
