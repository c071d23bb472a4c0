"""c100 predict: the top-k CIFAR-100 labels of image files, with the superclass of the top-1 label.

    c100 predict runs/resnet18-fast-s0 cat.jpg dog.png
    c100 predict weights/resnet18.safetensors photos/ --topk 3 --json

WEIGHTS_OR_CHECKPOINT: a weights file (.safetensors, from `c100 export --format safetensors`), a checkpoint (.pt), a
run folder (its checkpoints/last.pt), a model name whose weights ship in weights/<name>.safetensors, or
an .onnx export (`c100 export --format onnx [--quantize int8]`), run by ONNX Runtime on the CPU.

Inputs: a file named on the command line is always decoded, whatever its extension, and must be an
image; a folder is searched recursively for files ending in .png .jpg .jpeg .bmp .gif .webp .tif
.tiff .ppm .pgm .pbm .pnm (any case); other files and hidden files or folders are skipped there.

Preprocessing: decode with Pillow (first frame, EXIF rotation applied); convert to RGB (transparent
pixels onto white, 16-bit samples scaled to 8 bits, CMYK and palettes converted); cut the largest
centred square and resize it to 32x32 with antialiased bicubic (the same as: shorter side to 32 px,
then the centre 32x32); then normalise as the model was trained. 32x32 images are used as they are.

Class names: from the weights file's metadata; for a checkpoint, from the data set's meta file
(--data-root, $C100_DATA, ~/.cache/c100) when present, else the built-in CIFAR-100 list.

Errors: a missing path, a file that is not a readable image (empty, truncated, not an image) or a
folder with no image is reported on stderr as `error: <file>: <why>` (and under "errors" with
--json); the other images are still predicted. Exit code 0 when every input was predicted, 9 when
any failed, 6 when the model cannot be loaded, 2 for bad options.
"""
import argparse
import json
import sys


def add_parser(sub):
    p = sub.add_parser("predict", help="top-k labels for image files", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="WEIGHTS_OR_CHECKPOINT",
                   help="a .safetensors weights file, a checkpoint (.pt), a run folder, a shipped model name "
                        "or an .onnx export")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files and folders of images")
    p.add_argument("--topk", type=int, default=5, help="labels per image (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when available, else the CPU")
    p.add_argument("--data-root", help="where to look for the data set's class names (checkpoints only)")
    return p


def run(args):
    import torch

    from c100.data.cifar import NUM_CLASSES  # every c100 model predicts the 100 CIFAR-100 classes
    from c100.engine.device import device_kind
    from c100.errors import ConfigError, InputImageError
    from c100.images import PREPROCESSING, image_files, load_image
    from c100.inference import load

    if not 1 <= args.topk <= NUM_CLASSES:
        raise ConfigError(f"--topk must be between 1 and {NUM_CLASSES} (the number of CIFAR-100 classes), "
                          f"got {args.topk}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")
    model = load(args.model, device_kind(args.device), args.data_root)
    files, errors = image_files(args.images)
    md = model.metadata
    width = max([len(str(f)) for f in files] + [4])
    if not args.json:
        runtime = f", {md['runtime']}, {md['quantization']}" if md.get("runtime") else ""
        print(f"# {md['model']} (recipe {md['recipe']}, {md['weights']} weights{runtime}) from {md['source']}; "
              f"class names: {md.get('class_names_source', model.class_names.source)}")
        print(f"{'file':<{width}}  {'superclass':<30}  top-{args.topk}")
    predictions = []
    for start in range(0, len(files), args.batch_size):
        chunk, images = [], []
        for f in files[start:start + args.batch_size]:
            try:
                images.append(load_image(f))
                chunk.append(str(f))
            except InputImageError as e:
                errors.append((str(f), str(e)))
        if not images:
            continue
        results = model.results_from_logits(model.logits(torch.stack(images), args.batch_size), args.topk)
        for name, r in zip(chunk, results):
            r = {"file": name, **r}
            predictions.append(r)
            if not args.json:
                print(_row(r, width))
    for _, message in errors:
        print(f"error: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"model": md["model"], "recipe": md["recipe"], "source": md["source"],
                          "weights": md["weights"], "class_names_source": md.get("class_names_source"),
                          "preprocessing": PREPROCESSING, "topk": args.topk, "device": str(model.device),
                          "runtime": md.get("runtime", "pytorch"),
                          "predictions": predictions,
                          "errors": [{"file": f, "error": m} for f, m in errors]}, indent=1))
    if errors:
        total = len(predictions) + len(errors)
        print(f"{len(errors)} of {total} inputs failed; {len(predictions)} predicted", file=sys.stderr)
        return InputImageError.exit_code
    return 0


def _row(r, width):
    sup = r["superclass"]["label"] if r["superclass"] else "-"
    top = ", ".join(f"{t['label']} {100 * t['prob']:.1f}%" for t in r["top"])
    return f"{r['file']:<{width}}  {sup:<30}  {top}"
