"""c100 models: every registered model with its family, parameters, forward GFLOPs at 32x32, the
published CIFAR-100 top-1/top-5 error where a source gives one (its source in the last column:
weiaicunzai/pytorch-cifar100's README, the CRD distillation benchmark's README) and whether c100
ships trained weights for it (weights/<name>.safetensors, usable by `c100 predict <name>`).

The zoo (68 models in 21 families): the seed tutorial's models (logreg, simplecnn); ResNet,
pre-activation, SE, ResNeXt, wide ResNets and stochastic-depth ResNets with CIFAR stems; He et al.'s
CIFAR ResNets 20-1202; the distillation benchmark's teachers and students (resnet8x4/32x4, thin WRNs,
VGG-8/13, its ShuffleNetV1/V2 and MobileNetV2 variants, the *_crd models); VGG, DenseNet, MobileNet,
ShuffleNet, SqueezeNet, GoogLeNet, Inception-v3/v4, Inception-ResNet-v2, Xception, NASNet, Residual
Attention Networks 56/92, PyramidNet, ViT and ConvMixer; any timm model as timm/<name>. `--family`
takes the names in the family column. Other zoos' spellings (vgg16, wrn_40_2, ShuffleV2, ...) are
aliases, listed at the end. Published errors come from the sources' own recipes, not from c100.

Params and GFLOPs are counted once per model and c100 version and cached (c100/model_catalog.py):
the first listing takes about 20 s on a 2-core CPU, later ones well under a second; --recount counts again.
"""
import argparse
import json


def add_parser(sub):
    p = sub.add_parser("models", help="list the model zoo", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="only these models (default: all)")
    p.add_argument("--family", help="only this family")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--recount", action="store_true",
                   help="measure params and GFLOPs again instead of reading them from the cache "
                        "(~/.cache/c100; they are counted once per model and c100 version)")
    return p


def run(args):
    from c100.model_catalog import model_rows

    # an unknown --family or name is an error with close matches
    rows, aliases = model_rows(args.names, args.family, recount=args.recount)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    def err(v):
        return "-" if v is None else f"{v:.2f}"

    print(f"{'model':<22} {'family':<16} {'params':>13} {'GFLOPs':>8} {'top1 err':>8} {'top5 err':>8} "
          f"{'weights':>7}  source of the errors")
    for r in rows:
        print(f"{r['name']:<22} {r['family']:<16} {r['params']:>13,} {r['gflops']:>8.3f} "
              f"{err(r['published_top1_err']):>8} {err(r['published_top5_err']):>8} "
              f"{'yes' if r['weights'] else '-':>7}  {r['published_source'] or '-'}")
    if not args.names and aliases:
        print("aliases: " + ", ".join(f"{a} = {t}" for a, t in aliases.items()))
    return 0
