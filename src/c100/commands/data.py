"""c100 data: find, download and verify CIFAR-100.

    c100 data download [--data-root DIR]    fetch the official tarball (md5-checked) and unpack it
    c100 data check    [--data-root DIR]    verify shapes, labels, per-class counts, pixel hashes and label names
    c100 data info     [--data-root DIR]    where the data is and what it holds
"""
import argparse
import json


def add_parser(sub):
    p = sub.add_parser("data", help="download and verify CIFAR-100", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("download", "check", "info"))
    p.add_argument("--data-root", help="folder holding cifar-100-python/ (default: $C100_DATA or ~/.cache/c100)")
    p.add_argument("--verify", choices=("full", "structure"), default="full")
    p.add_argument("--json", action="store_true")
    return p


def run(args):
    from c100.data import cifar

    root = cifar.resolve_root(args.data_root)
    if args.action == "download":
        path = cifar.download_dataset(root)
        print(f"CIFAR-100 is in {path}")
    root = cifar.ensure_data(root)
    info = {"root": str(root), "folder": str(cifar.dataset_dir(root)), "verify": args.verify}
    for split in ("train", "test"):
        s = cifar.load_split(root, split, args.verify)
        info[split] = {"images": int(len(s.fine)), "per_class": int(len(s.fine) // cifar.NUM_CLASSES),
                       "pixel_sha256": cifar.pixel_sha256(s.images)}
    meta = cifar.load_meta(root, args.verify)
    info["classes"], info["superclasses"] = len(meta.fine_names), len(meta.coarse_names)
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(f"CIFAR-100 at {info['folder']}: {info['train']['images']} train, {info['test']['images']} test "
              f"images, {info['classes']} classes in {info['superclasses']} superclasses; "
              f"verified ({args.verify})")
    return 0
