/* Entry points of our int8 kernels for IREE dispatches (issue #10: the kernels enter through
 * IREE, not around it). A dispatch's executable declares the function with `hal.import.static`
 * and calls it from its workgroup function; with `--iree-llvmcpu-link-static` the call stays a
 * direct, undefined reference in IREE's object file, resolved when the firmware links this file.
 * IREE keeps the schedule and the memory: it allocates every binding (inputs, constants, output
 * and the kernel's scratch) and decides when the dispatch runs.
 *
 * ABI: MLIR's memref lowering passes each `memref<?xT>` as (allocated, aligned, offset, size,
 * stride) and `index` as the pointer-sized integer (size_t here). Only aligned + offset are used
 * (IREE's bindings do not alias). Signed scalars travel as i32 push constants cast to index
 * (sign-extended), so they are read back as int32_t. */
#include <stddef.h>
#include <stdint.h>

#include "ttk/kernels.h"

#define TTK_MEMREF(T, name) T* name##_alloc, T* name, size_t name##_off, size_t name##_size, size_t name##_stride
#define TTK_AT(name) (name + name##_off)
#define TTK_UNUSED(name) ((void)name##_alloc, (void)name##_size, (void)name##_stride)

/* The layer's quantization from the dispatch's constants (signed values arrive sign-extended). */
static ttk_quant_t ttk_iree_quant(size_t x_zero, size_t y_zero, size_t act_min, size_t act_max,
                                  const int32_t* mult, const int32_t* shift) {
  ttk_quant_t q;
  q.x_zero = (int32_t)x_zero;
  q.y_zero = (int32_t)y_zero;
  q.act_min = (int32_t)act_min;
  q.act_max = (int32_t)act_max;
  q.mult = mult;
  q.shift = shift;
  return q;
}

/* Pointwise conv (1x1, stride 1, batch 1, NHWC) with TFLite requantization; weights packed
 * [C_out][C_in] by the compiler (ttk_pack_oi_s8's layout). The compiler emits this dispatch
 * only for shapes and quantization inside the kernel's contract (so it cannot return -1). */
void ttk_iree_conv1x1_s8(TTK_MEMREF(const int8_t, x), TTK_MEMREF(const int8_t, w),
                         TTK_MEMREF(const int32_t, bias), TTK_MEMREF(const int32_t, mult),
                         TTK_MEMREF(const int32_t, shift), TTK_MEMREF(int8_t, y),
                         TTK_MEMREF(uint8_t, scratch), size_t pixels, size_t c_in, size_t c_out,
                         size_t x_zero, size_t y_zero, size_t act_min, size_t act_max) {
  TTK_UNUSED(x); TTK_UNUSED(w); TTK_UNUSED(bias); TTK_UNUSED(mult); TTK_UNUSED(shift);
  TTK_UNUSED(y);
  (void)scratch_alloc, (void)scratch_stride;
  const ttk_quant_t q = ttk_iree_quant(x_zero, y_zero, act_min, act_max, TTK_AT(mult), TTK_AT(shift));
  (void)ttk_conv1x1_s8(TTK_AT(x), (int32_t)pixels, (int32_t)c_in, TTK_AT(w), TTK_AT(bias),
                       (int32_t)c_out, &q, TTK_AT(y), TTK_AT(scratch), scratch_size);
}

/* Depthwise KxK conv (K = 3/5/7, stride 1/2, padding (K-1)/2 with x_zero or 0 on a pre-padded
 * input, batch 1, NHWC), weights
 * HWIO [K][K][1][C] as the model has them, TFLite requantization; the scratch binding
 * (ttk_dwconv_s8_scratch_size bytes) holds the SMLAD path's widened strip. Same contract rule
 * as above. */
void ttk_iree_dwconv_s8(TTK_MEMREF(const int8_t, x), TTK_MEMREF(const int8_t, w),
                        TTK_MEMREF(const int32_t, bias), TTK_MEMREF(const int32_t, mult),
                        TTK_MEMREF(const int32_t, shift), TTK_MEMREF(int8_t, y),
                        TTK_MEMREF(uint8_t, scratch), size_t h, size_t wd, size_t c, size_t k,
                        size_t stride, size_t pad, size_t x_zero, size_t y_zero, size_t act_min,
                        size_t act_max) {
  TTK_UNUSED(x); TTK_UNUSED(w); TTK_UNUSED(bias); TTK_UNUSED(mult); TTK_UNUSED(shift);
  TTK_UNUSED(y);
  (void)scratch_alloc, (void)scratch_stride;
  const ttk_quant_t q = ttk_iree_quant(x_zero, y_zero, act_min, act_max, TTK_AT(mult), TTK_AT(shift));
  (void)ttk_dwconv_s8(TTK_AT(x), (int32_t)h, (int32_t)wd, (int32_t)c, TTK_AT(w), (int32_t)k,
                      (int32_t)stride, (int32_t)pad, TTK_AT(bias), &q, TTK_AT(y), TTK_AT(scratch),
                      scratch_size);
}

/* Dense KxK conv with few input channels (the first conv; padding (K-1)/2 with x_zero or 0 on a
 * pre-padded input, batch 1, NHWC), weights packed by the compiler in ttk_pack_conv_q15's layout (int16, 2 w). Same contract
 * rule as above. */
