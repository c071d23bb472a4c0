"""ONNX Runtime for exported models: fp32 parity with PyTorch, int8 static quantization (calibrated on the
train split only, metadata), predict/eval of .onnx files, and corrupt or foreign .onnx files."""
import json
import sys

import numpy as np
import pytest
import torch

import c100
from c100.cli import main
from c100.data import cifar
from c100.errors import CheckpointError, ConfigError
from c100.export import export_model
from c100.inference import REPO_WEIGHTS
from c100.onnx_runtime import load_onnx, logits_of, require_ort, session

from test_predict import cli, images, make_run, no_dataset  # noqa: F401  (fixtures shared with test_predict)

pytest.importorskip("onnxruntime")
# ORT fp32 vs PyTorch: max |logit difference| relative to the largest logit (as c100.export.TOLERANCE)
FP32_TOL = 1e-4


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))[0]


@pytest.fixture(scope="module")
def fp32_onnx(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "simplecnn.onnx"
    export_model(run_dir, "onnx", out)
    return out


def random_uint8(n, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))


def assert_close(got, ref):
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() <= FP32_TOL * max(1.0, ref.abs().max().item())


# ----------------------------------------------------------------------------- fp32 parity
def test_ort_fp32_matches_pytorch(run_dir, fp32_onnx):
    x = random_uint8(37)
    ort_model, torch_model = c100.load(fp32_onnx), c100.load(run_dir)
    assert ort_model.metadata["runtime"].startswith("onnxruntime")
    assert_close(ort_model.logits(x, batch_size=16), torch_model.logits(x))


def test_ort_fp32_matches_pytorch_on_shipped_simplecnn(tmp_path):
    shipped = REPO_WEIGHTS / "simplecnn.safetensors"
    if not shipped.is_file():
        pytest.skip("weights/simplecnn.safetensors not shipped")
    export_model(shipped, "onnx", tmp_path / "s.onnx")
    x = random_uint8(64, seed=1)
    assert_close(load_onnx(tmp_path / "s.onnx").logits(x), c100.load(shipped).logits(x))


# ----------------------------------------------------------------------------- int8
@pytest.fixture
def split_spy(monkeypatch):
    """Records every split the int8 step (c100.quantize.quantize_int8) loads, and which it had loaded
    when quantize_static started. (Loading a checkpoint before it may read the test split's labels for
    the class-name mapping of a custom data set: c100.inference.class_names; no images are used.)"""
    import onnxruntime.quantization as q

    import c100.quantize

    calls, at_quantize, fed = [], [], []
    real_load, real_quantize, real_int8 = cifar.load_split, q.quantize_static, c100.quantize.quantize_int8

    def quantize_int8(*a, **kw):
        del calls[:]
        return real_int8(*a, **kw)

    def load_split(root, split, verify="full"):
        calls.append(split)
        return real_load(root, split, verify)

    def quantize_static(model, out, reader, **kw):
        at_quantize.append(list(calls))

        class Tee:  # what the calibration reader feeds, kept for the test
            def get_next(self):
                d = reader.get_next()
                if d is not None:
                    fed.append(d["images"].copy())
                return d

            def __getattr__(self, name):
                return getattr(reader, name)

        return real_quantize(model, out, Tee(), **kw)

    monkeypatch.setattr(cifar, "load_split", load_split)
    monkeypatch.setattr(q, "quantize_static", quantize_static)
    monkeypatch.setattr(c100.quantize, "quantize_int8", quantize_int8)
    return calls, at_quantize, fed


