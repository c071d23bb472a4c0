"""c100 export (ONNX, TorchScript, safetensors), torch.hub entry points and the inference benchmark script."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import c100
from c100.cli import main
from c100.errors import CheckpointError
from c100.export import TORCHSCRIPT_METADATA, wrap
from c100.images import load_image

from test_predict import no_dataset, run_dir  # noqa: F401  (fixtures shared with test_predict)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def loaded(run_dir):
    return c100.load(run_dir)


def unit_images(batch, seed=0):
    return torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def reference(loaded, x):
    with torch.no_grad():
        return loaded.model(loaded.normalizer(x * 255.0))


def export(capsys, run_dir, fmt, out):
    rc = main(["export", str(run_dir), "--format", fmt, "--out", str(out)])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert out.is_file() and str(out) in text.out
    return text.out


def test_onnx_round_trip_with_dynamic_batch(run_dir, loaded, tmp_path, capsys):
    import onnx
    import onnxruntime as ort

    out = tmp_path / "m.onnx"
    assert "max |logit diff|" in export(capsys, run_dir, "onnx", out)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "images" and outp.name == "logits" and not isinstance(inp.shape[0], int)
    for batch in (1, 7):
        x = unit_images(batch, batch)
        got = torch.from_numpy(sess.run(None, {"images": x.numpy()})[0])
        assert got.shape == (batch, 100)
        assert torch.allclose(got, reference(loaded, x), atol=1e-4, rtol=0)
    props = {p.key: p.value for p in onnx.load(str(out), load_external_data=False).metadata_props}
    assert props["model"] == "simplecnn" and len(json.loads(props["fine_names"])) == 100
    assert props["normalize"] == "cifar100" and "[0, 1]" in props["input"] and props["test_top1_err"] == "61.25"


def test_torchscript_round_trip_with_dynamic_batch(run_dir, loaded, tmp_path, capsys):
    out = tmp_path / "m.torchscript.pt"
    export(capsys, run_dir, "torchscript", out)
    extra = {TORCHSCRIPT_METADATA: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated, and still works
        ts = torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra[TORCHSCRIPT_METADATA])
    assert meta["model"] == "simplecnn" and json.loads(meta["coarse_names"])[0] == "aquatic_mammals"
    for batch in (1, 7):
        x = unit_images(batch, batch)
        with torch.no_grad():
            assert torch.allclose(ts(x), reference(loaded, x), atol=1e-4, rtol=0)


def test_exported_model_on_unit_floats_matches_predict_on_uint8(loaded, tmp_path):
    """What the exports take (uint8 / 255) gives what c100.load gives on the uint8 pixels."""
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    u8 = load_image(tmp_path / "a.png")[None]
    with torch.no_grad():
        got = wrap(loaded)(u8.float() / 255)
    assert torch.allclose(got, loaded.logits(u8), atol=1e-4, rtol=0)


def test_safetensors_export_and_default_out(run_dir, loaded, capsys):
    rc = main(["export", str(run_dir), "--format", "safetensors", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["out"] == str(run_dir / "export" / "simplecnn.safetensors")
    again = c100.load(report["out"])
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(again.logits(x), loaded.logits(x))


def test_fp16_weights_halve_the_file_and_record_the_errors_measured_from_it(run_dir, loaded, tiny_data, tmp_path,
                                                                           capsys):
    from c100.weights import read_weights

    data = ["--data-root", str(tiny_data), "--verify", "structure"]
    out16, out32 = tmp_path / "m16.safetensors", tmp_path / "m32.safetensors"
    assert main(["export", str(run_dir), "--format", "safetensors", "--out", str(out32)]) == 0
    capsys.readouterr()
    assert main(["export", str(run_dir), "--format", "safetensors", "--dtype", "fp16", "--out", str(out16),
                 "--json", *data]) == 0
    report = json.loads(capsys.readouterr().out)
    assert out16.stat().st_size < 0.55 * out32.stat().st_size
    state, raw = read_weights(out16)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert raw["storage_dtype"] == "fp16" and "fp16" in raw["test_err_of"]
    assert raw["source_test_top1_err"] == "61.25" and raw["source_test_top5_err"] == "33.5"
    # the errors recorded are what `c100 eval` measures on the stored file, not the run's 61.25 of fp32 weights
    assert main(["eval", str(out16), "--json", *data]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert float(raw["test_top1_err"]) == ev["top1_err"] == report["test_top1_err"] and ev["n"] == 200
    assert float(raw["test_top5_err"]) == ev["top5_err"] and ev["shipped_test_top1_err"] == ev["top1_err"]
    m16 = c100.load(out16)  # fp16 values in the fp32 model: logits within fp16 rounding of the fp32 model's
    assert m16.metadata["storage_dtype"] == "fp16" and next(m16.model.parameters()).dtype == torch.float32
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    diff = (m16.logits(x) - loaded.logits(x)).abs().max().item()
    assert 0 < diff < 1e-2


def test_fp16_weights_without_measurement_claim_no_test_error(run_dir, tmp_path, capsys):
    from c100.weights import read_weights

    out = tmp_path / "m.safetensors"
    assert main(["export", str(run_dir), "--format", "safetensors", "--dtype", "bf16", "--no-measure",
                 "--out", str(out)]) == 0  # no data needed: nothing is measured
    assert "not measured" in capsys.readouterr().out
    _, raw = read_weights(out)
    assert raw["storage_dtype"] == "bf16" and "test_top1_err" not in raw and "test_err_of" not in raw
    assert raw["source_test_top1_err"] == "61.25"
    assert c100.load(out).metadata["test_top1_err"] is None


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx", "--dtype", "fp16"], "--dtype fp16/bf16 is for --format safetensors"),
    (["--format", "safetensors", "--no-measure"], "--no-measure goes with"),
    (["--format", "safetensors", "--dtype", "fp16"], "CIFAR-100"),  # measuring needs the data: none here
])
def test_reduced_precision_export_refuses_what_it_cannot_do(run_dir, tmp_path, capsys, args, message):
    out = tmp_path / "m.out"
    rc = main(["export", str(run_dir), *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc != 0 and message in err and not out.exists(), err


def test_export_of_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    rc = main(["export", str(tmp_path / "none.pt"), "--format", "onnx"])
    assert rc == CheckpointError.exit_code and "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------- torch.hub
def test_hub_load_from_the_repository(tmp_path, monkeypatch, run_dir):
    m = torch.hub.load(str(REPO), "resnet18", source="local")
    assert isinstance(m, torch.nn.Module) and m.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 100)
    monkeypatch.setenv("C100_WEIGHTS", str(tmp_path))
    with pytest.raises(CheckpointError, match=r"simplecnn\.safetensors does not exist"):
        torch.hub.load(str(REPO), "simplecnn", source="local", pretrained=True)
    w = c100.inference.save_weights(run_dir, tmp_path / "simplecnn.safetensors")
    pre = torch.hub.load(str(REPO), "simplecnn", source="local", pretrained=True)
    same = torch.hub.load(str(REPO), "c100_model", "simplecnn", weights=str(w), source="local")
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(pre(x), same(x)) and not pre.training
    assert pre.c100_metadata["normalize"] == "cifar100" and len(pre.c100_metadata["fine_names"]) == 100


# ----------------------------------------------------------------------------- the benchmark script
def test_bench_inference_script_runs(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_inference", REPO / "scripts" / "bench_inference.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    assert bench.main(["--models", "logreg", "--batch-sizes", "1", "4", "--runs", "2", "--min-time", "0.01",
                       "--warmup", "1", "--threads", "1", "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads
    assert "| logreg | 4 | 1 |" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert [(r["batch"], r["threads"]) for r in doc["results"]] == [(1, 1), (4, 1)]
    assert doc["results"][0]["images_per_s"] > 0


# ----------------------------------------------------------------------------- files that are not checkpoints
def test_exports_and_other_files_given_to_predict_or_eval_are_named_and_never_get_torchs_advice(
        run_dir, tmp_path, capsys):
    """Issue 15, item 8: a TorchScript export was 'truncated or corrupt', an ONNX export or a text file was
    'refused: names code', and all three repeated torch's advice to load with weights_only=False."""
    export(capsys, run_dir, "torchscript", tmp_path / "m.torchscript.pt")
    export(capsys, run_dir, "onnx", tmp_path / "m.onnx")
    (tmp_path / "notes.txt").write_text("a note, not a model\n")
    with warnings.catch_warnings():  # torch.jit is deprecated, and still what others' files are
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "other.torchscript.pt"))
    import zipfile
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as z:
        z.writestr("a.txt", "x")
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes())
    image = tmp_path / "img.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    # m.onnx is not refused since issue 22: predict and eval run it through ONNX Runtime (test_onnx_runtime.py)
    expect = {"m.torchscript.pt": "a c100 TorchScript export (`c100 export --format torchscript`)",
              "notes.txt": "text file", "other.torchscript.pt": "a TorchScript archive",
              "photos.zip": "zip archive that torch.save did not write", "random.bin": "not a zip archive"}
    for name, what in expect.items():
        for argv in (["predict", str(tmp_path / name), str(image)], ["eval", str(tmp_path / name)]):
            rc = main(argv)
            err = capsys.readouterr().err
            assert rc == CheckpointError.exit_code, (argv, err)
            assert f"{name} is not a c100 checkpoint: it is" in err and what in err, err
            assert "`c100 eval` takes a checkpoint" in err and "weights_only" not in err, err


