"""Model zoo (issue #7): architecture code written outside this project, compiled UNCHANGED, one
case per entry of `tinytrain.tools.support_table.ZOO_MODELS` (the README table). Per model, on the
host at a small resolution: the gradient of every trained tensor vs torch.autograd on the
BN-folded model (1e-4 relative), `predict` vs the eager model, one step's update equal to
`p - lr * grad` of the same program's gradients (the tied-argument read-after-write guard, see
test_tied_reads.py), then 3 SGD steps tracking torch.optim.SGD. The whole torchvision
MobileNetV2-w0.35 case is also the whole-network end-to-end check of `test_numerics.py`, which
runs the project's own MobileNetV2 shortened to a few blocks.

The architectures are installed, pinned test dependencies (`make setup`, `NODEPS_TEST` in the
Makefile), used as shipped:
- torchvision 0.28.0 (the release for torch 2.13), installed `--no-deps`. Its wheels are CUDA
  builds: the native extension `torchvision._C` does not load next to our CPU torch, and
  `import torchvision` then fails in `torchvision._meta_registrations`, which registers meta
  kernels for the extension's operators (`torchvision::nms`, `roi_align`, ...). The model code
  is pure Python and uses none of them, so `_import_torchvision` below registers an empty module
  under that name before the import; nothing else of torchvision is touched, nothing is copied
  and nothing is downloaded (no pretrained weights are requested).
- mcunet 0.1.1.post202206170200 (the MCUNet authors' package), installed `--no-deps`: its
  `ProxylessNASNets` is built from a config dict and its `MobileNetV2` from arguments, with no
  download.

Run only the zoo with `pytest -m zoo`, or skip it with `-m "not zoo"`.
"""

import sys
import types

import pytest
import torch
import torch.nn as nn
from conftest import assert_grads_match, assert_sgd_tracks, assert_step_is_sgd_of_gradients, fold_bn_graph, randomize_bn

import tinytrain
from tinytrain.tools.support_table import ZOO_MODELS

pytestmark = pytest.mark.zoo


def _import_torchvision():
    """torchvision's model code without its CUDA-only native extension (see the module doc)."""
    name = "torchvision._meta_registrations"
    if "torchvision" not in sys.modules:
        stub = types.ModuleType(name, "Meta kernels of torchvision's native operators: not "
                                      "loaded, the zoo uses only the pure-Python model code.")
        sys.modules.setdefault(name, stub)
    import torchvision.models
    return torchvision.models


def _resnet_blocks():
    resnet = _import_torchvision().resnet
    down = nn.Sequential(resnet.conv1x1(16, 32, 2), nn.BatchNorm2d(32))
    return nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1),
                         resnet.BasicBlock(16, 16), resnet.BasicBlock(16, 32, stride=2, downsample=down),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def _mb(cin, cout, k, stride, expand):
    return {"name": "MBInvertedConvLayer", "in_channels": cin, "out_channels": cout, "kernel_size": k,
            "stride": stride, "expand_ratio": expand, "mid_channels": None, "act_func": "relu6",
            "use_se": False}


def _conv_layer(cin, cout, k, stride):
    return {"name": "ConvLayer", "kernel_size": k, "stride": stride, "dilation": 1, "groups": 1,
            "bias": False, "has_shuffle": False, "in_channels": cin, "out_channels": cout, "use_bn": True,
            "act_func": "relu6", "dropout_rate": 0, "ops_order": "weight_bn_act"}


#: A small MCUNet-style search result: kernels 3/5/7, expand ratios 1/3/6, an identity residual.
PROXYLESS_CONFIG = {
    "name": "ProxylessNASNets",
    "bn": {"momentum": 0.1, "eps": 0.001},
    "first_conv": _conv_layer(3, 8, 3, 2),
    "blocks": [
        {"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": _mb(8, 8, 3, 1, 1), "shortcut": None},
        {"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": _mb(8, 16, 5, 2, 3), "shortcut": None},
        {"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": _mb(16, 16, 7, 1, 6),
         "shortcut": {"name": "IdentityLayer", "in_channels": 16, "out_channels": 16, "use_bn": False,
                      "act_func": None, "dropout_rate": 0, "ops_order": "weight_bn_act"}},
        {"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": _mb(16, 24, 3, 2, 6), "shortcut": None},
    ],
    "feature_mix_layer": _conv_layer(24, 64, 1, 1),
    "classifier": {"name": "LinearLayer", "in_features": 64, "out_features": 10, "bias": True,
                   "use_bn": False, "act_func": None, "dropout_rate": 0.2, "ops_order": "weight_bn_act"},
}


def _proxyless():
    from mcunet.tinynas.nn.networks import ProxylessNASNets
    return ProxylessNASNets.build_from_config(PROXYLESS_CONFIG)


def _mcunet_mbv2():
    from mcunet.tinynas.nn.networks import MobileNetV2
    return MobileNetV2(n_classes=10, width_mult=0.35)


#: case -> the model builder. Input shapes and trained tensors are declared with the cases
#: (ZOO_MODELS), which the README table shows.
BUILDERS = {
    "mobilenet_v2_w035": lambda: _import_torchvision().mobilenet_v2(width_mult=0.35, num_classes=10),
    "mnasnet0_5": lambda: _import_torchvision().mnasnet0_5(num_classes=10),
    "mobilenet_v3_small": lambda: _import_torchvision().mobilenet_v3_small(num_classes=10),
    "resnet_basic_blocks": _resnet_blocks,
    "squeezenet1_1": lambda: _import_torchvision().squeezenet1_1(num_classes=10),
    "mcunet_proxyless": _proxyless,
    "mcunet_mobilenet_v2": _mcunet_mbv2,
}
CASES = {m.key: m for m in ZOO_MODELS}


def test_cases_are_the_declared_ones():
    assert set(BUILDERS) == {m.key for m in ZOO_MODELS}


@pytest.mark.parametrize("key", list(CASES))
def test_zoo_model_gradients_and_sgd(key):
    shape, prefixes = CASES[key].input, CASES[key].trained
    torch.manual_seed(0)
    model = randomize_bn(BUILDERS[key]())
    names = [n for n, _ in fold_bn_graph(model).named_parameters()]
    trainable = names if prefixes == "all" else [n for n in names if n.startswith(tuple(prefixes))]
    assert trainable and (prefixes == "all" or len(trainable) < len(names))
    x = torch.randn(*shape)
    y = torch.arange(shape[0]) % 10
    prog = tinytrain.compile(model, x, trainable=trainable, lr=0.05, gradients=True)
    grads = assert_grads_match(prog, model, x, y, fold=fold_bn_graph)
    assert sorted(grads) == sorted(trainable)
    ref = model(x).detach().numpy()
    assert abs(prog.predict(x) - ref).max() <= 1e-4 * max(1.0, abs(ref).max())
    before = assert_step_is_sgd_of_gradients(prog, x, y)
    prog.load_state_dict({k: torch.from_numpy(v) for k, v in before.items()})
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(*shape, generator=g) for _ in range(3)]
    ys = [torch.randint(0, 10, (shape[0],), generator=g) for _ in range(3)]
    assert_sgd_tracks(prog, model, xs, ys, lr=0.05, fold=fold_bn_graph)
