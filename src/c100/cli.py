"""The ``c100`` command line: ``c100 <command> --help`` for each command.

    c100 data download|check|info     find, fetch and verify CIFAR-100
    c100 models [--json]              every model with parameters, GFLOPs and family
    c100 recipes [--json]             the named training recipes
    c100 train MODEL --recipe R       train one model into a run folder
    c100 eval CHECKPOINT              test (or validation) error of a checkpoint
    c100 bench MODEL... --recipe R    train several models (and seeds) into one suite
    c100 report RUN_OR_SUITE...       tables and plots from run folders
    c100 predict CHECKPOINT IMAGE...  top-k labels for image files
    c100 export CHECKPOINT --format   ONNX or TorchScript
    c100 tune MODEL --recipe R --trials N   hyperparameter search on the validation split (Optuna)
"""
import argparse
import importlib
import sys

from c100.version import __version__
from c100.cpu_alloc import tune_cpu_allocator
from c100.errors import C100Error

# Each module in c100.commands provides add_parser(subparsers) and run(args) -> exit code.
COMMANDS = ["data", "models", "recipes", "train", "eval", "bench", "report", "predict", "export", "tune"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="c100", description="Train, evaluate and compare image classifiers on CIFAR-100.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--version", action="version", version=f"c100 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # command modules import only argparse-level code at the top (torch, numpy and the model zoo
        # inside run()), so building this parser, and --help, costs about 0.1 s
        module = importlib.import_module(f"c100.commands.{name}")
        p = module.add_parser(sub)
        p.set_defaults(func=module.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    tune_cpu_allocator()  # c100's own process: see c100.cpu_alloc
    try:
        return int(args.func(args) or 0)
    except C100Error as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
