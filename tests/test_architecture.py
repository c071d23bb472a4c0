"""The shape of the package (issue 16): imports run one way, and the command line starts without torch.

The import graph is read from the source with ast: module -> the c100 modules it imports
(``from c100.models import seed`` names the submodule c100.models.seed; ``from c100.models import
create_model`` names the package).
"""
import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_files():
    out = {}
    for p in (SRC / "c100").rglob("*.py"):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def import_graph(top_level_only=False):
    """{module: {imported c100 modules}}; with ``top_level_only`` the imports run when the module is
    imported (not those inside functions, which run on first use)."""
    files = module_files()
    graph = {m: set() for m in files}
    for m, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in (tree.body if top_level_only else ast.walk(tree)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                         for a in node.names]
            else:
                continue
            graph[m] |= {n for n in names if n in files and n != m}
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on_stack.discard(comp[-1])
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_among_c100_modules_at_import_time():
    assert cycles(import_graph(top_level_only=True)) == []


def test_no_import_cycle_among_c100_modules_even_through_lazy_imports():
    """Function-level imports count too: a cycle hidden inside a function is still two modules that
    need each other (commands.eval -> inference -> onnx_runtime -> commands.eval was one)."""
    assert cycles(import_graph()) == []


def test_only_the_command_line_imports_the_commands():
    """c100.commands and c100.cli are the top layer: no library module imports them (c100.__main__,
    the `python -m c100` entry point, runs the CLI)."""
    top = ("c100.commands", "c100.cli")
    upward = {m: sorted(d for d in deps if d.startswith(top))
              for m, deps in import_graph().items() if not m.startswith(top) and m != "c100.__main__"}
    assert {m: d for m, d in upward.items() if d} == {}


def test_the_model_zoo_has_no_import_cycle_even_through_lazy_imports():
    """The registry imports no family; families import layers and the registry; the package imports
    the families (as timm does). Before, registry -> families -> every family -> registry was a cycle."""
    graph = import_graph()
    zoo = {m: {n for n in deps if n.startswith("c100.models")} for m, deps in graph.items()
           if m.startswith("c100.models")}
    assert cycles(zoo) == []
    assert graph["c100.models.registry"] <= {"c100.errors", "c100.models.timm_adapter"}
    assert not any("c100.models" in graph[m] for m in zoo), "a family imports its own package"


def test_help_and_the_cached_model_list_do_not_import_torch():
    """`c100 --help` (which builds every command's parser) and the model catalog stay torch-free, so the
    command line answers in a fraction of a second; torch alone takes 1-2 s to import on a small CPU."""
    code = ("import sys, c100.cli, c100.model_catalog, c100.run_folder; c100.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'torchvision', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
