"""The model zoo: every registered model builds, runs forward and backward on 32x32 inputs, and
has the published parameter count; ShakeDrop; the timm adapter; the registry's guards."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from c100.errors import ConfigError, UnknownNameError
from c100.models import create_model, get_entry, list_aliases, list_models, register_alias, register_model
from c100.engine.device import cpp_compiler_found
from c100.models.fused_pool import set_cpu_kernels
from c100.models.info import count_params
from c100.models.pyramidnet import ShakeDrop, ShakeDropFunction

ALL_MODELS = list_models()

# Published parameter counts (millions) for 100 classes. Most come from the popular CIFAR-100
# benchmark's README (weiaicunzai/pytorch-cifar100); WRN from Zagoruyko & Komodakis (2016, Table);
# PyramidNet from Han et al. (2017, Table 4).
PUBLISHED_M = {
    "vgg11_bn": 28.5, "vgg13_bn": 28.7, "vgg16_bn": 34.0, "vgg19_bn": 39.0,
    "resnet18": 11.2, "resnet34": 21.3, "resnet50": 23.7, "resnet101": 42.7, "resnet152": 58.3,
    "preactresnet18": 11.3, "preactresnet34": 21.5, "preactresnet50": 23.9, "preactresnet101": 42.9,
    "preactresnet152": 58.6,
    "resnext50": 14.8, "resnext101": 25.3, "resnext152": 33.3,
    "densenet121": 7.0, "densenet161": 26, "densenet201": 18,
    "seresnet18": 11.4, "seresnet34": 21.6, "seresnet50": 26.5, "seresnet101": 47.7, "seresnet152": 66.2,
    "wrn16_8": 11.0, "wrn28_10": 36.5, "wrn40_10": 55.9,
    "mobilenet": 3.3, "mobilenetv2": 2.36,
    "shufflenet": 1.0, "shufflenetv2": 1.3,
    "squeezenet": 0.78,
    "googlenet": 6.2,
    "pyramidnet110_a48": 1.7, "pyramidnet110_a270": 28.3, "pyramidnet272_a200": 26.0,
    # weiaicunzai's rows (their README, 100 classes); stochasticdepth34 has 21.33M here.
    "stochasticdepth18": 11.22, "stochasticdepth34": 21.36, "stochasticdepth50": 23.71,
    "xception": 21.0, "inceptionv4": 41.3,
    "inceptionv3": 22.3,  # 22.0M here: their pool branches of Mixed_5b-5d are 3x3 convs, the paper's 1x1
    # weiaicunzai's "attention59" row (55.7M: 55.64M here) and attention92 (102.5M: 105.3M here, +2.8%;
    # their own code builds 105.4M, so their figure is not their code's). attention.py says why.
    "attention56": 55.7, "attention92": 102.5,
}
# Published counts (millions) for another number of classes: (figure, classes, source).
PUBLISHED_OTHER_CLASSES = {
    # He et al. 2016, Table 6 (CIFAR-10, option A shortcuts); 100 classes add 5,850 fc parameters.
    "resnet20": (0.27, 10, "He et al. 2016 Table 6"), "resnet32": (0.46, 10, "He et al. 2016 Table 6"),
    "resnet44": (0.66, 10, "He et al. 2016 Table 6"), "resnet56": (0.85, 10, "He et al. 2016 Table 6"),
    "resnet110": (1.7, 10, "He et al. 2016 Table 6"), "resnet1202": (19.4, 10, "He et al. 2016 Table 6"),
    # The released Inception-ResNet-v2 (timm model card inception_resnet_v2.tf_in1k, "Params (M): 55.8",
    # 1000 classes). weiaicunzai's 65.4M row is another network (inception.py's docstring says how).
    "inceptionresnetv2": (55.8, 1000, "timm model card"),
}
# Figures printed truncated rather than rounded: ShuffleNet V2 1x has 2.3M parameters with a
# 1000-class fc (Ma et al. 2018), i.e. 1.36M with 100 classes, printed "1.3M"; PyramidNet-110
# alpha=48 has 1.78M, printed "1.7M" in the paper. For these the count must lie in
# [published, published + 0.1M) instead of within 3%.
TRUNCATED = {"shufflenetv2", "pyramidnet110_a48"}
# Exact counts where there is no published figure to compare with.
EXACT = {
    "logreg": 307_300,  # 3072 * 100 + 100
    "simplecnn": 2_168_356,  # the seed tutorial's code
    "resnet18": 11_220_132,  # the seed tutorial's ResNet18; must never change
    # patch embed 48*192+192, class token 192, positions 65*192, 12 blocks of 444,864, norm 384, head 19,300
    "vit_tiny_p4": 5_380_132,
    # The distillation benchmark's networks (Tian et al. 2020, github.com/HobbitLong/RepDistiller):
    # its README publishes accuracies only, so these are the counts of its networks' layer lists
    # (resnet8x4: stem 3x3x3x32 + BN, one basic block per stage at 64/128/256 with 1x1 projections, fc).
    "resnet8x4": 1_233_540, "resnet32x4": 7_433_860,
    "wrn16_1": 180_916, "wrn16_2": 703_284, "wrn40_1": 569_780, "wrn40_2": 2_255_156,
    "vgg8": 3_965_028, "vgg13_crd": 9_462_180,
    # Its students ShuffleV1, ShuffleV2 and MobileNetV2 (mobile_half): no published count found in the
    # CRD paper or README, so these are their layer lists' counts (models/shufflenet.py, mobilenet.py).
    # ShuffleV1: 1x1 stem 96; stage-opening units' bottlenecks 54/60/120 wide (216/240/480 branch
    # outputs); fc 96,100. ShuffleV2 is shufflenetv2 with a 1x1 stem: 1,356,104 - 24 * 3 * (9 - 1).
    # MobileNetV2 at width 0.5: stem 3*16*9 + BN, 17 blocks (expansion conv in each), 160 -> 1280, fc 128,100.
    "shufflenetv1_crd": 949_258, "shufflenetv2_crd": 1_355_528, "mobilenetv2_crd": 812_836,
    # ConvMixer-256/8, k=5, p=2 (no published count): embed 3*256*4+256 + BN 512; 8 x (depthwise
    # 256*25+256, BN 512, pointwise 256*256+256, BN 512) = 8 x 73,472; fc 256*100+100
    "convmixer_256_8": 617_316,
    # NASNet-A 4 @ 1056: weiaicunzai's table says 5.2M, which counts modules its forward never calls
    # (test_nasnet_count_plus_the_benchmarks_unused_paths_is_its_figure checks the sum).
    "nasnet": 4_326_840,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Batch-2 forwards gain little from intra-op threads, and on a busy 2-core machine spinning
    OpenMP threads make them 10x slower; restore the setting for the rest of the session."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _meta_model(name, num_classes=100):
    with torch.device("meta"):  # no memory, no init cost; also proves models don't pick a device
        return create_model(name, num_classes=num_classes)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_backward(name):
    torch.manual_seed(0)  # dropout and ShakeDrop are random in training
    model = create_model(name, num_classes=100).train()
    x = torch.randn(2, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 100)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    loss = F.cross_entropy(logits, torch.tensor([3, 97]))
    loss.backward()
    assert torch.isfinite(loss)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: no gradient for {missing[:5]}"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_num_classes_and_no_device_of_its_own(name):
    model = _meta_model(name, num_classes=7).eval()
    assert all(p.device.type == "meta" for p in model.parameters())
    assert all(b.device.type == "meta" for b in model.buffers())
    assert model(torch.empty(2, 3, 32, 32, device="meta")).shape == (2, 7)


@pytest.mark.parametrize("name", sorted(PUBLISHED_M))
def test_parameter_count_matches_published(name):
    count = count_params(_meta_model(name))
    published = PUBLISHED_M[name] * 1e6
    if name in TRUNCATED:
        assert published <= count < published + 0.1e6, f"{name}: {count:,}"
    else:
        assert abs(count - published) / published <= 0.03, f"{name}: {count:,} vs {published:,.0f}"


@pytest.mark.parametrize("name", sorted(EXACT))
def test_parameter_count_exact(name):
    assert count_params(_meta_model(name)) == EXACT[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_OTHER_CLASSES))
def test_parameter_count_matches_published_for_its_classes(name):
    figure, classes, _source = PUBLISHED_OTHER_CLASSES[name]
    count = count_params(_meta_model(name, num_classes=classes))
    assert abs(count - figure * 1e6) / (figure * 1e6) <= 0.03, f"{name}: {count:,} vs {figure}M"


def test_every_model_has_a_reference_count():
    assert set(ALL_MODELS) == set(PUBLISHED_M) | set(EXACT) | set(PUBLISHED_OTHER_CLASSES)


def test_cifar_resnet_counts_exact_and_100_classes_add_the_fc():
    # resnet20 at 10 classes: stem 464 + stages 14,016 + 51,072 + 203,520 + fc 650 (option A: no
    # shortcut parameters); 100 classes add 64 * 90 + 90.
    assert count_params(_meta_model("resnet20", num_classes=10)) == 269_722
    assert count_params(_meta_model("resnet20")) == 269_722 + 5_850


# --- the families added for issue 21 -------------------------------------------------------------

def test_option_a_shortcut_subsamples_and_zero_pads():
    from c100.models.cifar_resnet import OptionABlock, PadShortcut

    x = torch.randn(2, 16, 8, 8)
    out = PadShortcut(16, 32, 2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2]) and not out[:, 16:].any()
    assert isinstance(OptionABlock(16, 16).shortcut, nn.Identity)
    assert sum(p.numel() for p in OptionABlock(16, 32, 2).shortcut.parameters()) == 0


def test_stochastic_depth_probabilities_and_batch_drops():
    from c100.models.stochastic_depth import DropBasicBlock

    model = _meta_model("stochasticdepth18")
    probs = [m.drop.p for m in model.modules() if isinstance(m, DropBasicBlock)]
    assert probs == pytest.approx([0.5 * (i + 1) / 8 for i in range(8)])  # linear decay to p_L = 0.5
    torch.manual_seed(0)
    block = DropBasicBlock(8, 8).train()
    block.drop.p = 1.0  # always dropped: the block is relu(identity)
    x = torch.randn(4, 8, 6, 6)
    assert torch.equal(block(x), F.relu(x))
    block.eval()  # evaluation runs the branch unscaled, whatever p
    assert torch.equal(block(x), F.relu(block.residual(x) + x))
    block.train().drop.p = 0.5  # a drop removes the branch for the whole batch, never for some rows
    outs = [block(x) for _ in range(20)]
    dropped = [torch.equal(o, F.relu(x)) for o in outs]
    assert any(dropped) and not all(dropped)


def test_aliases_build_their_target_and_are_not_listed():
    aliases = list_aliases()
    assert aliases["vgg16"] == "vgg16_bn" and aliases["wrn_40_2"] == "wrn40_2"
    for alias, target in aliases.items():
        assert target in ALL_MODELS and alias not in ALL_MODELS
        assert get_entry(alias) is get_entry(target)
    assert count_params(_meta_model("wrn_16_2")) == EXACT["wrn16_2"]
    with pytest.raises(ValueError, match="twice"):
        register_alias("vgg16", "vgg19_bn")
    with pytest.raises(ValueError, match="twice"):
        register_alias("resnet20", "resnet32")


# One model of every family added for issue 21, traced in training mode (stochastic depth's random
# drops included); torch._dynamo.explain traces without compiling, which keeps this cheap on a CPU.
COMPILE_CHECKED = ["resnet20", "resnet8x4", "stochasticdepth18", "wrn16_2", "vgg8", "xception", "inceptionv3",
                   "inceptionv4", "convmixer_256_8", "attention56", "nasnet",
                   "shufflenetv1_crd", "shufflenetv2_crd", "mobilenetv2_crd"]


@pytest.mark.parametrize("name", COMPILE_CHECKED)
def test_new_families_trace_without_graph_breaks(name):
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(create_model(name).train())(torch.randn(2, 3, 32, 32))
    assert explanation.graph_break_count == 0, [str(b.reason) for b in explanation.break_reasons]
    assert explanation.graph_count == 1


def test_attention_mask_is_in_unit_interval_at_the_input_size_and_paper_layout_has_identities():
    from c100.models.attention import AttentionNet, PreActUnit, SoftMask

    torch.manual_seed(0)
    x = torch.randn(2, 8, 16, 16)
    for levels in (1, 2, 3):  # 16 -> 8 -> 4 -> 2 and back, skips added at the matching sizes
        mask = SoftMask(8, levels, 4, range(max(levels - 1, 1)), True).eval()(x)
        assert mask.shape == x.shape and 0 < mask.min() and mask.max() < 1
    with torch.device("meta"):
        paper = AttentionNet((1, 1, 1), zoo_layout=False)
    units = [m for m in paper.modules() if isinstance(m, PreActUnit)]
    # Only the four stage-opening units change shape, so only they have a projection shortcut.
    assert sum(u.projection is not None for u in units) == 4
    assert count_params(paper) == 29_960_740  # the paper's layout: ~30M (ImageNet Attention-56: 31.9M)


def test_nasnet_count_plus_the_benchmarks_unused_paths_is_its_figure():
    """weiaicunzai's 5.2M: each cell there builds a factorized reduction *and* a 1x1 conv for h_{i-1}
    (one c_prev x f weight each, biases aside) and calls at most one; c100's cells build the one used."""
    from c100.models.nasnet import FactorizedReduce

    model = _meta_model("nasnet")
    unused = 0
    for cell in model.cells:
        assert not isinstance(cell.prev, nn.Identity)  # every h_{i-1} here needs adapting to f
        conv = next(m for m in cell.prev.modules() if isinstance(m, nn.Conv2d))
        unused += conv.in_channels * cell.cur[1].out_channels
    assert abs(count_params(model) + unused - 5.2e6) / 5.2e6 <= 0.03
    assert sum(isinstance(c.prev, FactorizedReduce) for c in model.cells) == 2  # after each reduction
    assert model.fc.in_features == 1056  # NASNet-A 4 @ 1056