def test_a_checkpoint_naming_code_is_refused_without_torchs_weights_only_false_advice(tmp_path):
    import os

    from c100.checkpoint import load_checkpoint

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/PWNED",))

    torch.save({"format": "c100-checkpoint", "config": {}, "model": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused") as e:
        load_checkpoint(tmp_path / "evil.pt")
    assert "posix.system" in str(e.value) and "weights_only" not in str(e.value)
    assert not (tmp_path / "PWNED").exists()


def test_export_out_must_be_a_regular_file_or_a_new_path(run_dir, tmp_path, capsys):
    """Issue 15, item 9: `c100 export --out /dev/full` replaced the device with a regular file (as root).
    A FIFO stands in for the device here (replacing /dev/full in a test would be harmful)."""
    import os
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "link").symlink_to(fifo)
    for fmt in ("onnx", "torchscript", "safetensors"):
        for out, why in ((fifo, "not a regular file"), (tmp_path / "link", "not a regular file"),
                         (folder, "is a folder")):
            rc = main(["export", str(run_dir), "--format", fmt, "--out", str(out)])
            err = capsys.readouterr().err
            assert rc == 2 and why in err, err
        assert stat.S_ISFIFO(os.stat(fifo).st_mode) and list(folder.iterdir()) == []
    existing = tmp_path / "old.safetensors"
    existing.write_bytes(b"old")
    export(capsys, run_dir, "safetensors", existing)  # a regular file is replaced
    assert existing.read_bytes() != b"old"
