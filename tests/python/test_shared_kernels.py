"""`shared_kernels.share_slice_kernels`: same-shaped channel slices read their offsets as push
constants, so IREE compiles one kernel for them; the results stay bit-exact."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

import cortexm_programs as programs  # noqa: E402
import cortexm_reference as reference  # noqa: E402
from tinytrain.lowering.cortexm import firmware, iree_static  # noqa: E402
from tinytrain.lowering.cortexm.shared_kernels import share_slice_kernels  # noqa: E402

D, C, G, LR = 16, 8, 4, 0.05

# y = x @ W, g = y - onehot(label); W's SGD update computed per group of G output channels, each
# group's columns inserted into W's value (as channel-groups updates a trained weight)
_UPDATE = """
  %w{k} = tensor.extract_slice %acc{k}[0, {o}] [{D}, {G}] [1, 1] : tensor<{D}x{C}xf32> to tensor<{D}x{G}xf32>
  %g{k} = tensor.extract_slice %g[0, {o}] [1, {G}] [1, 1] : tensor<1x{C}xf32> to tensor<1x{G}xf32>
  %e{k} = tensor.empty() : tensor<{D}x{G}xf32>
  %n{k} = linalg.generic {{indexing_maps = [affine_map<(i,j)->(i,j)>, affine_map<(i,j)->(0,i)>, affine_map<(i,j)->(0,j)>, affine_map<(i,j)->(i,j)>], iterator_types = ["parallel","parallel"]}} ins(%w{k}, %x, %g{k} : tensor<{D}x{G}xf32>, tensor<1x{D}xf32>, tensor<1x{G}xf32>) outs(%e{k} : tensor<{D}x{G}xf32>) {{
{SGD_BODY}
  }} -> tensor<{D}x{G}xf32>
  %acc{k1} = tensor.insert_slice %n{k} into %acc{k}[0, {o}] [{D}, {G}] [1, 1] : tensor<{D}x{G}xf32> into tensor<{D}x{C}xf32>
"""

_PROGRAM = """
func.func @train_step(%w: tensor<{D}x{C}xf32> {{iree.abi.output = 0 : index}}, %x: tensor<1x{D}xf32>, %label: tensor<1xi32>) -> (tensor<{D}x{C}xf32>, tensor<f32>) {{
  %c0 = arith.constant 0.0 : f32
  %lr = arith.constant {LR:.8e} : f32
  %e = tensor.empty() : tensor<1x{C}xf32>
  %ew = tensor.empty() : tensor<{D}x{C}xf32>
  %z = linalg.fill ins(%c0 : f32) outs(%e : tensor<1x{C}xf32>) -> tensor<1x{C}xf32>
  %y = linalg.matmul ins(%x, %w : tensor<1x{D}xf32>, tensor<{D}x{C}xf32>) outs(%z : tensor<1x{C}xf32>) -> tensor<1x{C}xf32>
  %g = linalg.generic {{indexing_maps = [affine_map<(i,j)->(i,j)>, affine_map<(i,j)->(i)>, affine_map<(i,j)->(i,j)>], iterator_types = ["parallel","parallel"]}} ins(%y, %label : tensor<1x{C}xf32>, tensor<1xi32>) outs(%e : tensor<1x{C}xf32>) {{
  ^bb0(%a: f32, %l: i32, %o: f32):
{ONEHOT}
    %d = arith.subf %a, %t : f32
    linalg.yield %d : f32
  }} -> tensor<1x{C}xf32>
  %acc0 = linalg.copy ins(%w : tensor<{D}x{C}xf32>) outs(%ew : tensor<{D}x{C}xf32>) -> tensor<{D}x{C}xf32>
{UPDATES}
  %el = tensor.empty() : tensor<f32>
  %zl = linalg.fill ins(%c0 : f32) outs(%el : tensor<f32>) -> tensor<f32>
  %loss = linalg.generic {{indexing_maps = [affine_map<(i,j)->(i,j)>, affine_map<(i,j)->()>], iterator_types = ["reduction","reduction"]}} ins(%g : tensor<1x{C}xf32>) outs(%zl : tensor<f32>) {{
  ^bb0(%gv: f32, %o: f32):
    %sq = arith.mulf %gv, %gv : f32
    %r = arith.addf %o, %sq : f32
    linalg.yield %r : f32
  }} -> tensor<f32>
  return %acc{N}, %loss : tensor<{D}x{C}xf32>, tensor<f32>
}}
"""


def grouped_sgd() -> str:
    n = C // G
    updates = "".join(_UPDATE.format(k=k, k1=k + 1, o=k * G, D=D, C=C, G=G, SGD_BODY=programs.SGD_BODY) for k in range(n))
    return _PROGRAM.format(D=D, C=C, LR=LR, N=n, UPDATES=updates, ONEHOT=programs.ONEHOT)


def test_channel_slices_at_different_offsets_read_them_through_barriers():
    out, count = share_slice_kernels(grouped_sgd())
    assert count == 3 * (C // G)   # per group: W's and g's slices, the insert
    assert out.count("util.optimization_barrier %c") == C // G   # one per distinct offset
    assert "tensor.extract_slice %x" not in out
    assert share_slice_kernels(out) == (out, 0)   # its offsets are dynamic now: nothing to do


def test_spatial_slices_and_the_step_input_keep_static_offsets():
    text = """
