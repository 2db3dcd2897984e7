/* tinytrain Cortex-M kernels: int8 forward (SMLAD/SXTB16 on Armv7E-M with the DSP extension,
 * portable C elsewhere) and fp32 backward for the sparse update. C99, no heap, no libc calls.
 *
 * Layouts (see ../README.md):
 *   activations  int8 NHWC (batch 1: [H][W][C]), one zero point per tensor
 *   weights      int8 symmetric per output channel (zero point 0), HWIO as in the compiler;
 *                pointwise / linear kernels read a packed copy made once by ttk_pack_oi_s8
 *                ([C_out][C_in]), the first dense conv a packed int16 copy (ttk_pack_conv_q15,
 *                channel pairs interleaved);
 *                depthwise reads HWIO ([KH][KW][1][C]) directly
 *   bias         int32 per output channel (scale x_scale * w_scale[c], zero point 0)
 *   fp32 tensors NHWC, weights HWIO
 *
 * Requantization (bit-exact with the numpy reference, TFLite's MultiplyByQuantizedMultiplier):
 *   acc = sum((x - x_zero) * w) + bias                       (int32)
 *   y   = clamp(RDBPOT(SRDHM(acc << max(shift,0), mult), max(-shift,0)) + y_zero, act_min, act_max)
 * with eff = x_scale * w_scale[c] / y_scale = mult * 2^(shift - 31), mult in [2^30, 2^31).
 */
#ifndef TTK_KERNELS_H_
#define TTK_KERNELS_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Quantization of one int8 layer: tensor-wide activation zero points, per-channel multiplier. */
typedef struct {
  int32_t x_zero;          /**< input zero point, [-128, 127] */
  int32_t y_zero;          /**< output zero point, [-128, 127] */
  int32_t act_min;         /**< clamp after adding y_zero (ReLU/ReLU6 fused), >= -128 */
  int32_t act_max;         /**< <= 127 */
  const int32_t* mult;     /**< [C_out] fixed-point multipliers in [2^30, 2^31) (0 allowed) */
  const int32_t* shift;    /**< [C_out] exponents, eff = mult * 2^(shift-31), shift in [-31, 30] */
} ttk_quant_t;

/** One requantization step (exposed for tests and epilogues). */
int32_t ttk_requantize(int32_t acc, int32_t mult, int32_t shift);

/* ----------------------------------------------------------------------------------------- */
/* Weight packing (done once, at compile time or at init; never per inference).              */

/** HWIO [1][1][C_in][C_out] (or a linear layer's [C_in][C_out]) -> [C_out][C_in]. */
void ttk_pack_oi_s8(const int8_t* w_io, int32_t c_in, int32_t c_out, int8_t* w_oi);

/** Bytes of ttk_pack_conv_q15's output: ceil(C_out / 2) * K4 * 4, K4 = KH*KW*C_in rounded up
 *  to 4. */
size_t ttk_pack_conv_q15_size(int32_t kh, int32_t kw, int32_t c_in, int32_t c_out);
/** HWIO [KH][KW][C_in][C_out] int8 -> int16 2 w (doubled: the q2 epilogue takes 2 acc), widened
 *  once in the pointwise kernels' interleaved layout: per pair of output channels (a zero channel
 *  completes an odd C_out) and per 4 k (K in (kh, kw, ci) order, zero padded to K4):
 *  {c0 k0, c0 k2}, {c1 k0, c1 k2}, {c0 k1, c0 k3}, {c1 k1, c1 k3}. w_packed must be 4-byte
 *  aligned. */
void ttk_pack_conv_q15(const int8_t* w_hwio, int32_t kh, int32_t kw, int32_t c_in, int32_t c_out,
                       int16_t* w_packed);

/* ----------------------------------------------------------------------------------------- */
/* int8 forward kernels. Return 0, or -1 on an unsupported argument (nothing written).       */

/** Pointwise (1x1, stride 1) conv = [P][C_in] x [C_in][C_out] GEMM, P = H*W pixels.
 *  x: [P][C_in], w_oi: ttk_pack_oi_s8 output, bias: [C_out] or NULL, y: [P][C_out].
 *  scratch (4-byte aligned, may be NULL): with at least ttk_conv1x1_s8_scratch_min bytes the
 *  kernel widens both operands to int16 once (weights per block of output channels, inputs per
 *  pixel pair) and runs an LDRD + SMLAD loop; ttk_conv1x1_s8_scratch_size bytes hold all of
 *  C_out in one block. Without scratch it widens in registers. The results are identical. */
int ttk_conv1x1_s8(const int8_t* x, int32_t pixels, int32_t c_in, const int8_t* w_oi,
                   const int32_t* bias, int32_t c_out, const ttk_quant_t* q, int8_t* y,
                   void* scratch, size_t scratch_bytes);
size_t ttk_conv1x1_s8_scratch_size(int32_t c_in, int32_t c_out);
size_t ttk_conv1x1_s8_scratch_min(int32_t c_in);

/** Linear layer: x [C_in] (one sample), w_oi [C_out][C_in] (packed), y [C_out]. */
int ttk_linear_s8(const int8_t* x, int32_t c_in, const int8_t* w_oi, const int32_t* bias,
                  int32_t c_out, const ttk_quant_t* q, int8_t* y);

