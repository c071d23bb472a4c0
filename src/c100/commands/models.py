"""c100 models: list every registered model with parameters, forward GFLOPs at 32x32 and family."""
import json


def add_parser(sub):
    p = sub.add_parser("models", help="list the model zoo", description=__doc__)
    p.add_argument("names", nargs="*", help="only these models (default: all)")
    p.add_argument("--family", help="only this family")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    return p


def run(args):
    from c100.models import get_entry, list_models
    from c100.models.info import model_table

    in_family = list_models(args.family)  # an unknown --family is an error with close matches
    names = args.names or in_family
    for n in names:
        if not n.startswith("timm/"):
            get_entry(n)  # unknown names fail here with close matches
    rows = model_table(names)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'model':<22} {'family':<14} {'params':>13} {'GFLOPs':>8}")
    for r in rows:
        print(f"{r['name']:<22} {r['family']:<14} {r['params']:>13,} {r['gflops']:>8.3f}")
    return 0
