"""c100 export: a trained model as ONNX, TorchScript or safetensors, with a dynamic batch dimension.

    c100 export runs/resnet18-fast-s0 --format onnx                 # -> runs/resnet18-fast-s0/export/resnet18.onnx
    c100 export runs/resnet18-fast-s0/checkpoints/best.pt --format torchscript --out resnet18.pt
    c100 export runs/resnet18-fast-s0 --format safetensors --out weights/resnet18.safetensors
    c100 export runs/resnet18-fast-s0 --format onnx --quantize int8   # -> .../export/resnet18.int8.onnx

CHECKPOINT: a checkpoint (.pt), a run folder (its checkpoints/last.pt) or a .safetensors weights
file. EMA weights are exported when the checkpoint has them.

onnx, torchscript: the model includes the training normalisation. Input "images": float32
(N, 3, 32, 32), RGB in [0, 1] (uint8 pixels / 255) after the resize rule of `c100 predict --help`
(largest centred square, antialiased bicubic to 32x32); output "logits": float32 (N, 100). N is
free. Metadata (model, recipe, class names, superclasses, test error, versions) is stored as ONNX
metadata_props, or as the TorchScript extra file c100_metadata.json. Before it is written, the
export is run (onnxruntime / torch.jit.load) at batch sizes 1 and 7 and must match PyTorch within
1e-4; --no-verify skips that.

--quantize int8 (onnx only): the verified fp32 graph statically quantized with ONNX Runtime
(quantize_static, QOperator, uint8 activations and per-channel 7-bit int8 weights, MinMax), calibrated on
--calib-images train images (default 512, never test images) drawn with --calib-seed (default 0)
from --data-root / $C100_DATA; then the int8 and fp32 test errors are measured (--no-measure: not)
and recorded with the calibration and method in metadata_props. Default out:
RUN/export/<model>.int8.onnx. `c100 eval` / `c100 predict` run .onnx files with ONNX Runtime.
Needs pip install 'c100[export]'.

safetensors: the state_dict and string metadata; load it with `c100.load(PATH)` or `c100 predict`,
which apply the preprocessing and normalisation themselves. --dtype fp16 (or bf16) stores the
weights in half precision (half the size; they load into the fp32 model as they are) and records
the test errors measured from the stored values on the test split of --data-root / $C100_DATA
(the run's own errors are kept as source_test_top1_err / source_test_top5_err; --no-measure records
none). Example, the shipped ResNet18:

    c100 export RUN --format safetensors --dtype fp16 --out weights/resnet18.safetensors
"""
import argparse
import json


def add_parser(sub):
    p = sub.add_parser("export", help="export a checkpoint (ONNX, TorchScript, safetensors)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint (.pt), a run folder or a .safetensors weights file")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors"))
    p.add_argument("--out", help="output file, a new path or a regular file that is replaced atomically; devices, pipes "
                        "and folders are refused (default: RUN/export/<model>.onnx | .torchscript.pt | .safetensors)")
    p.add_argument("--no-verify", action="store_true", help="do not compare the export's logits with PyTorch's")
    p.add_argument("--quantize", choices=("int8",), help="onnx only: static int8 quantization (ONNX Runtime, QOperator "
                        "U8S8, per-channel weights) calibrated on train images; default out RUN/export/<model>.int8.onnx")
    p.add_argument("--calib-images", type=int, default=None, metavar="N",
                   help="--quantize: calibration images drawn from the TRAIN split (default 512)")
    p.add_argument("--calib-seed", type=int, default=None, help="--quantize: seed of the calibration draw (default 0)")
    p.add_argument("--no-measure", action="store_true",
                   help="--quantize: do not measure the int8 and fp32 test errors into the metadata")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="safetensors only: storage precision of the weights (fp16 halves the file); the test "
                        "errors recorded are then measured from the stored values on --data-root's test split")
    p.add_argument("--verify", choices=("full", "structure"), default="full", dest="data_verify",
                   help="--quantize, --dtype: how the data set is checked (structure: for smaller copies)")
    p.add_argument("--data-root", help="where to look for the data set's class names, and the images --quantize "
                        "and --dtype measure on (default: $C100_DATA)")
    p.add_argument("--json", action="store_true", help="print the export report as JSON")
    return p


def run(args):
    from c100.export import export_model

    from c100.errors import ConfigError

    if not args.quantize and (args.calib_images is not None or args.calib_seed is not None):
        raise ConfigError("--calib-images and --calib-seed go with --quantize int8")
    if args.no_measure and not (args.quantize or args.dtype != "fp32"):
        raise ConfigError("--no-measure goes with --quantize int8 or --dtype fp16/bf16")
    report = export_model(args.checkpoint, args.format, args.out, args.data_root, check=not args.no_verify,
                          quantize=args.quantize, calib_images=args.calib_images, calib_seed=args.calib_seed,
                          verify=args.data_verify, measure=not args.no_measure, dtype=args.dtype)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        diff = f", max |logit diff| vs PyTorch {report['max_abs_diff']:.2g}" if "max_abs_diff" in report else ""
        print(f"{report['model']} ({report['weights']} weights) -> {report['out']} [{args.format}{diff}]; "
              f"input: {report['input']}")
        if "storage_dtype" in report:
            errs = (f"test top-1 / top-5 error of the stored weights {report['test_top1_err']:.2f}% / "
                    f"{report['test_top5_err']:.2f}% (tta {report['test_tta']})" if "test_top1_err" in report
                    else report["test_errors"])
            print(f"stored in {report['storage_dtype']}: {errs}")
        q = report.get("quantization")
        if q:
            errs = (f"; test top-1 error int8 {q['int8_test_top1_err']}% vs fp32 {q['fp32_test_top1_err']}%, top-5 "
                    f"{q['int8_test_top5_err']}% vs {q['fp32_test_top5_err']}% (onnxruntime, {q['quant_eval_images']} "
                    f"images)" if "int8_test_top1_err" in q else "")
            print(f"int8: {q['quant_method']}, calibrated on {q['calib_images']} train images (seed "
                  f"{q['calib_seed']}){errs}")
    return 0