def test_crd_students_aliases_and_layout():
    """RepDistiller's and its README's spellings; MobileNetV2's stride-2 stem ends at 2x2; ShuffleV1's
    first unit has the 54-wide bottleneck (216 / 4) and ShuffleV2 only its 1x1 stem differs."""
    for alias, target in (("ShuffleV1", "shufflenetv1_crd"), ("ShuffleNetV1", "shufflenetv1_crd"),
                          ("ShuffleV2", "shufflenetv2_crd"), ("ShuffleNetV2", "shufflenetv2_crd"),
                          ("MobileNetV2", "mobilenetv2_crd"), ("mobile_half", "mobilenetv2_crd")):
        assert get_entry(alias) is get_entry(target)
    assert get_entry("mobilenetv2").name == "mobilenetv2"  # the lower-case name stays Sandler et al.'s
    model = create_model("mobilenetv2_crd").eval()
    assert model.features(torch.randn(1, 3, 32, 32)).shape == (1, 1280, 2, 2)
    v1 = _meta_model("shufflenetv1_crd")
    assert v1.features[0][0].kernel_size == (1, 1) and v1.features[1].reduce[0].out_channels == 54
    assert count_params(_meta_model("shufflenetv2")) - EXACT["shufflenetv2_crd"] == 24 * 3 * 8


