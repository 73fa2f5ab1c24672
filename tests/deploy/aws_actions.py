"""The AWS actions linkplane's server code can call, found by reading the code (ast), not by
running it.

Every AWS call goes through ``calls.Context.call/collect/paginate`` (``ctx.call("ec2",
"DescribeVpcEndpoints", ...)``); AssumeRole is the one call made outside it (``sessions``, by
the control plane's own principal). The action argument may be a string literal, a name bound to
literals in the function or module (an assignment, a ``for`` over literal tuples), or a
parameter of the enclosing function whose callers in the same module pass literals. Anything
else is reported as unresolved, so a call this scan cannot read fails the IAM policy test
instead of being missed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server" / "src" / "linkplane" / "server"

# botocore service name → IAM service prefix.
IAM_PREFIX = {
    "ec2": "ec2",
    "elbv2": "elasticloadbalancing",
    "service-quotas": "servicequotas",
    "sts": "sts",
}
CONTEXT_METHODS = frozenset({"call", "collect", "paginate"})


@dataclass(frozen=True)
class CallSite:
    """One AWS action a line of server code can call."""

    module: str  # path relative to the server package, e.g. "aws/endpoints.py"
    line: int
    service: str  # botocore service name
    action: str

    @property
    def iam_action(self) -> str:
        return f"{IAM_PREFIX[self.service]}:{self.action}"


@dataclass
class Scan:
    """What the scan found: resolved call sites, and the ones it could not read."""

    calls: list[CallSite] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


def scan(root: Path = SERVER) -> Scan:
    """Every AWS call site under ``root`` (the server package)."""
    result = Scan()
    for path in sorted(root.rglob("*.py")):
        module = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(), filename=str(path))
        _Module(module, tree, result).visit(tree)
    return result


class _Module(ast.NodeVisitor):
    def __init__(self, module: str, tree: ast.Module, result: Scan) -> None:
        self.module = module
        self.tree = tree
        self.result = result
        self.scopes: list[ast.AST] = [tree]
        self.parents: dict[ast.AST, ast.AST] = {}
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.scopes.append(node)
        self.generic_visit(node)
        self.scopes.pop()

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.scopes.append(node)
        self.generic_visit(node)
        self.scopes.pop()

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if not isinstance(func, ast.Attribute):
            return
        if func.attr == "assume_role":
            self._record(node, "sts", {"AssumeRole"})
            return
        if func.attr not in CONTEXT_METHODS:
            return
        if self.module == "aws/calls.py":
            return  # the choke point itself forwards its callers' service and action
        if self.module == "aws/permissions.py":
            # CheckAccount's probes: each is an action found at its real call site (a test in
            # tests/api/test_check_account.py holds the two lists equal), or
            # sts:GetCallerIdentity, which IAM never refuses.
            return
        receiver = func.value
        receiver_name = (
            receiver.id
            if isinstance(receiver, ast.Name)
            else receiver.attr
            if isinstance(receiver, ast.Attribute)
            else ""
        )
        first = node.args[0] if node.args else None
        literal_first = isinstance(first, ast.Constant) and isinstance(first.value, str)
        if literal_first or "ctx" in receiver_name or "context" in receiver_name.lower():
            # ctx.call("ec2", ...), self.ctx.collect(...), context.paginate(...): a Context.
            args = node.args[0:2]
        else:
            return
        if len(args) < 2:
            self._unresolved(node, "fewer than two positional arguments")
            return
        services = self._resolve(args[0], self.scopes[-1], depth=0)
        actions = self._resolve(args[1], self.scopes[-1], depth=0)
        if services is None or actions is None or len(services) != 1:
            self._unresolved(node, ast.unparse(node)[:120])
            return
        (service,) = services
        if service not in IAM_PREFIX:
            self._unresolved(node, f"unknown AWS service {service!r}: add it to IAM_PREFIX")
            return
        self._record(node, service, actions)

    def _record(self, node: ast.Call, service: str, actions: set[str]) -> None:
        for action in sorted(actions):
            self.result.calls.append(CallSite(self.module, node.lineno, service, action))

    def _unresolved(self, node: ast.Call, why: str) -> None:
        self.result.unresolved.append(f"{self.module}:{node.lineno}: {why}")

    def _resolve(self, expr: ast.expr, scope: ast.AST, depth: int) -> set[str] | None:
        """The string values ``expr`` can have, or None if they cannot be read statically."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if not isinstance(expr, ast.Name) or depth > 3:
            return None
        name = expr.id
        for where in (scope, self.tree):
            values = self._bound_literals(name, where, depth)
            if values is not None:
                return values
        return None

    def _bound_literals(self, name: str, scope: ast.AST, depth: int) -> set[str] | None:
        values: set[str] = set()
        found = False
        body = scope.body if isinstance(scope, ast.Module) else [scope]
        nodes = [n for stmt in body for n in ast.walk(stmt)]
        for node in nodes:
            if isinstance(scope, ast.Module) and self._inside_function(node):
                continue
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                found = True
                value = self._resolve(node.value, scope, depth + 1)
                if value is None:
                    return None
                values |= value
            elif isinstance(node, ast.For):
                loop = self._loop_literals(node, name)
                if loop is not None:
                    found = True
                    values |= loop
        if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
            params = [a.arg for a in [*scope.args.posonlyargs, *scope.args.args]]
            if name in params:
                found = True
                passed = self._passed_to(scope, params.index(name), name, depth)
                if passed is None:
                    return None
                values |= passed
        return values if found else None

    def _inside_function(self, node: ast.AST) -> bool:
        parent = self.parents.get(node)
        while parent is not None:
            if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                return True
            parent = self.parents.get(parent)
        return False

    @staticmethod
    def _loop_literals(node: ast.For, name: str) -> set[str] | None:
        if not isinstance(node.iter, ast.Tuple | ast.List):
            return None
        if isinstance(node.target, ast.Name) and node.target.id == name:
            index = None
        elif isinstance(node.target, ast.Tuple):
            names = [t.id if isinstance(t, ast.Name) else None for t in node.target.elts]
            if name not in names:
                return None
            index = names.index(name)
        else:
            return None
        values: set[str] = set()
        for element in node.iter.elts:
            item = element
            if index is not None:
                if not isinstance(element, ast.Tuple) or len(element.elts) <= index:
                    return set()
                item = element.elts[index]
            if not (isinstance(item, ast.Constant) and isinstance(item.value, str)):
                return set()
            values.add(item.value)
        return values

    def _passed_to(
        self, function: ast.FunctionDef | ast.AsyncFunctionDef, index: int, name: str, depth: int
    ) -> set[str] | None:
        """What the module's callers of ``function`` pass as its parameter ``name``."""
        values: set[str] = set()
        callers = 0
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called != function.name:
                continue
            callers += 1
            arg: ast.expr | None = None
            if index < len(node.args):
                arg = node.args[index]
            for keyword in node.keywords:
                if keyword.arg == name:
                    arg = keyword.value
            if arg is None:
                return None
            scope = self._enclosing_function(node) or self.tree
            value = self._resolve(arg, scope, depth + 1)
            if value is None:
                return None
            values |= value
        return values if callers else None

    def _enclosing_function(self, node: ast.AST) -> ast.AST | None:
        parent = self.parents.get(node)
        while parent is not None:
            if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef):
                return parent
            parent = self.parents.get(parent)
        return None