void ttk_iree_conv_s8(TTK_MEMREF(const int8_t, x), TTK_MEMREF(const int16_t, w),
                      TTK_MEMREF(const int32_t, bias), TTK_MEMREF(const int32_t, mult),
                      TTK_MEMREF(const int32_t, shift), TTK_MEMREF(int8_t, y), size_t h, size_t wd,
                      size_t c_in, size_t c_out, size_t k, size_t stride, size_t pad,
                      size_t x_zero, size_t y_zero, size_t act_min, size_t act_max) {
  TTK_UNUSED(x); TTK_UNUSED(w); TTK_UNUSED(bias); TTK_UNUSED(mult); TTK_UNUSED(shift);
  TTK_UNUSED(y);
  const ttk_quant_t q = ttk_iree_quant(x_zero, y_zero, act_min, act_max, TTK_AT(mult), TTK_AT(shift));
  (void)ttk_conv_s8(TTK_AT(x), (int32_t)h, (int32_t)wd, (int32_t)c_in, TTK_AT(w), (int32_t)k,
                    (int32_t)stride, (int32_t)pad, TTK_AT(bias), (int32_t)c_out, &q, TTK_AT(y));
}

/* Input gradient of a dense 1x1 stride-1 unpadded conv (or a linear layer) in fp32:
 * gx[p][i] = sum_o gy[p][o] * w[i][o], w HWIO [1][1][C_in][C_out] (the dequantized weight the
 * compiler computes), each output's sum sequential in o from 0 with one rounding per
 * multiply-add (as IREE's generated contraction for the same op). */
void ttk_iree_conv1x1_grad_input_f32(TTK_MEMREF(const float, gy), TTK_MEMREF(const float, w),
                                     TTK_MEMREF(float, gx), size_t pixels, size_t c_out,
                                     size_t c_in) {
  TTK_UNUSED(gy); TTK_UNUSED(w); TTK_UNUSED(gx);
  (void)ttk_conv1x1_grad_input_f32(TTK_AT(gy), (int32_t)pixels, (int32_t)c_out, TTK_AT(w),
                                   (int32_t)c_in, TTK_AT(gx));
}

/* Weight gradient of a dense 1x1 stride-1 unpadded conv in fp32 from its saved int8 input:
 * gw[i][o] = sum_p ((x[p][i] - x_zero) * x_scale) * gy[p][o], all C_out columns, HWIO
 * [1][1][C_in][C_out]; x_scale is a one-element binding (an fp32 constant of the program). */
void ttk_iree_conv1x1_grad_weight_f32(TTK_MEMREF(const int8_t, x), TTK_MEMREF(const float, x_scale),
                                      TTK_MEMREF(const float, gy), TTK_MEMREF(float, gw),
                                      size_t pixels, size_t c_in, size_t c_out, size_t x_zero) {
  TTK_UNUSED(x); TTK_UNUSED(x_scale); TTK_UNUSED(gy); TTK_UNUSED(gw);
  (void)ttk_conv1x1_grad_weight_f32(TTK_AT(x), (int32_t)x_zero, TTK_AT(x_scale)[0], (int32_t)pixels,
                                    (int32_t)c_in, TTK_AT(gy), (int32_t)c_out, (int32_t)c_out,
                                    TTK_AT(gw), (int32_t)c_out);
}

/* Input gradient of a depthwise conv (K = 3/5/7, stride 1/2, padding (K-1)/2, batch 1, NHWC) in
 * fp32: gx[iy][ix][c] = sum over the taps inside gy of gy[oy][ox][c] * w[kh][kw][c], w HWIO
 * [K][K][1][C] (the dequantized weight the compiler computes), the taps in (kh, kw) order with
 * one rounding per multiply-add. The compiler emits it only inside that contract. */
void ttk_iree_dwconv_grad_input_f32(TTK_MEMREF(const float, gy), TTK_MEMREF(const float, w),
                                    TTK_MEMREF(float, gx), size_t h, size_t wd, size_t c, size_t k,
                                    size_t stride) {
  TTK_UNUSED(gy); TTK_UNUSED(w); TTK_UNUSED(gx);
  (void)ttk_dwconv_grad_input_f32(TTK_AT(gy), (int32_t)h, (int32_t)wd, (int32_t)c, TTK_AT(w),
                                  (int32_t)k, (int32_t)stride, TTK_AT(gx));
}

/* Weight gradient of a depthwise conv (K = 3/5/7, stride 1/2, padding (K-1)/2, batch 1, NHWC) in
 * fp32 from its saved int8 input, for its first n_ch of C channels: gw[kh][kw][c] = sum over the
 * output pixels (oy, ox) whose tap lies inside the input of ((x[iy][ix][c] - x_zero) * x_scale) *
 * gy[oy][ox][c] for c < n_ch, HWIO [K][K][1][n_ch]; x has C channels, gy c_g (C, or only the
 * n_ch trained ones); x_scale is a one-element binding (an fp32 constant of the program). */
void ttk_iree_dwconv_grad_weight_f32(TTK_MEMREF(const int8_t, x), TTK_MEMREF(const float, x_scale),
                                     TTK_MEMREF(const float, gy), TTK_MEMREF(float, gw), size_t h,
                                     size_t wd, size_t c, size_t k, size_t stride, size_t x_zero,
                                     size_t n_ch, size_t c_g) {
  TTK_UNUSED(x); TTK_UNUSED(x_scale); TTK_UNUSED(gy); TTK_UNUSED(gw);
  (void)ttk_dwconv_grad_weight_f32(TTK_AT(x), (int32_t)x_zero, TTK_AT(x_scale)[0], (int32_t)h,
                                   (int32_t)wd, (int32_t)c, TTK_AT(gy), (int32_t)c_g, (int32_t)k,
                                   (int32_t)stride, (int32_t)n_ch, TTK_AT(gw), (int32_t)n_ch);
}