def test_alias_attention59_is_attention56():
    assert get_entry("attention59") is get_entry("attention56")


# --- ShakeDrop ---------------------------------------------------------------------------------

def test_shakedrop_eval_is_deterministic_expected_value():
    sd = ShakeDrop(0.3).eval()
    x = torch.randn(4, 8, 5, 5)
    y1, y2 = sd(x), sd(x)
    assert torch.equal(y1, y2)
    torch.testing.assert_close(y1, 0.7 * x)  # E[b + alpha - b*alpha] = 1 - p with alpha ~ U[-1, 1]


def test_shakedrop_training_is_random_and_unbiased():
    torch.manual_seed(0)
    sd = ShakeDrop(0.3).train()
    x = torch.ones(20_000, 1, 1, 1)
    y1, y2 = sd(x), sd(x)
    assert not torch.equal(y1, y2)
    assert y1.min() >= -1 and y1.max() <= 1  # either kept (1) or scaled by alpha in [-1, 1]
    # alpha is exactly 1 with probability 0, so the kept fraction is the share of ones
    assert (y1 == 1).float().mean().item() == pytest.approx(0.7, abs=0.02)
    assert y1.mean().item() == pytest.approx(0.7, abs=0.02)  # matches the eval scale


def test_shakedrop_function_uses_beta_backward():
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    gate = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1, 1)
    alpha = torch.tensor([-0.5, -0.5, 0.25]).view(3, 1, 1, 1)
    beta = torch.tensor([0.75, 0.75, 0.1]).view(3, 1, 1, 1)
    y = ShakeDropFunction.apply(x, gate, alpha, beta)
    torch.testing.assert_close(y, x.detach() * torch.tensor([-0.5, 1.0, 0.25]).view(3, 1, 1, 1))
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.75, 1.0, 0.1]).view(3, 1, 1, 1).expand_as(x))