def test_int8_export_records_metadata_and_calibrates_on_train_only(run_dir, tiny_data, tmp_path, split_spy, capsys):
    import onnx

    calls, at_quantize, fed = split_spy
    out = tmp_path / "m.int8.onnx"
    rc = main(["export", str(run_dir), "--format", "onnx", "--quantize", "int8", "--calib-images", "96",
               "--calib-seed", "3", "--data-root", str(tiny_data), "--verify", "structure", "--out", str(out)])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "calibrated on 96 train images" in text.out
    assert at_quantize == [["train"]]  # when calibration ran, only the train split had been read
    assert calls == ["train", "test"]  # the test split is read afterwards, to measure the errors
    # every fed image is a train image / 255, none is a test image; 96 distinct images in all
    train = real_images(tiny_data, "train")
    test = real_images(tiny_data, "test")
    fed = np.concatenate(fed)
    assert fed.shape == (96, 3, 32, 32) and fed.dtype == np.float32 and 0 <= fed.min() and fed.max() <= 1
    as_uint8 = {np.rint(f * 255).astype(np.uint8).tobytes() for f in fed}
    assert len(as_uint8) == 96 and as_uint8 <= {t.tobytes() for t in train}
    assert not as_uint8 & {t.tobytes() for t in test}

    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["calib_split"] == "train" and props["calib_images"] == "96" and props["calib_seed"] == "3"
    assert props["quantization"] == "int8 static" and "quantize_static QOperator" in props["quant_method"]
    assert props["quant_per_channel"] == "true" and props["quant_weight_type"] == "QInt8"
    assert props["quant_activation_type"] == "QUInt8" and props["quant_reduce_range"] == "true"
    assert props["quant_graph_rewrite"] == "relu before maxpool (exact)"
    assert props["model"] == "simplecnn" and len(json.loads(props["fine_names"])) == 100  # the fp32 props kept
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("QLinearConv") == 2 and ops.count("QGemm") == 2 and "Relu" not in ops, ops  # ReLUs folded
    # the recorded errors are those of the written file and of the fp32 graph, measured on the test split
    labels = torch.from_numpy(np.asarray(cifar.load_split(tiny_data, "test", "structure").fine, dtype=np.int64))
    int8_logits = load_onnx(out).logits(torch.from_numpy(test))
    assert float(props["int8_test_top1_err"]) == pytest.approx(top1_err(int8_logits, labels), abs=1e-3)
    fp32_logits = c100.load(run_dir).logits(torch.from_numpy(test))
    assert float(props["fp32_test_top1_err"]) == pytest.approx(top1_err(fp32_logits, labels), abs=1e-3)
    assert props["quant_eval_images"] == str(len(labels))


def test_relu_before_maxpool_is_the_same_function(fp32_onnx):
    """The rewrite that keeps the quantizer from losing simplecnn's ReLUs changes no output bit."""
    import onnx

    from c100.quantize import relu_before_maxpool

    model = onnx.load(str(fp32_onnx))
    before = [n.op_type for n in model.graph.node]
    assert relu_before_maxpool(model) == 2
    after = [n.op_type for n in model.graph.node]
    onnx.checker.check_model(model, full_check=True)
    assert before.count("MaxPool") == after.count("MaxPool") == 2 and sorted(before) == sorted(after)
    assert [i for i, op in enumerate(after) if op == "Relu"][:2] == [i for i, op in enumerate(before) if op == "MaxPool"]
    x = random_uint8(16, seed=5)
    a, b = logits_of(session(fp32_onnx.read_bytes()), x), logits_of(session(model.SerializeToString()), x)
    assert torch.equal(a, b)
    assert relu_before_maxpool(model) == 0  # nothing left to rewrite; a graph without the pattern is left as it is


def real_images(root, split):
    return cifar.load_split(root, split, "structure").images


def top1_err(logits, labels):
    return 100.0 * (1 - (logits.argmax(1) == labels).float().mean().item())


def test_int8_without_measurement_never_reads_the_test_split(run_dir, tiny_data, tmp_path, split_spy):
    calls, _, _ = split_spy
    report = export_model(run_dir, "onnx", tmp_path / "q.onnx", data_root=tiny_data, quantize="int8",
                          calib_images=32, verify="structure", measure=False)
    assert calls == ["train"]
    assert "int8_test_top1_err" not in report["quantization"]


def test_calibration_draw_is_seeded(tiny_data):
    from c100.quantize import calibration_images

    a, b = calibration_images(tiny_data, 50, 0, "structure"), calibration_images(tiny_data, 50, 0, "structure")
    c = calibration_images(tiny_data, 50, 1, "structure")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ConfigError, match="--calib-images"):
        calibration_images(tiny_data, 0, 0, "structure")