/** Depthwise conv, K x K (K = 3, 5, 7), stride 1 or 2, padding `pad` on every side: (K-1)/2
 *  (pad value = x_zero) or 0 (a pre-padded input, e.g. a patch of `patch-stage`: every output
 *  pixel takes the unrolled interior path), H + 2*pad >= K and W + 2*pad >= K,
 *  x [H][W][C], w [K][K][1][C] (HWIO, not packed), y [OH][OW][C] with
 *  OH = (H + 2*pad - K) / stride + 1.
 *  scratch (4-byte aligned, may be NULL): with at least ttk_dwconv_s8_scratch_min bytes the
 *  channels in groups of 4 take the SMLAD path (a strip of input rows widened once to int16
 *  channel planes, two adjacent taps per SMLAD; the weight pairs of the group); more rows of
 *  strip mean fewer strips (ttk_dwconv_s8_scratch_size: 4 output rows per strip). Without it,
 *  and for the last C mod 4 channels, the one-MAC-per-instruction path. Same results. */
int ttk_dwconv_s8(const int8_t* x, int32_t h, int32_t w, int32_t c, const int8_t* wt,
                  int32_t k, int32_t stride, int32_t pad, const int32_t* bias,
                  const ttk_quant_t* q, int8_t* y, void* scratch, size_t scratch_bytes);
size_t ttk_dwconv_s8_scratch_size(int32_t h, int32_t w, int32_t k, int32_t stride, int32_t pad);
size_t ttk_dwconv_s8_scratch_min(int32_t w, int32_t k, int32_t pad);

/** Dense conv with a small input channel count (the network's first conv: 3x3, C_in = 3,
 *  stride 2): K x K, padding `pad` = (K-1)/2 (x_zero) or 0 (pre-padded input),
 *  H + 2*pad >= K and W + 2*pad >= K, any stride >= 1, KH*KW*C_in <= TTK_CONV_MAX_K.
 *  w_packed: ttk_pack_conv_q15 output (4-byte aligned). y [OH][OW][C_out] with
 *  OH = (H + 2*pad - K) / stride + 1. Computed as the pointwise GEMM on the im2col rows of 4
 *  output pixels at a time (stack only). */
#define TTK_CONV_MAX_K 64
int ttk_conv_s8(const int8_t* x, int32_t h, int32_t w, int32_t c_in, const int16_t* w_packed,
                int32_t k, int32_t stride, int32_t pad, const int32_t* bias, int32_t c_out,
                const ttk_quant_t* q, int8_t* y);

/* ----------------------------------------------------------------------------------------- */
/* fp32 backward kernels (sparse update).                                                     */

/** Input gradient of a depthwise conv (transposed depthwise): gy [OH][OW][C],
 *  w [K][K][1][C] fp32, gx [H][W][C] (overwritten). Same K/stride/padding rules as forward. */
int ttk_dwconv_grad_input_f32(const float* gy, int32_t h, int32_t w, int32_t c, const float* wt,
                              int32_t k, int32_t stride, float* gx);

/** Input gradient of a pointwise conv / linear layer: gx[p][i] = sum_o gy[p][o] * w[i][o],
 *  gy [P][C_out], w [C_in][C_out] (HWIO / IO, fp32), gx [P][C_in] (overwritten). */
int ttk_conv1x1_grad_input_f32(const float* gy, int32_t pixels, int32_t c_out, const float* wt,
                               int32_t c_in, float* gx);

/** Weight gradient of the first n_out output channels of a pointwise conv / linear layer,
 *  from the saved int8 input: gw[i][o] = sum_p ((x[p][i] - x_zero) * x_scale) * gy[p][o],
 *  o < n_out. x [P][C_in], gy [P][C_out] (only columns < n_out read),
 *  gw rows of stride ldw >= n_out (ldw = C_out writes into an HWIO tensor). Overwritten. */
int ttk_conv1x1_grad_weight_f32(const int8_t* x, int32_t x_zero, float x_scale, int32_t pixels,
                                int32_t c_in, const float* gy, int32_t c_out, int32_t n_out,
                                float* gw, int32_t ldw);

/** Weight gradient of the first n_ch channels of a depthwise conv from the saved int8 input:
 *  gw[kh][kw][c] = sum_{oy,ox} xf[oy*s+kh-pad][ox*s+kw-pad][c] * gy[oy][ox][c], c < n_ch,
 *  xf = (x - x_zero) * x_scale (0 in the padding). x [H][W][C], gy [OH][OW][C_g] (a sparse
 *  update's dY may hold only the n_ch trained channels: C_g = n_ch; n_ch <= C, C_g), gw rows
 *  (per tap) of stride ldw >= n_ch. */
int ttk_dwconv_grad_weight_f32(const int8_t* x, int32_t x_zero, float x_scale, int32_t h,
                               int32_t w, int32_t c, const float* gy, int32_t c_g, int32_t k,
                               int32_t stride, int32_t n_ch, float* gw, int32_t ldw);

/** 1-bit activation mask from an int8 output: bit i = act_min < y[i] < act_max (the
 *  ReLU/ReLU6 gradient passes), packed LSB first, ceil(n/8) bytes. */
void ttk_mask_from_s8(const int8_t* y, int32_t n, int32_t act_min, int32_t act_max,
                      uint8_t* mask);
/** g[i] = bit i of mask ? g[i] : 0, in place. */
void ttk_mask_apply_f32(float* g, int32_t n, const uint8_t* mask);

#ifdef __cplusplus
}
#endif
#endif /* TTK_KERNELS_H_ */
