"""c100 recipes: the named training recipes, their documentation and their per-model values."""
import json


def add_parser(sub):
    p = sub.add_parser("recipes", help="list the named training recipes", description=__doc__)
    p.add_argument("name", nargs="?", help="show one recipe's resolved config")
    p.add_argument("--model", default="resnet18", help="model to resolve per-model values for")
    p.add_argument("--json", action="store_true")
    return p


def run(args):
    from c100.engine.recipes import RECIPES, get_recipe

    if args.name:
        recipe = get_recipe(args.name)
        _check_model(args.model)
        cfg = recipe.config_for(args.model).to_dict()
        print(json.dumps(cfg, indent=1) if args.json else "\n".join(f"{k:>20} = {v}" for k, v in cfg.items()))
        return 0
    if args.json:
        print(json.dumps({n: {"doc": r.doc, "values": r.values, "per_model": r.per_model}
                          for n, r in RECIPES.items()}, indent=1, default=list))
        return 0
    for n, r in RECIPES.items():
        print(f"{n}\n  {r.doc}\n  per-model values for: {', '.join(r.per_model) or '-'}\n")
    return 0


def _check_model(name):
    """An unknown --model is an error with close matches (a config for no model would mislead)."""
    from c100.models import get_entry

    get_entry(name)  # timm/<name> too: the registry resolves it (UnknownNameError with close names)