@pytest.mark.realdata
@pytest.mark.slow
def test_int8_top1_agrees_with_fp32_on_shipped_simplecnn(real_data, tmp_path):
    shipped = REPO_WEIGHTS / "simplecnn.safetensors"
    if not shipped.is_file():
        pytest.skip("weights/simplecnn.safetensors not shipped")
    fp32, int8 = tmp_path / "s.onnx", tmp_path / "s.int8.onnx"
    export_model(shipped, "onnx", fp32)
    export_model(shipped, "onnx", int8, data_root=real_data, quantize="int8", calib_images=256, measure=False)
    test = cifar.load_split(real_data, "test", "full")
    x, labels = test.images[:2000], torch.from_numpy(np.asarray(test.fine[:2000], dtype=np.int64))
    a, b = logits_of(session(fp32), x), logits_of(session(int8), x)
    agreement = (a.argmax(1) == b.argmax(1)).float().mean().item()
    assert agreement >= 0.95, agreement
    assert top1_err(b, labels) - top1_err(a, labels) <= 1.0


def test_quantize_needs_onnx_format_and_names_the_extra_when_onnxruntime_is_missing(run_dir, tiny_data,
                                                                                    monkeypatch, capsys):
    rc, _, err = cli(capsys, "export", run_dir, "--format", "torchscript", "--quantize", "int8")
    assert rc == ConfigError.exit_code and "--format onnx" in err
    rc, _, err = cli(capsys, "export", run_dir, "--format", "onnx", "--calib-images", "8")
    assert rc == ConfigError.exit_code and "--quantize" in err
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'c100\[export\]'"):
        require_ort()
    rc, _, err = cli(capsys, "export", run_dir, "--format", "onnx", "--quantize", "int8", "--data-root", tiny_data)
    assert rc == ConfigError.exit_code and "pip install 'c100[export]'" in err


# ----------------------------------------------------------------------------- predict / eval
def test_predict_through_onnxruntime_gives_the_checkpoints_table_and_json(run_dir, fp32_onnx, images, capsys):
    rc, out, _ = cli(capsys, "predict", fp32_onnx, images / "photo.jpg", images / "cifar.png", "--json")
    assert rc == 0
    doc = json.loads(out)
    rc, ref_out, _ = cli(capsys, "predict", run_dir, images / "photo.jpg", images / "cifar.png", "--json")
    ref = json.loads(ref_out)
    assert doc["runtime"].startswith("onnxruntime") and ref["runtime"] == "pytorch" and doc["device"] == "cpu"
    assert set(doc) == set(ref)
    for p, r in zip(doc["predictions"], ref["predictions"]):
        assert [t["index"] for t in p["top"]] == [t["index"] for t in r["top"]]
        assert p["superclass"] == r["superclass"]
        assert all(abs(t["prob"] - u["prob"]) < 1e-5 for t, u in zip(p["top"], r["top"]))
    rc, out, _ = cli(capsys, "predict", fp32_onnx, images / "photo.jpg", "--topk", "2")
    assert rc == 0 and "onnxruntime" in out.splitlines()[0] and "photo.jpg" in out.splitlines()[2]


def test_eval_through_onnxruntime_matches_the_checkpoint(run_dir, fp32_onnx, tiny_data, tmp_path, capsys):
    rc, out, err = cli(capsys, "eval", fp32_onnx, "--data-root", tiny_data, "--verify", "structure", "--json")
    assert rc == 0, err
    got = json.loads(out)
    rc, out, err = cli(capsys, "eval", run_dir, "--data-root", tiny_data, "--verify", "structure", "--json",
                       "--tta", "none", "--out", tmp_path / "ev")
    assert rc == 0, err
    ref = json.loads(out)
    assert got["n"] == ref["n"] == 200 and got["top1_err"] == ref["top1_err"] and got["top5_err"] == ref["top5_err"]
    assert got["loss"] == pytest.approx(ref["loss"], abs=1e-4) and got["quantization"] == "none (fp32)"
    rc, _, err = cli(capsys, "eval", fp32_onnx, "--data-root", tiny_data, "--tta", "flip-translate")
    assert rc == ConfigError.exit_code and "flip-translate" in err