def test_shakedrop_off_is_identity_and_bad_probability_rejected():
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(ShakeDrop(0.0).train()(x), x)
    with pytest.raises(ValueError):
        ShakeDrop(1.5)


def test_pyramidnet_drop_probability_grows_linearly_to_half():
    model = _meta_model("pyramidnet110_a48")
    probs = [m.p_drop for m in model.modules() if isinstance(m, ShakeDrop)]
    assert len(probs) == 54
    assert probs == pytest.approx([0.5 * (i + 1) / 54 for i in range(54)])
    torch.manual_seed(0)
    model = create_model("pyramidnet110_a48").eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), model(x))


# --- timm adapter ------------------------------------------------------------------------------

def test_timm_resnet18_has_cifar_stem():
    model = create_model("timm/resnet18", num_classes=100)
    assert model.conv1.stride == (1, 1) and model.conv1.kernel_size == (3, 3)
    assert isinstance(model.maxpool, nn.Identity)
    assert count_params(model) == EXACT["resnet18"]  # same network as the zoo's resnet18
    out = model.train()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 100) and torch.isfinite(out).all()


def test_timm_vit_gets_32px_patch4():
    model = create_model("timm/vit_tiny_patch16_224", num_classes=10)
    assert model.patch_embed.proj.stride == (4, 4)
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_timm_unknown_name_and_pretrained():
    with pytest.raises(UnknownNameError, match="resnet18"):
        create_model("timm/resnet18x")
    with pytest.raises(ConfigError, match="pretrained"):
        create_model("timm/resnet18", pretrained=True)


