"""What an evaluation runs on: the images of the chosen split and the device.

Shared by the three ways `c100 eval` evaluates a file: a checkpoint (c100.commands.eval), a weights
file (c100.shipped) and an ONNX export (c100.onnx_runtime); it sits below all three.
"""


def eval_images(root, split, cfg, verify):
    """(uint8 images, fine labels, coarse labels) of the test split or the config's validation split."""
    from c100.data.cifar import load_split, train_val_indices
    from c100.errors import ConfigError

    if split == "test":
        s = load_split(root, "test", verify)
        return s.images, s.fine, s.coarse
    if cfg is None or not cfg.val_size:
        raise ConfigError("this run held out no validation images (val_size 0, or no config in the weights file); "
                          "use --split test")
    train = load_split(root, "train", verify)
    _, idx = train_val_indices(train.fine, cfg.val_size, cfg.split_seed)  # the images the run validated on
    return train.images[idx], train.fine[idx], train.coarse[idx]


def eval_device(name):
    """The torch device for --device, with c100's CUDA settings applied (c100.engine.device)."""
    from c100.engine.device import configure_cuda, device_kind

    device = device_kind(name)
    configure_cuda(device)
    return device