def test_eval_of_int8_prints_the_fp32_errors_beside_its_own(run_dir, tiny_data, tmp_path, capsys):
    out = tmp_path / "m.int8.onnx"
    report = export_model(run_dir, "onnx", out, data_root=tiny_data, quantize="int8", calib_images=64,
                          verify="structure")
    q = report["quantization"]
    rc, text, err = cli(capsys, "eval", out, "--data-root", tiny_data, "--verify", "structure")
    assert rc == 0, err
    assert "int8 static" in text and f"top-1 {float(q['fp32_test_top1_err']):.2f}%" in text
    rc, text, _ = cli(capsys, "eval", out, "--data-root", tiny_data, "--verify", "structure", "--json")
    doc = json.loads(text)
    assert doc["top1_err"] == pytest.approx(float(q["int8_test_top1_err"]), abs=1e-3)
    assert doc["fp32_test_top1_err"] == float(q["fp32_test_top1_err"])


# ----------------------------------------------------------------------------- bad files
def foreign_onnx(path):
    """A valid ONNX model that c100 did not write: Identity, no c100 metadata."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["logits"])], "foreign", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.mark.parametrize("case", ["garbage", "empty", "truncated", "foreign"])
def test_corrupt_or_foreign_onnx_files_are_refused(case, fp32_onnx, tmp_path, images, tiny_data, capsys):
    bad = tmp_path / f"{case}.onnx"
    if case == "garbage":
        bad.write_bytes(b"this is not protobuf \x00\xff" * 50)
    elif case == "empty":
        bad.write_bytes(b"")
    elif case == "truncated":
        bad.write_bytes(fp32_onnx.read_bytes()[: fp32_onnx.stat().st_size // 2])
    else:
        foreign_onnx(bad)
    with pytest.raises(CheckpointError, match="not a readable ONNX|not one c100 exported"):
        load_onnx(bad)
    rc, _, err = cli(capsys, "predict", bad, images / "cifar.png")
    assert rc == CheckpointError.exit_code and str(bad) in err and "Traceback" not in err
    rc, _, err = cli(capsys, "eval", bad, "--data-root", tiny_data, "--verify", "structure")
    assert rc == CheckpointError.exit_code and str(bad) in err


def test_an_export_is_told_by_content_too(fp32_onnx, tmp_path, images, capsys):
    """An ONNX export under another name (no .onnx) is still run through ONNX Runtime."""
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(fp32_onnx.read_bytes())
    rc, out, err = cli(capsys, "predict", renamed, images / "cifar.png", "--json")
    assert rc == 0, err
    assert json.loads(out)["runtime"].startswith("onnxruntime")


def test_bench_inference_times_eager_and_onnxruntime_fp32_and_int8(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_inference.py"
    spec = importlib.util.spec_from_file_location("bench_inference", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--models", "logreg", "--batch-sizes", "1", "4", "--runs", "2", "--min-time", "0.01",
                       "--warmup", "1", "--threads", "1", "--runtimes", "eager", "ort-fp32", "ort-int8",
                       "--out", str(out)]) == 0
    assert "| logreg | 4 | 1 |" in capsys.readouterr().out
    rows = json.loads(out.read_text())["results"]
    assert [(r["runtime"], r["batch"]) for r in rows] == [(rt, b) for rt in ("eager", "ort-fp32", "ort-int8")
                                                          for b in (1, 4)]
    eager = {r["batch"]: r["images_per_s"] for r in rows if r["runtime"] == "eager"}
    for r in rows:
        assert r["images_per_s"] > 0 and r["x_eager"] == pytest.approx(r["images_per_s"] / eager[r["batch"]], rel=1e-2)


def test_an_onnx_model_stays_on_the_cpu_and_is_not_exported_again(fp32_onnx, tmp_path, capsys):
    m = c100.load(fp32_onnx)
    x = random_uint8(3)
    assert torch.equal(m.to("cpu").logits(x), m.logits(x))  # .to keeps the graph's own normalisation
    with pytest.raises(ConfigError, match="CPU"):
        m.to("cuda")
    rc, _, err = cli(capsys, "export", fp32_onnx, "--format", "onnx", "--out", tmp_path / "again.onnx")
    assert rc == ConfigError.exit_code and "already an ONNX export" in err