# --- registry ----------------------------------------------------------------------------------

def test_duplicate_registration_raises():
    list_models()  # make sure every family has registered
    with pytest.raises(ValueError, match="twice"):
        register_model("resnet18", family="resnet")(lambda num_classes=100: nn.Linear(1, num_classes))

    def wrn28_10(num_classes=100):
        return nn.Linear(1, num_classes)

    with pytest.raises(ValueError, match="twice"):
        register_model(family="wideresnet")(wrn28_10)
    assert list_models() == ALL_MODELS


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownNameError, match="resnet18"):
        create_model("resnet19")


@pytest.mark.parametrize("channels_last,kernels", [(False, "aten"), (True, "aten"), (True, "inductor")])
def test_simplecnn_pool_before_relu_equals_the_seeds_order_bitwise(channels_last, kernels):
    """simplecnn runs relu(pool(conv)) for speed (with cpu_kernels=inductor as one generated kernel
    each way, c100.models.fused_pool); outputs and every gradient must equal the seed's
    pool(relu(conv)) exactly, including windows whose maximum is tied, zero or negative."""
    if kernels == "inductor" and not cpp_compiler_found():
        pytest.skip("no C++ compiler for inductor's CPU kernels")
    torch.manual_seed(0)
    model = create_model("simplecnn")
    set_cpu_kernels(model, kernels)

    def seed_forward(m, x):  # the seed tutorial's forward, literally
        x = m.pool(F.relu(m.conv1(x)))
        x = m.pool(F.relu(m.conv2(x)))
        return m.fc2(F.relu(m.fc1(x.flatten(1))))

    with torch.no_grad():  # integer weights and pixels: conv outputs are integers, so many window
        for conv in (model.conv1, model.conv2):  # maxima are tied, zero or negative
            conv.weight.copy_(torch.randint(-1, 2, conv.weight.shape))
            conv.bias.zero_()
    x = torch.randint(-2, 3, (16, 3, 32, 32)).float()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, 100, (16,))
    outs, grads = [], []
    for forward in (seed_forward, lambda m, x: m(x)):
        model.zero_grad(set_to_none=True)
        inp = x.clone().requires_grad_()
        out = forward(model, inp)
        F.cross_entropy(out, y).backward()
        outs.append(out.detach())
        grads.append([inp.grad] + [p.grad.clone() for p in model.parameters()])
    assert torch.equal(outs[0], outs[1])
    for g_seed, g_ours in zip(*grads):
        assert torch.equal(g_seed, g_ours)