func.func @train_step(%a: tensor<1x8x8x16xf32>, %x: tensor<1x8x8x16xf32>, %l: tensor<1xi32>) -> (tensor<1x8x8x8xf32>, tensor<1x8x8x8xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x8x8x8xf32>, tensor<1x8x8x8xf32>) {
  %c0 = tensor.extract_slice %a[0, 0, 0, 0] [1, 8, 8, 8] [1, 1, 1, 1] : tensor<1x8x8x16xf32> to tensor<1x8x8x8xf32>
  %c1 = tensor.extract_slice %a[0, 0, 0, 8] [1, 8, 8, 8] [1, 1, 1, 1] : tensor<1x8x8x16xf32> to tensor<1x8x8x8xf32>
  %r0 = tensor.extract_slice %a[0, 0, 0, 0] [1, 4, 8, 16] [1, 1, 1, 1] : tensor<1x8x8x16xf32> to tensor<1x4x8x16xf32>
  %r1 = tensor.extract_slice %a[0, 4, 0, 0] [1, 4, 8, 16] [1, 1, 1, 1] : tensor<1x8x8x16xf32> to tensor<1x4x8x16xf32>
  %i0 = tensor.extract_slice %x[0, 0, 0, 0] [1, 8, 8, 8] [1, 1, 1, 1] : tensor<1x8x8x16xf32> to tensor<1x8x8x8xf32>
  %i1 = tensor.extract_slice %x[0, 0, 0, 8] [1, 8, 8, 8] [1, 1, 1, 1] : tensor<1x8x8x16xf32> to tensor<1x8x8x8xf32>
  return %c0, %c1, %r0, %r1, %i0, %i1 : tensor<1x8x8x8xf32>, tensor<1x8x8x8xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x8x8x8xf32>, tensor<1x8x8x8xf32>
}
"""
    out, count = share_slice_kernels(text)
    assert count == 2   # the channel halves of %a only
    assert out.count("util.optimization_barrier") == 2   # offsets 0 and 8
    assert "[0, 4, 0, 0]" in out   # the rows: static
    assert out.count("[0, 0, 0, 8]") == 1   # the input's channel half: static; %a's: dynamic


def test_shared_kernels_are_fewer_and_train_bit_exact(tmp_path):
    text = grouped_sgd()
    on = iree_static.build_static_module(text, tmp_path / "on", target="host", prefix="s")
    off = iree_static.build_static_module(text, tmp_path / "off", target="host", prefix="s", share_kernels=False)
    assert len(on.exports) < len(off.exports), (on.exports, off.exports)

    rng = np.random.default_rng(3)
    w = rng.standard_normal((D, C)).astype(np.float32) * 0.1
    xs = rng.standard_normal((4, 1, D)).astype(np.float32)
    ys = [int(v) for v in rng.integers(0, C, 4)]
    fw = firmware.compile_firmware(text, tmp_path / "fw", target="host", params=[w], prefix="s")
    res = firmware.run_qemu(fw, tmp_path / "run", train=(xs, ys))
    assert res.returncode == 0, res.output
    ref = reference.HostModule(reference.compile_vmfb(text)).train([w], xs, ys)
    assert len(res.trace) == len(ref) == 4
    for (dp, dl), (rp, rl) in zip(res.trace, ref):
        assert dl == rl
        assert all(np.array_equal(a, b) for a, b in zip(dp, rp))
    # and the step is SGD on the whole weight: the groups' updates land in their own columns
    x, y = xs[0], ys[0]
    g = x @ w - np.eye(C, dtype=np.float32)[y]
    np.testing.assert_allclose(res.trace[0][0][0], w - LR * x.T @ g, rtol=1e-5, atol=1e-6)
