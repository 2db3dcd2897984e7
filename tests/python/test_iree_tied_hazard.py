"""Canary for the IREE 3.13 behaviour that lowering/conversions/tinytrain_to_linalg/ works around.

A read of an `iree.abi.output` argument that is not upstream of its tied result sees the value
written in place (here `other` = 3 * updated w instead of 3 * w). If this test starts failing,
the pinned IREE no longer has the hazard and `order_tied_reads`
(lowering/conversions/tinytrain_to_linalg/tied.py) can be reconsidered.
"""

import numpy as np

from tinytrain.lowering.host.iree_host import HostModule, compile_host

REPRO = """
#m = affine_map<(d0) -> (d0)>
func.func @f(%w: tensor<4xf32> {iree.abi.output = 0 : index}, %x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %e = tensor.empty() : tensor<4xf32>
  %upd = linalg.generic {indexing_maps = [#m, #m, #m], iterator_types = ["parallel"]}
      ins(%w, %x : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.subf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  %e2 = tensor.empty() : tensor<4xf32>
  %other = linalg.generic {indexing_maps = [#m, #m], iterator_types = ["parallel"]}
      ins(%w : tensor<4xf32>) outs(%e2 : tensor<4xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 3.0 : f32
    %s = arith.mulf %a, %c : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  return %upd, %other : tensor<4xf32>, tensor<4xf32>
}
"""


def test_iree_reads_a_tied_argument_after_its_in_place_write():
    mod = HostModule(compile_host(REPRO))
    w = np.array([1, 2, 3, 4], np.float32)
    upd, other = mod.call("f", w.copy(), np.full(4, 10, np.float32))
    np.testing.assert_array_equal(upd, w - 10)
    # Correct would be 3 * w = [3, 6, 9, 12]; IREE 3.13 gives 3 * (w - 10).
    np.testing.assert_array_equal(other, 3 * (w - 10))