def test_models_with_an_unknown_family_is_an_error_with_close_matches(capsys):
    """Issue 15, item 10: `c100 models --family resnets` (a typo) listed every model."""
    from c100.cli import main

    assert main(["models", "--family", "resnets"]) == UnknownNameError.exit_code
    err = capsys.readouterr().err
    assert "unknown model family 'resnets'; did you mean: resnet" in err and "wideresnet" in err
    assert main(["models", "--family", "resnet", "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["family"] for r in rows} == {"resnet"} and len(rows) < len(ALL_MODELS)


def test_published_errors_name_registered_models_with_their_source():
    from c100.models.published import PUBLISHED_ERRORS

    assert set(PUBLISHED_ERRORS) <= set(ALL_MODELS)
    for name, (top1, top5, source) in PUBLISHED_ERRORS.items():
        assert 0 < top1 < 100 and (top5 is None or 0 < top5 < top1) and source, name


def test_models_json_shows_published_error_and_shipped_weights(capsys, monkeypatch):
    """Issue 21: `c100 models` gives, per model, the published error with its source and whether
    trained weights ship (weights/logreg.safetensors does; resnet20 has none)."""
    import json

    from c100.cli import main

    monkeypatch.delenv("C100_WEIGHTS", raising=False)
    assert main(["models", "logreg", "resnet20", "vgg16", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["logreg"]["weights"] is True and rows["logreg"]["published_top1_err"] is None
    assert rows["resnet20"]["weights"] is False
    assert rows["resnet20"]["published_top1_err"] == pytest.approx(100 - 69.06)
    assert rows["resnet20"]["published_source"].startswith("CRD")
    assert (rows["vgg16"]["published_top1_err"], rows["vgg16"]["published_top5_err"]) == (27.07, 8.84)  # an alias
    assert main(["models", "logreg", "resnet20"]) == 0
    out = capsys.readouterr().out
    assert "top1 err" in out and "weights" in out and "30.94" in out


def test_models_help_states_the_zoos_size():
    """`c100 models --help` describes the zoo with its size; a model or family added without updating
    the description fails here."""
    import re

    from c100.commands import models as cmd

    m = re.search(r"The zoo \((\d+) models in (\d+) families\)", cmd.__doc__)
    assert m, cmd.__doc__
    families = {get_entry(n).family for n in ALL_MODELS}
    assert (int(m[1]), int(m[2])) == (len(ALL_MODELS), len(families))
