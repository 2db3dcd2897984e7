/* int8 forward kernels: pointwise conv, linear, depthwise conv, first dense conv.
 *
 * Technique (the idea of CMSIS-NN's DSP kernels; this is our own code): four int8 values are
 * loaded with one LDR, SXTB16 / SXTB16 ROR #8 make two pairs of 16-bit lanes (bytes 0,2 and
 * 1,3), SMLAD multiplies two lane pairs and adds both products to a 32-bit accumulator. The
 * same byte permutation is applied to both operands, so the sums are unchanged.
 * x_zero is folded in two ways: SXTAB16 adds -x_zero to both lanes while widening, or (in the
 * pointwise GEMM) the bias is corrected once per output channel by -x_zero * sum_k(w). */
#include "ttk/kernels.h"
#include "ttk_simd.h"

int32_t ttk_requantize(int32_t acc, int32_t mult, int32_t shift) {
  return ttk_requant(acc, mult, shift);
}

static int ttk_quant_ok(const ttk_quant_t* q) {
  return q != NULL && q->mult != NULL && q->shift != NULL && q->x_zero >= -128 &&
         q->x_zero <= 127 && q->y_zero >= -128 && q->y_zero <= 127 && q->act_min >= -128 &&
         q->act_max <= 127 && q->act_min <= q->act_max;
}

TTK_INLINE int8_t ttk_out(int32_t acc, const ttk_quant_t* q, int32_t c) {
  return ttk_clamp_s8(ttk_requant(acc, q->mult[c], q->shift[c]) + q->y_zero, q->act_min,
                      q->act_max);
}

/* Output with the channel's precomputed requantization and the layer's constants in locals
 * (int8 stores may alias anything, so nothing is re-read from `q` inside the loops). */
#define TTK_OUT(acc, rq)                                                              \
  (full ? ttk_sat_s8(ttk_rq_apply((acc), (rq)) + yz)                                  \
        : ttk_clamp_s8(ttk_rq_apply((acc), (rq)) + yz, lo, hi))
/* ------------------------------------------------------------------------------------------ */
/* Weight packing                                                                               */

void ttk_pack_oi_s8(const int8_t* w_io, int32_t c_in, int32_t c_out, int8_t* w_oi) {
  for (int32_t o = 0; o < c_out; ++o)
    for (int32_t i = 0; i < c_in; ++i) w_oi[o * c_in + i] = w_io[i * c_out + o];
}

size_t ttk_pack_conv_q15_size(int32_t kh, int32_t kw, int32_t c_in, int32_t c_out) {
  const int32_t k4 = (kh * kw * c_in + 3) & ~3;
  return (size_t)((c_out + 1) / 2) * (size_t)k4 * 2u * sizeof(int16_t);
}

void ttk_pack_conv_q15(const int8_t* w_hwio, int32_t kh, int32_t kw, int32_t c_in, int32_t c_out,
                       int16_t* w_packed) {
  /* per channel pair and 4 k: {c0 k0, c0 k2}, {c1 k0, c1 k2}, {c0 k1, c0 k3}, {c1 k1, c1 k3};
   * each weight doubled (2 w, |2 w| <= 256): the q2 epilogue takes 2 acc (ttk_q2_apply2) */
  static const int32_t lane_k[8] = {0, 2, 0, 2, 1, 3, 1, 3}, lane_c[8] = {0, 0, 1, 1, 0, 0, 1, 1};
  const int32_t kk = kh * kw * c_in, k4 = (kk + 3) & ~3;
  for (int32_t j = 0; 2 * j < c_out; ++j)
    for (int32_t qd = 0; qd < k4 / 4; ++qd)
      for (int32_t i = 0; i < 8; ++i) {
        const int32_t kx = 4 * qd + lane_k[i], o = 2 * j + lane_c[i];
        w_packed[(j * (k4 / 4) + qd) * 8 + i] = (int16_t)(kx < kk && o < c_out ? 2 * w_hwio[kx * c_out + o] : 0);
      }
}

/* ------------------------------------------------------------------------------------------ */
/* Pointwise GEMM: 2 pixels x 2 output channels per register block, 4 k per step.             */

/* Raw int8 dot products (no zero point): s[0] += x0.w0, s[1] += x0.w1, s[2] += x1.w0,
 * s[3] += x1.w1. x1 = x0 + stride, w1 = w0 + stride. */
TTK_INLINE void ttk_dot_2x2(const int8_t* x0, const int8_t* w0, int32_t stride, int32_t n,
                            int32_t* s) {
  int32_t s00 = s[0], s01 = s[1], s10 = s[2], s11 = s[3];
  const int8_t* x1 = x0 + stride;
  const int8_t* w1 = w0 + stride;
  int32_t k = 0;
  for (; k + 4 <= n; k += 4) {
    uint32_t b0 = ttk_ld32(w0 + k), b1 = ttk_ld32(w1 + k);
    int32_t b0e = ttk_sxtb16(b0), b0o = ttk_sxtb16_ror8(b0);
    int32_t b1e = ttk_sxtb16(b1), b1o = ttk_sxtb16_ror8(b1);
    uint32_t a = ttk_ld32(x0 + k);
    int32_t ae = ttk_sxtb16(a), ao = ttk_sxtb16_ror8(a);
    s00 = ttk_smlad(ae, b0e, s00);
    s00 = ttk_smlad(ao, b0o, s00);
    s01 = ttk_smlad(ae, b1e, s01);
    s01 = ttk_smlad(ao, b1o, s01);
    a = ttk_ld32(x1 + k);
    ae = ttk_sxtb16(a);
    ao = ttk_sxtb16_ror8(a);
    s10 = ttk_smlad(ae, b0e, s10);
    s10 = ttk_smlad(ao, b0o, s10);
    s11 = ttk_smlad(ae, b1e, s11);
    s11 = ttk_smlad(ao, b1o, s11);
  }
  for (; k < n; ++k) {
    int32_t a0 = x0[k], a1 = x1[k], v0 = w0[k], v1 = w1[k];
    s00 += a0 * v0;
    s01 += a0 * v1;
    s10 += a1 * v0;
    s11 += a1 * v1;
  }
  s[0] = s00;
  s[1] = s01;
  s[2] = s10;
  s[3] = s11;
}

/* One input row against two weight rows, zero point applied while widening x (SXTAB16):
 * s[0] += (x - z).w0, s[1] += (x - z).w1, w1 = w0 + stride. */
TTK_INLINE void ttk_dot_1x2_off(const int8_t* x, const int8_t* w0, int32_t stride, int32_t n,
                                int32_t x_zero, int32_t* s) {
  int32_t s0 = s[0], s1 = s[1];
  const int8_t* w1 = w0 + stride;
  const int32_t off = ttk_offset2(x_zero);
  int32_t k = 0;
  for (; k + 4 <= n; k += 4) {
    uint32_t a = ttk_ld32(x + k);
    int32_t ae = ttk_sxtab16(off, a), ao = ttk_sxtab16_ror8(off, a);
    uint32_t b0 = ttk_ld32(w0 + k), b1 = ttk_ld32(w1 + k);
    s0 = ttk_smlad(ae, ttk_sxtb16(b0), s0);
    s0 = ttk_smlad(ao, ttk_sxtb16_ror8(b0), s0);
    s1 = ttk_smlad(ae, ttk_sxtb16(b1), s1);
    s1 = ttk_smlad(ao, ttk_sxtb16_ror8(b1), s1);
  }
  for (; k < n; ++k) {
    int32_t a = x[k] - x_zero;
    s0 += a * w0[k];
    s1 += a * w1[k];
  }
  s[0] = s0;
  s[1] = s1;
}

TTK_INLINE int32_t ttk_dot_1x1_off(const int8_t* x, const int8_t* w, int32_t n, int32_t x_zero) {
  const int32_t off = ttk_offset2(x_zero);
  int32_t s = 0, k = 0;
  for (; k + 4 <= n; k += 4) {
    uint32_t a = ttk_ld32(x + k), b = ttk_ld32(w + k);
    s = ttk_smlad(ttk_sxtab16(off, a), ttk_sxtb16(b), s);
    s = ttk_smlad(ttk_sxtab16_ror8(off, a), ttk_sxtb16_ror8(b), s);
  }
  for (; k < n; ++k) s += (x[k] - x_zero) * w[k];
  return s;
}

TTK_INLINE int32_t ttk_wsum(const int8_t* w, int32_t n) {
  int32_t s = 0, k = 0;
  const int32_t ones = 0x00010001;
  for (; k + 4 <= n; k += 4) {
    uint32_t b = ttk_ld32(w + k);
    s = ttk_smlad(ttk_sxtb16(b), ones, s);
    s = ttk_smlad(ttk_sxtb16_ror8(b), ones, s);
  }
  for (; k < n; ++k) s += w[k];
  return s;
}

/* ---- pointwise with int16 operands in scratch ----------------------------------------- *
 * Per 4 k, a pixel pair is stored as 4 words {p0 (k0,k2), p1 (k0,k2), p0 (k1,k3), p1 (k1,k3)}
 * (x - x_zero, zero padded to K4 = K rounded up to 4) and a channel pair the same way, so one
 * LDRD fetches the same lane pair of both pixels (or channels): 4 LDRD + 8 SMLAD per 16 MACs. */

static int32_t ttk_k4(int32_t k) { return (k + 3) & ~3; }

size_t ttk_conv1x1_s8_scratch_min(int32_t c_in) {
  /* x quad (4 pixels) + one channel pair + its epilogue constants */
  return (size_t)ttk_k4(c_in) * 12u + 2u * sizeof(ttk_rq_t) + 8u;
}

size_t ttk_conv1x1_s8_scratch_size(int32_t c_in, int32_t c_out) {
  const size_t pairs = (size_t)(c_out + 1) / 2u;
  return (size_t)ttk_k4(c_in) * 8u + pairs * ((size_t)ttk_k4(c_in) * 4u + 2u * sizeof(ttk_rq_t) + 8u);
}

/* Widen nr rows (n int8 each; a NULL row is zeros) minus z into the interleaved layout: per 4 k,
 * nr words of lanes (k0,k2), one per row, then nr words of lanes (k1,k3); K zero padded to 4. */
static void ttk_widen_rows(const int8_t* const* rows, int32_t nr, int32_t n, int32_t z, int32_t* out) {
  const int32_t off = ttk_offset2(z);
  for (int32_t r = 0; r < nr; ++r) {
    const int8_t* a = rows[r];
    int32_t* o = out + r;
    int32_t k = 0;
    if (a == NULL) {
      for (; k < n; k += 4, o += 2 * nr) o[0] = o[nr] = 0;
      continue;
    }
    for (; k + 4 <= n; k += 4, o += 2 * nr) {
      const uint32_t va = ttk_ld32(a + k);
      o[0] = ttk_sxtab16(off, va);
      o[nr] = ttk_sxtab16_ror8(off, va);
    }
    if (k < n) { /* tail: lanes (k0,k2) and (k1,k3) of a zero-padded quad */
      int32_t t[4] = {0, 0, 0, 0};
      for (int32_t j = 0; k + j < n; ++j) t[j] = a[k + j] - z;
      o[0] = (int32_t)(((uint32_t)(uint16_t)t[0]) | ((uint32_t)(uint16_t)t[2] << 16));
      o[nr] = (int32_t)(((uint32_t)(uint16_t)t[1]) | ((uint32_t)(uint16_t)t[3] << 16));
    }
  }
}

/* 4 rows at x, x + stride, x + 2 stride, x + 3 stride (n int8 each) minus z in the layout of
 * ttk_widen_rows (nr = 4). On Armv7E-M the whole quads run in assembly: per quad 4 LDR,
 * 8 SXTAB16 and one STM of the 8 words (15 instructions with the loop, for 16 values); the
 * last, partial quad (if any) in C. */
#if TTK_HAVE_DSP
static void ttk_widen4_dsp(const int8_t* x, int32_t stride, int32_t* out, const int32_t* out_end,
                           int32_t off) {
  register const int8_t* r0 __asm__("r0") = x;
  register int32_t r1 __asm__("r1") = stride;
  register const int8_t* r2 __asm__("r2") = x + 3 * stride;
  register int32_t* r3 __asm__("r3") = out;
  register int32_t r12 __asm__("r12") = off;
  register const int32_t* lr __asm__("lr") = out_end;
  __asm__ volatile(
      "1:\n\t"
      "ldr    r5, [r0, r1]\n\t"
      "ldr    r6, [r0, r1, lsl #1]\n\t"
      "ldr    r4, [r0], #4\n\t"
      "ldr    r7, [r2], #4\n\t"
      "sxtab16 r8, r12, r4, ror #8\n\t"
      "sxtab16 r9, r12, r5, ror #8\n\t"
      "sxtab16 r10, r12, r6, ror #8\n\t"
      "sxtab16 r11, r12, r7, ror #8\n\t"
      "sxtab16 r4, r12, r4\n\t"
      "sxtab16 r5, r12, r5\n\t"
      "sxtab16 r6, r12, r6\n\t"
      "sxtab16 r7, r12, r7\n\t"
      "stm    r3!, {r4-r11}\n\t"
      "cmp    r3, lr\n\t"
      "bne    1b\n\t"
      : "+r"(r0), "+r"(r2), "+r"(r3)
      : "r"(r1), "r"(r12), "r"(lr)
      : "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "cc", "memory");
}
#endif

static void ttk_widen_rows4(const int8_t* x, int32_t stride, int32_t n, int32_t z, int32_t* out) {
#if TTK_HAVE_DSP
  const int32_t whole = n / 4;
  if (whole > 0) ttk_widen4_dsp(x, stride, out, out + 8 * whole, ttk_offset2(z));
  if (whole * 4 == n) return;
  const int8_t* rows[4] = {x + 4 * whole, x + stride + 4 * whole, x + 2 * stride + 4 * whole,
                           x + 3 * stride + 4 * whole};
  ttk_widen_rows(rows, 4, n - 4 * whole, z, out + 8 * whole);
#else
  const int8_t* rows[4] = {x, x + stride, x + 2 * stride, x + 3 * stride};
  ttk_widen_rows(rows, 4, n, z, out);
#endif
}

/* Rows a and b (b may be NULL) in the pair layout {a (k0,k2), b (k0,k2), a (k1,k3), b (k1,k3)}. */
static void ttk_widen_pair(const int8_t* a, const int8_t* b, int32_t n, int32_t z, int32_t* out) {
  const int8_t* rows[2] = {a, b};
  ttk_widen_rows(rows, 2, n, z, out);
}

/* Weight rows a and b (b may be NULL) in the pair layout of ttk_widen_pair, each weight doubled
 * (2 w, |2 w| <= 256: the q2 layers, ttk_q2_apply2): per 4 k and row one LDR, SXTB16,
 * SXTB16 ROR #8, 2 SADD16, 2 STR. */
static void ttk_widen_pair_x2(const int8_t* a, const int8_t* b, int32_t n, int32_t* out) {
  const int8_t* rows[2] = {a, b};
  for (int32_t r = 0; r < 2; ++r) {
    const int8_t* v = rows[r];
    int32_t* o = out + r;
    int32_t k = 0;
    if (v == NULL) {
      for (; k < n; k += 4, o += 4) o[0] = o[2] = 0;
      continue;
    }
    for (; k + 4 <= n; k += 4, o += 4) {
      const uint32_t w4 = ttk_ld32(v + k);
      o[0] = ttk_dbl16(ttk_sxtb16(w4));
      o[2] = ttk_dbl16(ttk_sxtb16_ror8(w4));
    }
    if (k < n) { /* tail: lanes (k0,k2) and (k1,k3) of a zero-padded quad */
      int32_t t[4] = {0, 0, 0, 0};
      for (int32_t j = 0; k + j < n; ++j) t[j] = 2 * v[k + j];
      o[0] = (int32_t)(((uint32_t)(uint16_t)t[0]) | ((uint32_t)(uint16_t)t[2] << 16));
      o[2] = (int32_t)(((uint32_t)(uint16_t)t[1]) | ((uint32_t)(uint16_t)t[3] << 16));
    }
  }
}

/* Two words p[off], p[off+1] (p 4-byte aligned, which LDRD needs on M-profile). GCC 12 splits
 * 64-bit loads into two LDRs for the Cortex-M4/M7, so on Arm this is one inline-asm LDRD. */
#if TTK_HAVE_DSP
#define TTK_LD2(p, off, a, b)                                                         \
  __asm__("ldrd %0, %1, [%2, %3]"                                                     \
          : "=r"(a), "=r"(b)                                                          \
          : "r"(p), "i"(4 * (off)), "m"(*(const int32_t(*)[2])((p) + (off))))
#else
#define TTK_LD2(p, off, a, b) ((a) = (p)[off], (b) = (p)[(off) + 1])
#endif

#define TTK_Q15_STEP(off)                                                             \
  do {                                                                                \
    int32_t x0, x1, w0, w1;                                                           \
    TTK_LD2(xs, off, x0, x1);                                                         \
    TTK_LD2(ws, off, w0, w1);                                                         \
    s00 = ttk_smlad(x0, w0, s00);                                                     \
    s01 = ttk_smlad(x0, w1, s01);                                                     \
    s10 = ttk_smlad(x1, w0, s10);                                                     \
    s11 = ttk_smlad(x1, w1, s11);                                                     \
  } while (0)

TTK_INLINE void ttk_dot_q15_2x2(const int32_t* xs, const int32_t* ws, int32_t quads,
                                int32_t* s) {
  int32_t s00 = s[0], s01 = s[1], s10 = s[2], s11 = s[3];
  const int32_t* end = xs + 4 * (quads & ~3);
  while (xs < end) { /* 16 k per iteration: 16 LDRD + 32 SMLAD */
    TTK_Q15_STEP(0);
    TTK_Q15_STEP(2);
    TTK_Q15_STEP(4);
    TTK_Q15_STEP(6);
    TTK_Q15_STEP(8);
    TTK_Q15_STEP(10);
    TTK_Q15_STEP(12);
    TTK_Q15_STEP(14);
    xs += 16;
    ws += 16;
  }
  if (quads & 2) {
    TTK_Q15_STEP(0);
    TTK_Q15_STEP(2);
    TTK_Q15_STEP(4);
    TTK_Q15_STEP(6);
    xs += 8;
    ws += 8;
  }
  if (quads & 1) {
    TTK_Q15_STEP(0);
    TTK_Q15_STEP(2);
  }
  s[0] = s00;
  s[1] = s01;
  s[2] = s10;
  s[3] = s11;
}

/* 4 pixels x 2 channels: x in the 4-row layout (8 words per 4 k), w in the pair layout (4 words
 * per 4 k). Per lane pair: 3 LDRD (w pair, pixels 0-1, pixels 2-3) + 8 SMLAD. */
#define TTK_Q15_STEP42(xo, wo)                                                        \
  do {                                                                                \
    int32_t x0, x1, w0, w1;                                                           \
    TTK_LD2(ws, wo, w0, w1);                                                          \
    TTK_LD2(xs, xo, x0, x1);                                                          \
    s00 = ttk_smlad(x0, w0, s00);                                                     \
    s01 = ttk_smlad(x0, w1, s01);                                                     \
    s10 = ttk_smlad(x1, w0, s10);                                                     \
    s11 = ttk_smlad(x1, w1, s11);                                                     \
    TTK_LD2(xs, (xo) + 2, x0, x1);                                                    \
    s20 = ttk_smlad(x0, w0, s20);                                                     \
    s21 = ttk_smlad(x0, w1, s21);                                                     \
    s30 = ttk_smlad(x1, w0, s30);                                                     \
    s31 = ttk_smlad(x1, w1, s31);                                                     \
  } while (0)
#define TTK_Q15_QUAD42(q) \
  do {                    \
    TTK_Q15_STEP42(8 * (q), 4 * (q));         \
    TTK_Q15_STEP42(8 * (q) + 4, 4 * (q) + 2); \
  } while (0)

/* s[2 i + j] += pixel i . channel j (bias preset by the caller). */
TTK_INLINE void ttk_dot_q15_4x2(const int32_t* xs, const int32_t* ws, int32_t quads, int32_t* s) {
  int32_t s00 = s[0], s01 = s[1], s10 = s[2], s11 = s[3];
  int32_t s20 = s[4], s21 = s[5], s30 = s[6], s31 = s[7];
  const int32_t* end = ws + 4 * (quads & ~3);
  while (ws < end) { /* 16 k per iteration */
    TTK_Q15_QUAD42(0);
    TTK_Q15_QUAD42(1);
    TTK_Q15_QUAD42(2);
    TTK_Q15_QUAD42(3);
    xs += 32;
    ws += 16;
  }
  if (quads & 2) {
    TTK_Q15_QUAD42(0);
    TTK_Q15_QUAD42(1);
    xs += 16;
    ws += 8;
  }
  if (quads & 1) TTK_Q15_QUAD42(0);
  s[0] = s00;
  s[1] = s01;
  s[2] = s10;
  s[3] = s11;
  s[4] = s20;
  s[5] = s21;
  s[6] = s30;
  s[7] = s31;
}

/* A channel pair's q2 record (words): the doubled biases {2 b0, 2 b1} 4 times (the accumulators'
 * start), then {m0, m1} (mult), {kc0, kc1}, {e0, e1} (ttk_q2_t). The assembly reads these offsets. */
#define TTK_Q2R_M 8
#define TTK_Q2R_K 10
#define TTK_Q2R_E 12
#define TTK_Q2R_WORDS 14

/* One group of 4 pixels (widened in xs) against npairs full channel pairs (q2 epilogue, records
 * as below): y0 is pixel 0's output at the block's first channel. */
#if TTK_HAVE_DSP
/* The 4x2 dot in assembly (in C, GCC spills two of the 8 accumulators): per lane pair LDRD w
 * (channel pair, post-increment), LDRD x (pixels 0-1), 4 SMLAD, LDRD x (pixels 2-3), 4 SMLAD:
 * 11 instructions per 16 MACs; r0 xs, r1 ws, r4-r11 the accumulators (s[0..7] of
 * ttk_dot_q15_4x2), r2/r3 pixel operands, r12/lr weight operands. */
#define TTK_ASM_STEP42                      \
  "ldrd   r12, lr, [r1], #8\n\t"            \
  "ldrd   r2, r3, [r0], #8\n\t"             \
  "smlad  r4, r2, r12, r4\n\t"              \
  "smlad  r5, r2, lr, r5\n\t"               \
  "smlad  r6, r3, r12, r6\n\t"              \
  "smlad  r7, r3, lr, r7\n\t"               \
  "ldrd   r2, r3, [r0], #8\n\t"             \
  "smlad  r8, r2, r12, r8\n\t"              \
  "smlad  r9, r2, lr, r9\n\t"               \
  "smlad  r10, r3, r12, r10\n\t"            \
  "smlad  r11, r3, lr, r11\n\t"
/* The dot of one channel pair over all k (r0 x, r1 the pair's weights, both post-incremented):
 * 8 steps per loop iteration, entered by TBB on the frame word at [sp, #entry] (step pairs to
 * skip, (-quads) mod 4), until r0 reaches the frame word at [sp, #xend]. */
#define TTK_ASM_DOT(entry, xend)                                                        \
  "ldr    r2, [sp, #" entry "]\n\t"                                                     \
  "tbb    [pc, r2]\n"                                                                  \
  "0:\n\t"                                                                             \
  ".byte  (1f - 0b) / 2, (1f + 88 - 0b) / 2, (1f + 176 - 0b) / 2, (1f + 264 - 0b) / 2\n" \
  "1:\n\t"                                                                             \
  TTK_ASM_STEP42 TTK_ASM_STEP42 TTK_ASM_STEP42 TTK_ASM_STEP42                           \
  TTK_ASM_STEP42 TTK_ASM_STEP42 TTK_ASM_STEP42 TTK_ASM_STEP42                           \
  "ldr    r2, [sp, #" xend "]\n\t"                                                      \
  "cmp    r0, r2\n\t"                                                                  \
  "bne    1b\n\t"
/* Per channel pair, the 8 accumulators start at the pair's biases (one LDM of the record's 8
 * bias words), run the dot (8 lane-pair steps = 4 k-quads per loop iteration; a first, partial
 * iteration is entered in its middle (Duff's device: a TBB on the step pairs to skip, computed
 * once per call; a table branch, not an indirect jump, for the firmware's stack analysis),
 * so any K runs unrolled with one end test per 4 quads: the x pointer against its end, the same
 * for every pair) and go through the q2 epilogue without leaving the registers: the weights and
 * biases are doubled, so the accumulators hold 2 acc and each output is ADD (kc + (2 acc >> 31)),
 * SMMLAR (by mult), ASR, SSAT, STRB: 5 instructions (ttk_q2_apply2). */
typedef struct {
  const int32_t* xs;  /* the group's widened pixels */
  const int32_t* ws;  /* the first pair's widened weights (pairs are contiguous) */
  const int32_t* rec; /* the first pair's record (TTK_Q2R_* layout) */
  int8_t* y;
  int32_t c_out;
  int32_t rec_bytes;
  int32_t quads;      /* >= 1 */
  int32_t npairs;
} ttk_px4_args_t;
void ttk_pw_q2_px4_dsp(const ttk_px4_args_t* a);
#define TTK_ASM_Q2OUT(acc, addr)                   \
  "add    r0, r12, " acc ", asr #31\n\t"           \
  "smmlar r0, " acc ", r3, r0\n\t"                 \
  "asr    r0, r0, lr\n\t"                          \
  "ssat   r0, #8, r0\n\t"                          \
  "strb   r0, " addr "\n\t"
/* The 4 pixels' outputs of a channel pair (r1: pixel 0's output at the pair's first channel,
 * r2 = c_out): channel 0 from r4 r6 r8 r10 (its constants in r3 r12 lr; leaves r4 = pixel 2's
 * output), then, once channel 1's constants are loaded, channel 1 from r5 r7 r9 r11. */
#define TTK_ASM_Q2OUT_CH0                          \
  TTK_ASM_Q2OUT("r4", "[r1]")                      \
  TTK_ASM_Q2OUT("r6", "[r1, r2]")                  \
  "add    r4, r1, r2, lsl #1\n\t"                  \
  TTK_ASM_Q2OUT("r8", "[r4]")                      \
  TTK_ASM_Q2OUT("r10", "[r4, r2]")
#define TTK_ASM_Q2OUT_CH1                          \
  "add    r2, r2, #1\n\t"                          \
  TTK_ASM_Q2OUT("r5", "[r1, #1]")                  \
  TTK_ASM_Q2OUT("r7", "[r1, r2]")                  \
  TTK_ASM_Q2OUT("r9", "[r4, #1]")                  \
  TTK_ASM_Q2OUT("r11", "[r4, r2]")
/* frame: [sp] xs, #4 ws, #8 rec, #12 y, #16 y end, #20 the dot's TBB index, #24 x end,
 * #28 c_out, #32 rec_bytes. Every STEP42 instruction is a 32-bit encoding: 44 bytes a step. */
__asm__(
    "  .text\n\t"
    "  .syntax unified\n\t"
    "  .thumb\n\t"
    "  .p2align 2\n\t"
    "  .global ttk_pw_q2_px4_dsp\n\t"
    "  .hidden ttk_pw_q2_px4_dsp\n\t"
    "  .type ttk_pw_q2_px4_dsp, %function\n\t"
    "  .thumb_func\n"
    "ttk_pw_q2_px4_dsp:\n\t"
    "push   {r4-r11, lr}\n\t"
    "sub    sp, sp, #36\n\t"
    "ldm    r0, {r1-r8}\n\t"
    "str    r1, [sp]\n\t"
    "str    r2, [sp, #4]\n\t"
    "str    r3, [sp, #8]\n\t"
    "str    r4, [sp, #12]\n\t"
    "add    r9, r4, r8, lsl #1\n\t"
    "str    r9, [sp, #16]\n\t"
    "rsb    r10, r7, #0\n\t"           /* the dot's entry: (-quads) mod 4 step pairs skipped */
    "and    r10, r10, #3\n\t"
    "str    r10, [sp, #20]\n\t"
    "add    r10, r1, r7, lsl #5\n\t"
    "str    r10, [sp, #24]\n\t"
    "str    r5, [sp, #28]\n\t"
    "str    r6, [sp, #32]\n\t"
    "cmp    r8, #0\n\t"
    "ble    9f\n"
    "5:\n\t"
    "ldr    r0, [sp]\n\t"
    "ldr    r1, [sp, #4]\n\t"
    "ldr    r3, [sp, #8]\n\t"
    "ldm    r3, {r4-r11}\n\t"
    TTK_ASM_DOT("20", "24")
    "str    r1, [sp, #4]\n\t"
    /* channel 0: r4 r6 r8 r10 = pixels 0..3; r1 y, r2 c_out, r4 reused as the row-2 pointer */
    "ldr    r0, [sp, #8]\n\t"
    "ldr    r1, [sp, #12]\n\t"
    "ldr    r2, [sp, #28]\n\t"
    "ldr    r3, [r0, #32]\n\t"
    "ldr    r12, [r0, #40]\n\t"
    "ldr    lr, [r0, #48]\n\t"
    TTK_ASM_Q2OUT_CH0
    /* channel 1: r5 r7 r9 r11; r2 = c_out + 1 */
    "ldr    r0, [sp, #8]\n\t"
    "ldr    r3, [r0, #36]\n\t"
    "ldr    r12, [r0, #44]\n\t"
    "ldr    lr, [r0, #52]\n\t"
    TTK_ASM_Q2OUT_CH1
    /* next pair */
    "add    r1, r1, #2\n\t"
    "str    r1, [sp, #12]\n\t"
    "ldr    r0, [sp, #8]\n\t"
    "ldr    r3, [sp, #32]\n\t"
    "add    r0, r0, r3\n\t"
    "str    r0, [sp, #8]\n\t"
    "ldr    r2, [sp, #16]\n\t"
    "cmp    r1, r2\n\t"
    "bne    5b\n"
    "9:\n\t"
    "add    sp, sp, #36\n\t"
    "pop    {r4-r11, pc}\n\t"
    "  .size ttk_pw_q2_px4_dsp, .-ttk_pw_q2_px4_dsp\n\t");
/* The pointwise layer's variant: each channel pair's block is {b0, b1} x 4, its widened weights,
 * then {m0, m1, kc0, kc1, e0, e1} (TTK_PW_Q2_*), so one pointer walks the blocks: LDM! of the
 * biases, the dot, the constants after it, the next block 24 bytes further (5 instructions per
 * pair fewer than the records apart). */
typedef struct {
  const int32_t* xs;    /* the group's widened pixels */
  const int32_t* pairs; /* the first pair's block */
  int8_t* y;
  int32_t c_out;
  int32_t quads;        /* >= 1 */
  int32_t npairs;
} ttk_px4i_args_t;
void ttk_pw_q2_px4i_dsp(const ttk_px4i_args_t* a);
/* frame: [sp] xs, #4 block, #8 y, #12 y end, #16 the dot's TBB index, #20 x end, #24 c_out */
__asm__(
    "  .text\n\t"
    "  .syntax unified\n\t"
    "  .thumb\n\t"
    "  .p2align 2\n\t"
    "  .global ttk_pw_q2_px4i_dsp\n\t"
    "  .hidden ttk_pw_q2_px4i_dsp\n\t"
    "  .type ttk_pw_q2_px4i_dsp, %function\n\t"
    "  .thumb_func\n"
    "ttk_pw_q2_px4i_dsp:\n\t"
    "push   {r4-r11, lr}\n\t"
    "sub    sp, sp, #28\n\t"
    "ldm    r0, {r1-r6}\n\t"
    "str    r1, [sp]\n\t"
    "str    r2, [sp, #4]\n\t"
    "str    r3, [sp, #8]\n\t"
    "add    r9, r3, r6, lsl #1\n\t"
    "str    r9, [sp, #12]\n\t"
    "rsb    r10, r5, #0\n\t"           /* the dot's entry: (-quads) mod 4 step pairs skipped */
    "and    r10, r10, #3\n\t"
    "str    r10, [sp, #16]\n\t"
    "add    r10, r1, r5, lsl #5\n\t"
    "str    r10, [sp, #20]\n\t"
    "str    r4, [sp, #24]\n\t"
    "cmp    r6, #0\n\t"
    "ble    9f\n"
    "5:\n\t"
    "ldr    r0, [sp]\n\t"
    "ldr    r1, [sp, #4]\n\t"
    "ldm    r1!, {r4-r11}\n\t"
    TTK_ASM_DOT("16", "20")
    /* r1 at the pair's constants; channel 0: r4 r6 r8 r10, r1 y, r2 c_out, r4 the row-2 pointer */
    "ldr    r3, [r1]\n\t"
    "ldr    r12, [r1, #8]\n\t"
    "ldr    lr, [r1, #16]\n\t"
    "add    r0, r1, #24\n\t"
    "str    r0, [sp, #4]\n\t"
    "ldr    r1, [sp, #8]\n\t"
    "ldr    r2, [sp, #24]\n\t"
    TTK_ASM_Q2OUT_CH0
    /* channel 1: r5 r7 r9 r11 (constants 20, 12, 4 bytes before the next block); r2 = c_out + 1 */
    "ldr    r0, [sp, #4]\n\t"
    "ldr    r3, [r0, #-20]\n\t"
    "ldr    r12, [r0, #-12]\n\t"
    "ldr    lr, [r0, #-4]\n\t"
    TTK_ASM_Q2OUT_CH1
    "add    r1, r1, #2\n\t"
    "str    r1, [sp, #8]\n\t"
    "ldr    r2, [sp, #12]\n\t"
    "cmp    r1, r2\n\t"
    "bne    5b\n"
    "9:\n\t"
    "add    sp, sp, #28\n\t"
    "pop    {r4-r11, pc}\n\t"
    "  .size ttk_pw_q2_px4i_dsp, .-ttk_pw_q2_px4i_dsp\n\t");
#undef TTK_ASM_Q2OUT
#undef TTK_ASM_DOT
#undef TTK_ASM_STEP42
#endif

/* A pointwise q2 pair block (words): {2 b0, 2 b1} x 4, the k4 widened, doubled weights, then
 * {m0, m1, kc0, kc1, e0, e1} at TTK_PW_Q2_C(k4). */
#define TTK_PW_Q2_W 8
#define TTK_PW_Q2_C(k4) (8 + (k4))
#define TTK_PW_Q2_WORDS(k4) ((k4) + 14)

/* 4 pixels (widened in xs) x 2 channels of pair block pj into y0 (pixel 0, the pair's first
 * channel), in C: the non-DSP build and the blocks the assembly does not take. */
TTK_INLINE void ttk_pw_q2_block_c(const int32_t* xs, const int32_t* pj, int32_t quads, int32_t np,
                                  int both, int8_t* y0, int32_t c_out) {
  int32_t s[8] = {pj[0], pj[1], pj[0], pj[1], pj[0], pj[1], pj[0], pj[1]};
  ttk_dot_q15_4x2(xs, pj + TTK_PW_Q2_W, quads, s);
  const int32_t* cj = pj + TTK_PW_Q2_C(4 * quads);
  for (int32_t i = 0; i < np; ++i) {
    y0[i * c_out] = ttk_sat_s8(ttk_q2_apply2(s[2 * i], cj[0], cj[2], cj[4]));
    if (both) y0[i * c_out + 1] = ttk_sat_s8(ttk_q2_apply2(s[2 * i + 1], cj[1], cj[3], cj[5]));
  }
}

static void ttk_pw_q2_px4(const int32_t* xs, const int32_t* wj, const int32_t* rj,
                          int32_t npairs, int32_t quads, int32_t rec_words, int8_t* y0,
                          int32_t c_out) {
#if TTK_HAVE_DSP
  const ttk_px4_args_t a = {xs, wj, rj, y0, c_out, 4 * rec_words, quads, npairs};
  ttk_pw_q2_px4_dsp(&a);
#else
  const int32_t k4 = 4 * quads;
  int8_t* y1 = y0 + c_out;
  int8_t* y2 = y1 + c_out;
  int8_t* y3 = y2 + c_out;
  for (int32_t j = 0; j < npairs; ++j, wj += k4, rj += rec_words) {
    int32_t s[8] = {rj[0], rj[1], rj[0], rj[1], rj[0], rj[1], rj[0], rj[1]};
    ttk_dot_q15_4x2(xs, wj, quads, s);
    const int32_t m0 = rj[TTK_Q2R_M], m1 = rj[TTK_Q2R_M + 1], k0 = rj[TTK_Q2R_K],
                  k1 = rj[TTK_Q2R_K + 1], e0 = rj[TTK_Q2R_E], e1 = rj[TTK_Q2R_E + 1];
    y0[2 * j] = ttk_sat_s8(ttk_q2_apply2(s[0], m0, k0, e0));
    y0[2 * j + 1] = ttk_sat_s8(ttk_q2_apply2(s[1], m1, k1, e1));
    y1[2 * j] = ttk_sat_s8(ttk_q2_apply2(s[2], m0, k0, e0));
    y1[2 * j + 1] = ttk_sat_s8(ttk_q2_apply2(s[3], m1, k1, e1));
    y2[2 * j] = ttk_sat_s8(ttk_q2_apply2(s[4], m0, k0, e0));
    y2[2 * j + 1] = ttk_sat_s8(ttk_q2_apply2(s[5], m1, k1, e1));
    y3[2 * j] = ttk_sat_s8(ttk_q2_apply2(s[6], m0, k0, e0));
    y3[2 * j + 1] = ttk_sat_s8(ttk_q2_apply2(s[7], m1, k1, e1));
  }
#endif
}

/* Scratch per channel pair of a block: its widened weights and TTK_PW_REC_BYTES of epilogue
 * constants. q2 layers (ttk_q2_t, y_zero folded in) lay each pair out as one block
 * (TTK_PW_Q2_WORDS: 14 words of biases and constants around the weights); the others keep the
 * pairs' weights together, then per pair 2 ttk_rq_t and {b0, b1}. */
#define TTK_PW_REC_BYTES (2u * sizeof(ttk_rq_t) + 2u * sizeof(int32_t))
_Static_assert(TTK_PW_REC_BYTES >= 14u * 4u, "a q2 pair block fits a pointwise pair's scratch");

TTK_INLINE void ttk_conv1x1_s8_q15_body(const int8_t* x, int32_t pixels, int32_t c_in,
                                        const int8_t* w_oi, const int32_t* bias, int32_t c_out,
                                        const ttk_quant_t* q, int8_t* y, int32_t* scratch,
                                        size_t scratch_bytes, const int q2) {
  const int32_t yz = q->y_zero, lo = q->act_min, hi = q->act_max;
  const int full = lo == -128 && hi == 127; /* no fused activation range: one SSAT */
  const int32_t k4 = ttk_k4(c_in), quads = k4 / 4;
  int32_t* xs = scratch;                           /* 2 k4 words: 4 pixels (or a pixel pair) */
  int32_t* wblk = scratch + 2 * k4;
  const size_t pair_bytes = (size_t)k4 * 4u + TTK_PW_REC_BYTES;
  int32_t max_pairs = (int32_t)((scratch_bytes - (size_t)k4 * 8u) / pair_bytes);
  const int32_t all_pairs = (c_out + 1) / 2;
  if (max_pairs > all_pairs) max_pairs = all_pairs;
  const int32_t rec_words = (int32_t)(TTK_PW_REC_BYTES / 4u);
  for (int32_t c0 = 0; c0 < c_out; c0 += 2 * max_pairs) {
    int32_t npairs = (c_out - c0 + 1) / 2;
    if (npairs > max_pairs) npairs = max_pairs;
    const int32_t nfull = c0 + 2 * npairs > c_out ? npairs - 1 : npairs; /* both channels */
    if (q2) { /* the common case: every channel q2, full clamp (one SSAT); 4 pixels x 2 channels */
      const int32_t pw = TTK_PW_Q2_WORDS(k4);
      for (int32_t j = 0; j < npairs; ++j) {
        int32_t* pj = wblk + j * pw;
        int32_t* cj = pj + TTK_PW_Q2_C(k4);
        for (int32_t i = 0; i < 2; ++i) { /* a missing last channel: zeros (never stored) */
          const int32_t c = c0 + 2 * j + i;
          const ttk_q2_t r2 = c < c_out ? ttk_q2_make(q->mult[c], q->shift[c], yz) : (ttk_q2_t){0, 0, 0};
          /* 2 bias: |bias| < 2^30 (ttk_layer_q2) */
          pj[i] = pj[2 + i] = pj[4 + i] = pj[6 + i] = (bias != NULL && c < c_out) ? 2 * bias[c] : 0;
          cj[i] = r2.m;
          cj[2 + i] = r2.kc;
          cj[4 + i] = r2.e;
        }
        const int32_t c = c0 + 2 * j;
        ttk_widen_pair_x2(w_oi + c * c_in, c + 1 < c_out ? w_oi + (c + 1) * c_in : NULL, c_in,
                          pj + TTK_PW_Q2_W);
      }
      for (int32_t p = 0; p < pixels; p += 4) {
        const int32_t np = pixels - p < 4 ? pixels - p : 4;
        if (np == 4) {
          ttk_widen_rows4(x + p * c_in, c_in, c_in, q->x_zero, xs);
        } else {
          const int8_t* rows[4];
          for (int32_t i = 0; i < 4; ++i) rows[i] = i < np ? x + (p + i) * c_in : NULL;
          ttk_widen_rows(rows, 4, c_in, q->x_zero, xs);
        }
        int8_t* y0 = y + p * c_out + c0;
        int32_t j = 0;
#if TTK_HAVE_DSP
        if (np == 4) { /* all full channel pairs of 4 whole pixels */
          const ttk_px4i_args_t a = {xs, wblk, y0, c_out, quads, nfull};
          ttk_pw_q2_px4i_dsp(&a);
          j = nfull;
        }
#endif
        for (; j < npairs; ++j) /* pixel tail or the last, single channel */
          ttk_pw_q2_block_c(xs, wblk + j * pw, quads, np, j < nfull, y0 + 2 * j, c_out);
      }
      continue;
    }
    int32_t* recs = wblk + npairs * k4;
    for (int32_t j = 0; j < npairs; ++j) {
      int32_t* r = recs + j * rec_words;
      for (int32_t i = 0; i < 2; ++i) {
        const int32_t c = c0 + 2 * j + i;
        const int32_t b = (bias != NULL && c < c_out) ? bias[c] : 0;
        ttk_rq_t* rq = (ttk_rq_t*)r;
        rq[i] = c < c_out ? ttk_rq_make(q->mult[c], q->shift[c]) : ttk_rq_make(0, 0);
        ((int32_t*)(rq + 2))[i] = b;
      }
      const int32_t c = c0 + 2 * j;
      ttk_widen_pair(w_oi + c * c_in, c + 1 < c_out ? w_oi + (c + 1) * c_in : NULL, c_in, 0,
                     wblk + j * k4);
    }
    for (int32_t p = 0; p < pixels; p += 2) {
      const int two_px = p + 1 < pixels;
      ttk_widen_pair(x + p * c_in, two_px ? x + (p + 1) * c_in : NULL, c_in, q->x_zero, xs);
      int8_t* y0 = y + p * c_out + c0;
      const int32_t* wj = wblk;
      const int32_t* rj = recs;
      int32_t j = 0;
      for (; j < npairs; ++j, y0 += 2, wj += k4, rj += rec_words) {
        const ttk_rq_t* rq = (const ttk_rq_t*)rj;
        const int32_t* bj = (const int32_t*)(rq + 2);
        const int both = j < nfull;
        int32_t s[4] = {bj[0], both ? bj[1] : 0, bj[0], both ? bj[1] : 0};
        ttk_dot_q15_2x2(xs, wj, quads, s);
        y0[0] = TTK_OUT(s[0], rq[0]);
        if (both) y0[1] = TTK_OUT(s[1], rq[1]);
        if (two_px) {
          y0[c_out] = TTK_OUT(s[2], rq[0]);
          if (both) y0[c_out + 1] = TTK_OUT(s[3], rq[1]);
        }
      }
    }
  }
}

/* 1 if every channel takes the q2 epilogue (all |acc| <= acc_max + |bias|) and the clamp is
 * int8's full range. */
static int ttk_layer_q2(const ttk_quant_t* q, const int32_t* bias, int32_t c_out, int64_t acc_max) {
  if (q->act_min != -128 || q->act_max != 127) return 0;
  for (int32_t c = 0; c < c_out; ++c) {
    const int64_t b = bias != NULL ? (int64_t)bias[c] : 0;
    if (!ttk_q2_ok(q->mult[c], q->shift[c], acc_max + (b < 0 ? -b : b))) return 0;
  }
  return 1;
}

/* |(x - x_zero) * w| <= 255 * 128 per product. */
#define TTK_MAX_PROD 32640

__attribute__((noinline)) static void ttk_conv1x1_s8_q15(const int8_t* x, int32_t pixels, int32_t c_in, const int8_t* w_oi,
                               const int32_t* bias, int32_t c_out, const ttk_quant_t* q,
                               int8_t* y, int32_t* scratch, size_t scratch_bytes) {
  if (ttk_layer_q2(q, bias, c_out, (int64_t)c_in * TTK_MAX_PROD))
    ttk_conv1x1_s8_q15_body(x, pixels, c_in, w_oi, bias, c_out, q, y, scratch, scratch_bytes, 1);
  else
    ttk_conv1x1_s8_q15_body(x, pixels, c_in, w_oi, bias, c_out, q, y, scratch, scratch_bytes, 0);
}

int ttk_conv1x1_s8(const int8_t* x, int32_t pixels, int32_t c_in, const int8_t* w_oi,
                   const int32_t* bias, int32_t c_out, const ttk_quant_t* q, int8_t* y,
                   void* scratch, size_t scratch_bytes) {
  if (x == NULL || w_oi == NULL || y == NULL || pixels < 1 || c_in < 1 || c_out < 1 ||
      !ttk_quant_ok(q) || ((uintptr_t)scratch & 3u) != 0u)
    return -1;
  if (scratch != NULL && scratch_bytes >= ttk_conv1x1_s8_scratch_min(c_in)) {
    ttk_conv1x1_s8_q15(x, pixels, c_in, w_oi, bias, c_out, q, y, (int32_t*)scratch, scratch_bytes);
    return 0;
  }
  const int32_t xz = q->x_zero, yz = q->y_zero, lo = q->act_min, hi = q->act_max;
  const int full = lo == -128 && hi == 127; /* no fused activation range: one SSAT */
  int32_t c = 0;
  for (; c + 2 <= c_out; c += 2) {
    const int8_t* w0 = w_oi + c * c_in;
    const int32_t b0 = bias ? bias[c] : 0, b1 = bias ? bias[c + 1] : 0;
    const ttk_rq_t r0 = ttk_rq_make(q->mult[c], q->shift[c]);
    const ttk_rq_t r1 = ttk_rq_make(q->mult[c + 1], q->shift[c + 1]);
    /* sum((x - z) w) = sum(x w) - z sum(w): the zero point goes into the bias once. */
    const int32_t e0 = b0 - xz * ttk_wsum(w0, c_in);
    const int32_t e1 = b1 - xz * ttk_wsum(w0 + c_in, c_in);
    int8_t* yp = y + c;
    const int8_t* xp = x;
    int32_t p = 0;
    for (; p + 2 <= pixels; p += 2, xp += 2 * c_in, yp += 2 * c_out) {
      int32_t s[4] = {e0, e1, e0, e1};
      ttk_dot_2x2(xp, w0, c_in, c_in, s);
      yp[0] = TTK_OUT(s[0], r0);
      yp[1] = TTK_OUT(s[1], r1);
      yp[c_out] = TTK_OUT(s[2], r0);
      yp[c_out + 1] = TTK_OUT(s[3], r1);
    }
    if (p < pixels) {
      int32_t s[2] = {b0, b1};
      ttk_dot_1x2_off(xp, w0, c_in, c_in, xz, s);
      yp[0] = TTK_OUT(s[0], r0);
      yp[1] = TTK_OUT(s[1], r1);
    }
  }
  if (c < c_out) {
    const int8_t* w0 = w_oi + c * c_in;
    const int32_t b0 = bias ? bias[c] : 0;
    const ttk_rq_t r0 = ttk_rq_make(q->mult[c], q->shift[c]);
    for (int32_t p = 0; p < pixels; ++p)
      y[p * c_out + c] = TTK_OUT(b0 + ttk_dot_1x1_off(x + p * c_in, w0, c_in, xz), r0);
  }
  return 0;
}

int ttk_linear_s8(const int8_t* x, int32_t c_in, const int8_t* w_oi, const int32_t* bias,
                  int32_t c_out, const ttk_quant_t* q, int8_t* y) {
  if (x == NULL || w_oi == NULL || y == NULL || c_in < 1 || c_out < 1 || !ttk_quant_ok(q))
    return -1;
  int32_t c = 0;
  for (; c + 2 <= c_out; c += 2) {
    int32_t s[2] = {bias ? bias[c] : 0, bias ? bias[c + 1] : 0};
    ttk_dot_1x2_off(x, w_oi + c * c_in, c_in, c_in, q->x_zero, s);
    y[c] = ttk_out(s[0], q, c);
    y[c + 1] = ttk_out(s[1], q, c + 1);
  }
  if (c < c_out)
    y[c] = ttk_out((bias ? bias[c] : 0) + ttk_dot_1x1_off(x, w_oi + c * c_in, c_in, q->x_zero), q,
                   c);
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Depthwise conv: per output pixel, 4 channels per step; SXTAB16 widens x - x_zero,           */
/* SMLABB/SMLATT accumulate the even (bytes 0,2) and odd (bytes 1,3, ROR #8) channel lanes.    */

static int ttk_dw_shape_ok(int32_t h, int32_t w, int32_t c, int32_t k, int32_t stride,
                           int32_t pad) {
  return h >= 1 && w >= 1 && c >= 1 && (k == 3 || k == 5 || k == 7) &&
         (stride == 1 || stride == 2) && (pad == 0 || pad == (k - 1) / 2) && h + 2 * pad >= k &&
         w + 2 * pad >= k;
}

/* Taps of one output pixel for 4 channels: x rows `row` bytes apart, taps `c` bytes apart;
 * wq holds the widened weights of these 4 channels, 2 words per tap, k taps per row. Inlined
 * with a constant k so the interior loops unroll completely. */
TTK_INLINE void ttk_dw_taps(const int8_t* xb, int32_t row, int32_t c, const int32_t* wq,
                            int32_t k, int32_t nkh, int32_t nkw, int32_t off, int32_t* acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#pragma GCC unroll 7
  for (int32_t r = 0; r < nkh; ++r) {
    const int8_t* xp = xb + r * row;
    const int32_t* wp = wq + 2 * r * k;
#pragma GCC unroll 7
    for (int32_t t = 0; t < nkw; ++t) {
      const uint32_t xv = ttk_ld32(xp + t * c);
      const int32_t xe = ttk_sxtab16(off, xv), xo = ttk_sxtab16_ror8(off, xv);
      a0 = ttk_smlabb(xe, wp[2 * t], a0);
      a2 = ttk_smlatt(xe, wp[2 * t], a2);
      a1 = ttk_smlabb(xo, wp[2 * t + 1], a1);
      a3 = ttk_smlatt(xo, wp[2 * t + 1], a3);
    }
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

/* All output pixels of channels [ch, ch+4): weights widened once into wq (SXTB16 pairs),
 * requantization constants in locals; interior pixels take the unrolled k x k path (with
 * pad = 0 every pixel is interior: no border row or column). */
TTK_INLINE void ttk_dw_group(const int8_t* x, int32_t h, int32_t w, int32_t c, const int8_t* wt,
                             int32_t k, int32_t stride, int32_t pad, const int32_t* bias,
                             const ttk_quant_t* q, int8_t* y, int32_t ch, const int ff) {
  const int32_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  const int32_t off = ttk_offset2(q->x_zero), yz = q->y_zero, lo = q->act_min, hi = q->act_max;
  const int full = lo == -128 && hi == 127; /* no fused activation range: one SSAT */
  const int32_t row = w * c;
  int32_t wq[2 * 7 * 7];
  for (int32_t t = 0; t < k * k; ++t) {
    const uint32_t wv = ttk_ld32(wt + t * c + ch);
    wq[2 * t] = ttk_sxtb16(wv);
    wq[2 * t + 1] = ttk_sxtb16_ror8(wv);
  }
  const ttk_rq_t r0 = ttk_rq_make(q->mult[ch], q->shift[ch]);
  const ttk_rq_t r1 = ttk_rq_make(q->mult[ch + 1], q->shift[ch + 1]);
  const ttk_rq_t r2 = ttk_rq_make(q->mult[ch + 2], q->shift[ch + 2]);
  const ttk_rq_t r3 = ttk_rq_make(q->mult[ch + 3], q->shift[ch + 3]);
  const int32_t b0 = bias ? bias[ch] : 0, b1 = bias ? bias[ch + 1] : 0;
  const int32_t b2 = bias ? bias[ch + 2] : 0, b3 = bias ? bias[ch + 3] : 0;
  ttk_q2_t q2[4] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  if (ff)
    for (int32_t i = 0; i < 4; ++i) q2[i] = ttk_q2_make(q->mult[ch + i], q->shift[ch + i], yz);
  for (int32_t oy = 0; oy < oh; ++oy) {
    const int32_t iy0 = oy * stride - pad;
    const int32_t kh0 = iy0 < 0 ? -iy0 : 0;
    const int32_t kh1 = iy0 + k > h ? h - iy0 : k;
    int8_t* yrow = y + oy * ow * c + ch;
    /* interior columns [ox_lo, ox_hi): all K x K taps inside the input (no checks) */
    int32_t ox_lo = (pad + stride - 1) / stride;
    int32_t ox_hi = (w + pad - k) / stride + 1;
    if (kh0 != 0 || kh1 != k || ox_hi < ox_lo) ox_lo = ox_hi = ow; /* border row: all clipped */
    if (ox_hi > ow) ox_hi = ow;
    for (int32_t ox = 0; ox < ow; ++ox) {
      if (ox == ox_lo) { /* the interior run, pointers bumped, unrolled K x K taps */
        const int8_t* xb = x + iy0 * row + (ox * stride - pad) * c + ch;
        int8_t* yp = yrow + ox * c;
        for (; ox < ox_hi; ++ox, xb += stride * c, yp += c) {
          int32_t acc[4] = {b0, b1, b2, b3};
          ttk_dw_taps(xb, row, c, wq, k, k, k, off, acc);
          if (ff) { /* q2 epilogue (ttk_layer_q2), y_zero folded in */
            yp[0] = ttk_sat_s8(ttk_q2_apply(acc[0], q2[0].m, q2[0].kc, q2[0].e));
            yp[1] = ttk_sat_s8(ttk_q2_apply(acc[1], q2[1].m, q2[1].kc, q2[1].e));
            yp[2] = ttk_sat_s8(ttk_q2_apply(acc[2], q2[2].m, q2[2].kc, q2[2].e));
            yp[3] = ttk_sat_s8(ttk_q2_apply(acc[3], q2[3].m, q2[3].kc, q2[3].e));
          } else {
            yp[0] = TTK_OUT(acc[0], r0);
            yp[1] = TTK_OUT(acc[1], r1);
            yp[2] = TTK_OUT(acc[2], r2);
            yp[3] = TTK_OUT(acc[3], r3);
          }
        }
        if (ox >= ow) break;
      }
      const int32_t ix0 = ox * stride - pad;
      const int32_t kw0 = ix0 < 0 ? -ix0 : 0;
      const int32_t kw1 = ix0 + k > w ? w - ix0 : k;
      const int8_t* xb = x + (iy0 + kh0) * row + (ix0 + kw0) * c + ch;
      int8_t* yp = yrow + ox * c;
      int32_t acc[4] = {b0, b1, b2, b3};
      ttk_dw_taps(xb, row, c, wq + 2 * (kh0 * k + kw0), k, kh1 - kh0, kw1 - kw0, off, acc);
      yp[0] = TTK_OUT(acc[0], r0);
      yp[1] = TTK_OUT(acc[1], r1);
      yp[2] = TTK_OUT(acc[2], r2);
      yp[3] = TTK_OUT(acc[3], r3);
    }
  }
}

/* Depthwise SMLAD path (channel groups of 4, stride 1/2, K 3/5/7, with the caller's scratch):
 * a strip of input rows of the group is widened once into four channel planes of int16
 * (x - x_zero, 0 in the padding: every output pixel then takes the same code), so two
 * horizontally adjacent taps of one channel are one word and SMLAD does two MACs. Per channel
 * and row, weight words E_i = (w[2i], w[2i+1]) serve the even output of a pixel pair and
 * O_i = (w[2i-1], w[2i]) the odd one (stride 1): per pair of outputs and row K+1 multiplies for
 * 2K MACs. Scratch: the group's weight words (16 K (K-1) bytes), then the strip: 4 planes of
 * `rows` rows of ttk_dw_strip_cols int16. */

/* Columns per widened row: the padded width plus the word read past it by the last pixel
 * pair (its second output is dropped when the output width is odd), even. */
static int32_t ttk_dw_strip_cols(int32_t w, int32_t pad) { return (w + 2 * pad + 4) & ~1; }

static size_t ttk_dw_scratch_bytes(int32_t rows, int32_t w, int32_t k, int32_t pad) {
  return (size_t)(16 * k * (k - 1)) + (size_t)rows * (size_t)ttk_dw_strip_cols(w, pad) * 8u;
}

size_t ttk_dwconv_s8_scratch_min(int32_t w, int32_t k, int32_t pad) {
  return ttk_dw_scratch_bytes(k, w, k, pad);
}

size_t ttk_dwconv_s8_scratch_size(int32_t h, int32_t w, int32_t k, int32_t stride, int32_t pad) {
  const int32_t rows = k + 3 * stride, all = h + 2 * pad; /* 4 output rows per strip */
  return ttk_dw_scratch_bytes(rows < all ? rows : (all > k ? all : k), w, k, pad);
}

#define TTK_DW_N 4 /* pixels per step of the C rows */

/* n words from s to d, ascending (d below s, or apart). */
static void ttk_copy_words(int32_t* d, const int32_t* s, int32_t n) {
  int32_t i = 0;
#if TTK_HAVE_DSP
  for (; i + 4 <= n; i += 4)
    __asm__ volatile("ldm %1!, {r4-r7}\n\tstm %0!, {r4-r7}"
                     : "+r"(d), "+r"(s)
                     :
                     : "r4", "r5", "r6", "r7", "memory");
#endif
  for (; i < n; ++i) *d++ = *s++;
}

/* Input row iy of channels [ch, ch+4) into the 4 planes (`plane` int16 apart) at d: column j
 * at d[pad + j]; rows outside the input are 0. The padding columns and the columns past the
 * input are not written: they are zeroed once per call and rows only move as a whole. */
TTK_INLINE void ttk_dw_widen_row(const int8_t* x, int32_t h, int32_t w, int32_t c, int32_t ch,
                             int32_t iy, int32_t off, int32_t pad, int32_t cols, int32_t plane,
                             int16_t* d) {
  if (iy < 0 || iy >= h) {
    for (int32_t p = 0; p < 4; ++p)
      for (int32_t j = 0; j < cols; j += 2) ttk_st32(d + p * plane + j, 0u);
    return;
  }
  const int8_t* xp = x + iy * w * c + ch;
  int16_t* dp = d + pad;
  int32_t j = 0;
#pragma GCC unroll 2
  for (; j + 2 <= w; j += 2, xp += 2 * c, dp += 2) {
    /* bytes (ch, ch+1) of pixels j and j+1 in one word (PKHBT), (ch+2, ch+3) in another
     * (PKHTB), then SXTAB16 / SXTAB16 ROR 8: one word (pixel j, pixel j+1) per channel; 2 LDR,
     * 2 PKH, 4 SXTAB16, 4 STR per 8 values */
    const uint32_t u = ttk_ld32(xp), v = ttk_ld32(xp + c);
    const uint32_t lo = ttk_pk_lo(u, v), hi = ttk_pk_hi(u, v);
    ttk_st32(dp, (uint32_t)ttk_sxtab16(off, lo));
    ttk_st32(dp + plane, (uint32_t)ttk_sxtab16_ror8(off, lo));
    ttk_st32(dp + 2 * plane, (uint32_t)ttk_sxtab16(off, hi));
    ttk_st32(dp + 3 * plane, (uint32_t)ttk_sxtab16_ror8(off, hi));
  }
  if (j < w) {
    const uint32_t u = ttk_ld32(xp);
    const uint32_t eu = (uint32_t)ttk_sxtab16(off, u), ou = (uint32_t)ttk_sxtab16_ror8(off, u);
    dp[0] = (int16_t)(eu & 0xFFFFu);
    dp[plane] = (int16_t)(ou & 0xFFFFu);
    dp[2 * plane] = (int16_t)(eu >> 16);
    dp[3 * plane] = (int16_t)(ou >> 16);
  }
}

/* The input rows of the strip for output rows [oy0, oy0 + nn) of channels [ch, ch+4): the
 * K - stride rows shared with the previous strip were moved to its top (ttk_dw_strip_shift);
 * with zero_rows_kept the padding rows were zeroed once per call. */
__attribute__((noinline)) static void ttk_dw_strip_fill(const int8_t* x, int32_t h, int32_t w, int32_t c, int32_t ch,
                                  int32_t k, int32_t stride, int32_t pad, int32_t off, int32_t oy0,
                                  int32_t nn, int32_t cols, int32_t plane, int16_t* strip,
                                  int zero_rows_kept) {
  const int32_t need = (nn - 1) * stride + k;
  for (int32_t i = oy0 == 0 ? 0 : k - stride; i < need; ++i) {
    const int32_t iy = oy0 * stride - pad + i;
    if (zero_rows_kept && (iy < 0 || iy >= h)) continue;
    ttk_dw_widen_row(x, h, w, c, ch, iy, off, pad, cols, plane, strip + i * cols);
  }
}

/* Rows [nn stride, nn stride + K - stride) to the top of each plane (the next strip's first). */
TTK_INLINE void ttk_dw_strip_shift(int16_t* strip, int32_t plane, int32_t cols, int32_t k,
                                   int32_t stride, int32_t nn) {
  for (int32_t p = 0; p < 4; ++p)
    ttk_copy_words((int32_t*)(void*)(strip + p * plane),
                   (const int32_t*)(const void*)(strip + p * plane + nn * stride * cols),
                   (k - stride) * cols / 2);
}

/* Weight words of one channel, per row r: E_0.. E_{h-1} then O_1.. O_h (h = (K-1)/2), K-1
 * words; O_h's high half is the last tap w[K-1], E_0's low half the first. */
TTK_INLINE void ttk_dw_pack_channel(const int8_t* wt, int32_t k, int32_t c, int32_t ch, int32_t f, int32_t* wq) {
  const int32_t hk = (k - 1) / 2;
  for (int32_t r = 0; r < k; ++r) {
    const int8_t* wr = wt + r * k * c + ch;
    int32_t* q = wq + r * (k - 1);
    for (int32_t i = 0; i < hk; ++i)
      q[i] = (int32_t)ttk_pk_lo((uint32_t)(f * wr[2 * i * c]), (uint32_t)(f * wr[(2 * i + 1) * c]));
    for (int32_t i = 1; i <= hk; ++i)
      q[hk - 1 + i] = (int32_t)ttk_pk_lo((uint32_t)(f * wr[(2 * i - 1) * c]), (uint32_t)(f * wr[2 * i * c]));
  }
}

/* The same, called (K 5 and 7: inlined and unrolled, it costs the group loop more than the
 * call; K 3 is inlined). */
__attribute__((noinline)) static void ttk_dw_pack_channel_call(const int8_t* wt, int32_t k, int32_t c, int32_t ch,
                                                              int32_t f, int32_t* wq) {
  ttk_dw_pack_channel(wt, k, c, ch, f, wq);
}

/* Two aligned words p[0], p[1] in one LDRD that stays in the loop (volatile: GCC would hoist
 * the weight loads out of the pixel loop and spill them, one reload per multiply). */
#if TTK_HAVE_DSP
#define TTK_LD2V(p, a, b)                                                             \
  __asm__ volatile("ldrd %0, %1, [%2]"                                                \
                   : "=r"(a), "=r"(b)                                                 \
                   : "r"(p), "m"(*(const int32_t(*)[2])(const void*)(p)))
#else
#define TTK_LD2V(p, a, b) ((a) = ttk_ld32(p), (b) = ttk_ld32((const int32_t*)(const void*)(p) + 1))
#endif

/* n output pixels of one channel from ox (stride 1: ox.., stride 2: 2ox..): rows r of the
 * window at xp + r * cols (int16), weight words per row as ttk_dw_pack_channel; accumulators
 * start at b. Per row the x words are loaded once, the weight words two at a time, each word
 * applied to every pixel that uses it. Inlined with constant k, stride and n. */
TTK_INLINE void ttk_dw_px_smlad(const int16_t* xp, int32_t cols, const int32_t* wq, int32_t k,
                                int32_t stride, int32_t n, int32_t b, int32_t* acc) {
  const int32_t hk = (k - 1) / 2;
  const int32_t nw = stride == 1 ? (n + k) / 2 : n + hk; /* x words per row */
  int32_t a[4] = {b, b, b, b};
#pragma GCC unroll 1 /* the window rows: a loop (code size), the words and pixels unrolled */
  for (int32_t r = 0; r < k; ++r) {
    const int16_t* xq = xp + r * cols;
    const int32_t* q = wq + r * (k - 1);
    int32_t xw[8];
#pragma GCC unroll 6
    for (int32_t i = 0; i < nw; i += 2) {
      if (i + 1 < nw && (n > 1 || stride == 2)) { /* word-aligned (LDRD needs it) */
        TTK_LD2V(xq + 2 * i, xw[i], xw[i + 1]);
      } else {
        xw[i] = (int32_t)ttk_ld32(xq + 2 * i);
        if (i + 1 < nw) xw[i + 1] = (int32_t)ttk_ld32(xq + 2 * i + 2);
      }
    }
#pragma GCC unroll 6
    for (int32_t j = 0; j < k - 1; j += 2) {
      int32_t wv[2];
      TTK_LD2V(q + j, wv[0], wv[1]);
#pragma GCC unroll 2
      for (int32_t jj = j; jj < j + 2; ++jj) {
        const int32_t v = wv[jj - j];
        const int even = jj < hk; /* E_i (i = jj) or O_i (i = jj - hk + 1) */
        const int32_t i = even ? jj : jj - hk + 1;
#pragma GCC unroll 4
        for (int32_t o = 0; o < n; ++o) {
          if (stride == 2) {
            if (even) a[o] = ttk_smlad(xw[o + i], v, a[o]);
            else if (i == hk) a[o] = ttk_smlabt(xw[o + hk], v, a[o]);
          } else if ((o & 1) == 0) {
            if (even) a[o] = ttk_smlad(xw[o / 2 + i], v, a[o]);
            else if (i == hk) a[o] = ttk_smlabt(xw[o / 2 + hk], v, a[o]);
          } else {
            if (!even) a[o] = ttk_smlad(xw[o / 2 + i], v, a[o]);
            else if (i == 0) a[o] = ttk_smlatb(xw[o / 2], v, a[o]);
          }
        }
      }
    }
  }
  for (int32_t o = 0; o < n; ++o) acc[o] = a[o];
}

/* One output row of one channel: pixels in groups of n, then one at a time; outputs `c`
 * bytes apart. */
TTK_INLINE void ttk_dw_row_smlad(const int16_t* xr, int32_t cols, const int32_t* wq, int32_t k,
                                 int32_t stride, int32_t n, int32_t ox, int32_t ow, int32_t b,
                                 int ff, ttk_q2_t q2, ttk_rq_t rq, int32_t yz, int32_t lo,
                                 int32_t hi, int8_t* yp, int32_t c) {
  const int full = lo == -128 && hi == 127;
  yp += ox * c;
  for (; n > 1 && ox + n <= ow; ox += n, yp += n * c) {
    int32_t a[4];
    ttk_dw_px_smlad(xr + ox * stride, cols, wq, k, stride, n, b, a);
#pragma GCC unroll 4
    for (int32_t o = 0; o < n; ++o)
      yp[o * c] = ff ? ttk_sat_s8(ttk_q2_apply2(a[o], q2.m, q2.kc, q2.e)) : TTK_OUT(a[o], rq);
  }
  for (; ox < ow; ++ox, yp += c) {
    int32_t a[4];
    ttk_dw_px_smlad(xr + ox * stride, cols, wq, k, stride, 1, b, a);
    yp[0] = ff ? ttk_sat_s8(ttk_q2_apply2(a[0], q2.m, q2.kc, q2.e)) : TTK_OUT(a[0], rq);
  }
}

#if TTK_HAVE_DSP
/* The q2 layers' rows in Armv7E-M assembly (in C, GCC keeps the accumulators and the unrolled
 * x words in memory): one routine per (K, stride) runs `rows` output rows of `nch` channels
 * (a channel group's strips, one call: per channel its weight words are copied to the frame and
 * its record's constants stored there), N pixels per iteration (N = 4; 3 for K = 7 stride 2, for the registers). Per window row: one
 * LDM of the x words (r0..), the weight words from the frame (LDRD or LDR, r5/r6 or r3/r4),
 * the multiplies into the accumulators r7..r10, ADD of the row stride; then the q2 epilogue
 * (5 instructions per output: the weights and bias are doubled, ttk_q2_apply2) with mult r0,
 * kc r1, e r2, y r3, c r4, end r5 loaded by one LDM
 * from the frame. r11 the pixel group's row-0 pointer, r12 the walking row pointer, lr the
 * row stride in bytes.
 * Frame: [sp] mult, #4 kc, #8 e, #12 y, #16 c, #20 end of the row's groups, #24/#28 bias,
 * #32 row-0 pointer of the output row, #36 its output, #40 rows left, #44 bytes between output
 * rows in the strip, #48 bytes between output rows in y, #52 bytes of a row's groups, #64 the
 * weight words (K * (K - 1), ttk_dw_pack_channel's layout), then the channel loop's words
 * (TTK_DWA_E). */
typedef struct {
  const int16_t* x;   /* channel 0: window row 0 of the first output row, its first pixel */
  int32_t row_bytes;  /* bytes between strip rows */
  const int32_t* wq;  /* K * (K - 1) weight words per channel, the channels one after another */
  const int32_t* rec; /* per channel {2 bias, m, kc, e}: the q2 constants (weights doubled) */
  int8_t* y;          /* channel 0: the first output of the first row (channel i: y + i) */
  int32_t c;          /* bytes between outputs (channels) */
  int32_t groups;     /* groups of N pixels per row, >= 1 */
  int32_t rows;       /* >= 1 */
  int32_t x_row;      /* bytes between output rows in the strip: stride * row_bytes */
  int32_t y_row;      /* bytes between output rows in y: ow * c */
  int32_t nch;        /* channels, >= 1 */
  int32_t plane;      /* bytes between the channels' strips */
} ttk_dw_args_t;

#define TTK_DWA_OUT(acc, addr)                     \
  "add    r6, r1, " acc ", asr #31\n\t"            \
  "smmlar r6, " acc ", r0, r6\n\t"                 \
  "asr    r6, r6, r2\n\t"                          \
  "ssat   r6, #8, r6\n\t"                          \
  "strb   r6, " addr "\n\t"
#define TTK_DWA_MAC(op, d, n, m) op " " d ", " n ", " m ", " d "\n\t"
#define TTK_DWA_NEXT_ROW0 "add    r12, r11, lr\n\t"
#define TTK_DWA_NEXT_ROW "add    r12, r12, lr\n\t"

/* Stride 1, N = 4 (accumulators r7-r10 = pixels 0-3; pixel o starts at half o of X0):
 * E0 gives pixels 0/2 their taps 0-1 and pixels 1/3 their tap 0 (top halves of X0/X1),
 * E_i (i >= 1) pixels 0/2, O_i pixels 1/3, and O_h's top (the last tap) pixels 0/2. */
#define TTK_DWA_S1_E0(x0, x1, w)                                                    \
  TTK_DWA_MAC("smlad", "r7", x0, w) TTK_DWA_MAC("smlad", "r9", x1, w)               \
  TTK_DWA_MAC("smlatb", "r8", x0, w) TTK_DWA_MAC("smlatb", "r10", x1, w)
#define TTK_DWA_S1_E(xa, xb, w) TTK_DWA_MAC("smlad", "r7", xa, w) TTK_DWA_MAC("smlad", "r9", xb, w)
#define TTK_DWA_S1_O(xa, xb, w) TTK_DWA_MAC("smlad", "r8", xa, w) TTK_DWA_MAC("smlad", "r10", xb, w)
#define TTK_DWA_S1_LAST(xa, xb, w)                                                  \
  TTK_DWA_MAC("smlabt", "r7", xa, w) TTK_DWA_MAC("smlabt", "r9", xb, w)
/* Stride 2 (pixel o starts at word o): one weight word into the 4 (3) accumulators. */
#define TTK_DWA_S2_3(op, x0, x1, x2, w)                                             \
  TTK_DWA_MAC(op, "r7", x0, w) TTK_DWA_MAC(op, "r8", x1, w) TTK_DWA_MAC(op, "r9", x2, w)
#define TTK_DWA_S2_4(op, x0, x1, x2, x3, w) TTK_DWA_S2_3(op, x0, x1, x2, w) TTK_DWA_MAC(op, "r10", x3, w)
#define TTK_DWA_LDX(base, regs) "ldm    " base ", {" regs "}\n\t"
#define TTK_DWA_LDW2(a, b, k, r, word) "ldrd   " a ", " b ", [sp, #(64 + 4 * (" k " - 1) * " r " + 4 * " word ")]\n\t"
#define TTK_DWA_LDW(a, k, r, word) "ldr    " a ", [sp, #(64 + 4 * (" k " - 1) * " r " + 4 * " word ")]\n\t"

/* K = 3, stride 1: X0-X2 (r0-r2); E0 r3, O1 r4. */
#define TTK_DWA_ROW_3_1(base, r)                                                    \
  TTK_DWA_LDX(base, "r0-r2") TTK_DWA_LDW2("r3", "r4", "3", r, "0")                  \
  TTK_DWA_S1_E0("r0", "r1", "r3") TTK_DWA_S1_O("r1", "r2", "r4") TTK_DWA_S1_LAST("r1", "r2", "r4")
/* The same for window row 0 with the bias in r5 (TTK_DWA_BIAS_R5): E0 starts all 4 accumulators. */
#define TTK_DWA_MAC0(op, d, n, m) op " " d ", " n ", " m ", r5\n\t"
#define TTK_DWA_ROW_3_1_B(base, r)                                                  \
  TTK_DWA_LDX(base, "r0-r2") TTK_DWA_LDW2("r3", "r4", "3", r, "0")                  \
  TTK_DWA_MAC0("smlad", "r7", "r0", "r3") TTK_DWA_MAC0("smlad", "r9", "r1", "r3")   \
  TTK_DWA_MAC0("smlatb", "r8", "r0", "r3") TTK_DWA_MAC0("smlatb", "r10", "r1", "r3") \
  TTK_DWA_S1_O("r1", "r2", "r4") TTK_DWA_S1_LAST("r1", "r2", "r4")
/* K = 5, stride 1: X0-X3 (r0-r3); E0 E1, then O1 O2 (r4, r5). */
#define TTK_DWA_ROW_5_1(base, r)                                                    \
  TTK_DWA_LDX(base, "r0-r3") TTK_DWA_LDW2("r4", "r5", "5", r, "0")                  \
  TTK_DWA_S1_E0("r0", "r1", "r4") TTK_DWA_S1_E("r1", "r2", "r5")                    \
  TTK_DWA_LDW2("r4", "r5", "5", r, "2")                                             \
  TTK_DWA_S1_O("r1", "r2", "r4") TTK_DWA_S1_O("r2", "r3", "r5") TTK_DWA_S1_LAST("r2", "r3", "r5")
/* K = 7, stride 1: X0-X4 (r0-r4); E0 E1, E2 O1, O2 O3 (r5, r6). */
#define TTK_DWA_ROW_7_1(base, r)                                                    \
  TTK_DWA_LDX(base, "r0-r4") TTK_DWA_LDW2("r5", "r6", "7", r, "0")                  \
  TTK_DWA_S1_E0("r0", "r1", "r5") TTK_DWA_S1_E("r1", "r2", "r6")                    \
  TTK_DWA_LDW2("r5", "r6", "7", r, "2")                                             \
  TTK_DWA_S1_E("r2", "r3", "r5") TTK_DWA_S1_O("r1", "r2", "r6")                     \
  TTK_DWA_LDW2("r5", "r6", "7", r, "4")                                             \
  TTK_DWA_S1_O("r2", "r3", "r5") TTK_DWA_S1_O("r3", "r4", "r6") TTK_DWA_S1_LAST("r3", "r4", "r6")
/* K = 3, stride 2, N = 4: X0-X4 (r0-r4), E0 r5, O1 r6. */
#define TTK_DWA_ROW_3_2(base, r)                                                    \
  TTK_DWA_LDX(base, "r0-r4") TTK_DWA_LDW2("r5", "r6", "3", r, "0")                  \
  TTK_DWA_S2_4("smlad", "r0", "r1", "r2", "r3", "r5")                               \
  TTK_DWA_S2_4("smlabt", "r1", "r2", "r3", "r4", "r6")
/* K = 5, stride 2, N = 4: X0-X5 (r0-r5); E0, E1, O2 one at a time (r6). */
#define TTK_DWA_ROW_5_2(base, r)                                                    \
  TTK_DWA_LDX(base, "r0-r5") TTK_DWA_LDW("r6", "5", r, "0")                         \
  TTK_DWA_S2_4("smlad", "r0", "r1", "r2", "r3", "r6") TTK_DWA_LDW("r6", "5", r, "1") \
  TTK_DWA_S2_4("smlad", "r1", "r2", "r3", "r4", "r6") TTK_DWA_LDW("r6", "5", r, "3") \
  TTK_DWA_S2_4("smlabt", "r2", "r3", "r4", "r5", "r6")
/* K = 7, stride 2, N = 3: X0-X5 (r0-r5); E0, E1, E2, O3 one at a time (r6). */
#define TTK_DWA_ROW_7_2(base, r)                                                    \
  TTK_DWA_LDX(base, "r0-r5") TTK_DWA_LDW("r6", "7", r, "0")                         \
  TTK_DWA_S2_3("smlad", "r0", "r1", "r2", "r6") TTK_DWA_LDW("r6", "7", r, "1")       \
  TTK_DWA_S2_3("smlad", "r1", "r2", "r3", "r6") TTK_DWA_LDW("r6", "7", r, "2")       \
  TTK_DWA_S2_3("smlad", "r2", "r3", "r4", "r6") TTK_DWA_LDW("r6", "7", r, "5")       \
  TTK_DWA_S2_3("smlabt", "r3", "r4", "r5", "r6")

#define TTK_DWA_ROWS3(ROW) ROW("r11", "0") TTK_DWA_NEXT_ROW0 ROW("r12", "1") TTK_DWA_NEXT_ROW \
  ROW("r12", "2")
#define TTK_DWA_ROWS3_B(ROW0, ROW) ROW0("r11", "0") TTK_DWA_NEXT_ROW0 ROW("r12", "1") TTK_DWA_NEXT_ROW \
  ROW("r12", "2")
#define TTK_DWA_ROWS5(ROW) TTK_DWA_ROWS3(ROW) TTK_DWA_NEXT_ROW ROW("r12", "3") TTK_DWA_NEXT_ROW \
  ROW("r12", "4")
#define TTK_DWA_ROWS7(ROW) TTK_DWA_ROWS5(ROW) TTK_DWA_NEXT_ROW ROW("r12", "5") TTK_DWA_NEXT_ROW \
  ROW("r12", "6")
#define TTK_DWA_INIT4 "ldrd   r7, r8, [sp, #24]\n\t" "ldrd   r9, r10, [sp, #24]\n\t"
#define TTK_DWA_INIT3 "ldrd   r7, r8, [sp, #24]\n\t" "ldr    r9, [sp, #24]\n\t"
#define TTK_DWA_EPI4                                                                \
  TTK_DWA_OUT("r7", "[r3]") TTK_DWA_OUT("r8", "[r3, r4]") "add    r3, r3, r4, lsl #1\n\t" \
  TTK_DWA_OUT("r9", "[r3]") TTK_DWA_OUT("r10", "[r3, r4]") "add    r3, r3, r4, lsl #1\n\t"
#define TTK_DWA_EPI3                                                                \
  TTK_DWA_OUT("r7", "[r3]") TTK_DWA_OUT("r8", "[r3, r4]") "add    r3, r3, r4, lsl #1\n\t" \
  TTK_DWA_OUT("r9", "[r3]") "add    r3, r3, r4\n\t"

/* frame = 64 + 4 K (K - 1) + 32 bytes (TTK_DWA_E); adv = bytes of x per group of N pixels (2 N stride); the
 * K (K - 1) weight words are copied to the frame CW words (registers CREGS) per LDM/STM. PRE runs
 * once per output row, LDE are the epilogue's registers from the frame, ENDCMP the group loop's
 * end test (TTK_DWA_BIAS_R5: the bias stays in r5, so the first multiplies add it instead of 4
 * loads of the accumulators; the loop end is reloaded instead). */
#define TTK_DWA_ROUTINE_X(...) TTK_DWA_ROUTINE(__VA_ARGS__)
/* The frame's channel-loop words, after the weight words: +0 rows, +4 channels left, +8/+12 the
 * next channel's x and y, +16/+20 its weight words and record, +24 bytes between the strips. */
#define TTK_DWA_E(K) "(64 + 4 * " #K " * (" #K " - 1))"
#define TTK_DWA_STD "", "r0-r5", "cmp    r11, r5\n\t"
#define TTK_DWA_BIAS_R5 "ldr    r5, [sp, #24]\n\t", "r0-r4", "ldr    r6, [sp, #20]\n\tcmp    r11, r6\n\t"
#define TTK_DWA_ROUTINE(name, K, adv, INIT, ROWS, EPI, CW, CREGS, PRE, LDE, ENDCMP) \
  __asm__("  .text\n\t"                                                             \
          "  .syntax unified\n\t"                                                   \
          "  .thumb\n\t"                                                            \
          "  .p2align 2\n\t"                                                        \
          "  .global " #name "\n\t"                                                 \
          "  .hidden " #name "\n\t"                                                 \
          "  .type " #name ", %function\n\t"                                        \
          "  .thumb_func\n" #name ":\n\t"                                           \
          "push   {r4-r11, lr}\n\t"                                                 \
          "sub    sp, sp, #(" TTK_DWA_E(K) " + 32)\n\t"                             \
          "ldm    r0, {r1-r12}\n\t"                                                 \
          "str    r6, [sp, #16]\n\t"                                                \
          "strd   r9, r10, [sp, #44]\n\t"                                           \
          "movs   r0, #" #adv "\n\t"                                                \
          "mul    r7, r7, r0\n\t"                                                   \
          "str    r7, [sp, #52]\n\t"                                                \
          "str    r8, [sp, #" TTK_DWA_E(K) "]\n\t"                                  \
          "str    r11, [sp, #(" TTK_DWA_E(K) " + 4)]\n\t"                           \
          "strd   r1, r5, [sp, #(" TTK_DWA_E(K) " + 8)]\n\t"                        \
          "strd   r3, r4, [sp, #(" TTK_DWA_E(K) " + 16)]\n\t"                       \
          "str    r12, [sp, #(" TTK_DWA_E(K) " + 24)]\n\t"                          \
          "mov    lr, r2\n"                                                         \
          "3:\n\t"                                                                  \
          "ldr    r3, [sp, #(" TTK_DWA_E(K) " + 16)]\n\t"                           \
          "add    r4, sp, #64\n\t"                                                  \
          "movs   r5, #(" #K " * (" #K " - 1) / " #CW ")\n"                         \
          "0:\n\t"                                                                  \
          "ldm    r3!, {" CREGS "}\n\t"                                             \
          "stm    r4!, {" CREGS "}\n\t"                                             \
          "subs   r5, r5, #1\n\t"                                                   \
          "bne    0b\n\t"                                                           \
          "str    r3, [sp, #(" TTK_DWA_E(K) " + 16)]\n\t"                           \
          "ldr    r0, [sp, #(" TTK_DWA_E(K) " + 20)]\n\t"                           \
          "ldm    r0!, {r4-r7}\n\t"                                                 \
          "str    r0, [sp, #(" TTK_DWA_E(K) " + 20)]\n\t"                           \
          "strd   r5, r6, [sp]\n\t"                                                 \
          "str    r7, [sp, #8]\n\t"                                                 \
          "strd   r4, r4, [sp, #24]\n\t"                                            \
          "ldrd   r1, r8, [sp, #(" TTK_DWA_E(K) " + 8)]\n\t"                        \
          "strd   r1, r8, [sp, #32]\n\t"                                            \
          "ldr    r2, [sp, #(" TTK_DWA_E(K) " + 24)]\n\t"                           \
          "add    r1, r1, r2\n\t"                                                   \
          "add    r8, r8, #1\n\t"                                                   \
          "strd   r1, r8, [sp, #(" TTK_DWA_E(K) " + 8)]\n\t"                        \
          "ldr    r0, [sp, #" TTK_DWA_E(K) "]\n\t"                                  \
          "str    r0, [sp, #40]\n"                                                  \
          "1:\n\t"                                                                  \
          "ldrd   r11, r0, [sp, #32]\n\t"                                           \
          "str    r0, [sp, #12]\n\t"                                                \
          "ldr    r0, [sp, #52]\n\t"                                                \
          "add    r0, r11, r0\n\t"                                                  \
          "str    r0, [sp, #20]\n\t" PRE                                            \
          "2:\n\t" INIT ROWS                                                        \
          "add    r11, r11, #" #adv "\n\t"                                          \
          "ldm    sp, {" LDE "}\n\t" EPI                                            \
          "str    r3, [sp, #12]\n\t"                                                \
          ENDCMP                                                                    \
          "bne    2b\n\t"                                                           \
          "ldrd   r0, r1, [sp, #32]\n\t"                                            \
          "ldrd   r2, r3, [sp, #44]\n\t"                                            \
          "add    r0, r0, r2\n\t"                                                   \
          "add    r1, r1, r3\n\t"                                                   \
          "strd   r0, r1, [sp, #32]\n\t"                                            \
          "ldr    r0, [sp, #40]\n\t"                                                \
          "subs   r0, r0, #1\n\t"                                                   \
          "str    r0, [sp, #40]\n\t"                                                \
          "bne    1b\n\t"                                                           \
          "ldr    r0, [sp, #(" TTK_DWA_E(K) " + 4)]\n\t"                            \
          "subs   r0, r0, #1\n\t"                                                   \
          "str    r0, [sp, #(" TTK_DWA_E(K) " + 4)]\n\t"                            \
          "bne    3b\n\t"                                                           \
          "add    sp, sp, #(" TTK_DWA_E(K) " + 32)\n\t"                             \
          "pop    {r4-r11, pc}\n\t"                                                 \
          "  .size " #name ", .-" #name "\n\t");                                    \
  void name(const ttk_dw_args_t* a)

TTK_DWA_ROUTINE_X(ttk_dw_q2_k3s1_dsp, 3, 8, "", TTK_DWA_ROWS3_B(TTK_DWA_ROW_3_1_B, TTK_DWA_ROW_3_1), TTK_DWA_EPI4, 6, "r6-r11", TTK_DWA_BIAS_R5);
TTK_DWA_ROUTINE_X(ttk_dw_q2_k3s2_dsp, 3, 16, TTK_DWA_INIT4, TTK_DWA_ROWS3(TTK_DWA_ROW_3_2), TTK_DWA_EPI4, 6, "r6-r11", TTK_DWA_STD);
TTK_DWA_ROUTINE_X(ttk_dw_q2_k5s1_dsp, 5, 8, TTK_DWA_INIT4, TTK_DWA_ROWS5(TTK_DWA_ROW_5_1), TTK_DWA_EPI4, 4, "r6-r9", TTK_DWA_STD);
TTK_DWA_ROUTINE_X(ttk_dw_q2_k5s2_dsp, 5, 16, TTK_DWA_INIT4, TTK_DWA_ROWS5(TTK_DWA_ROW_5_2), TTK_DWA_EPI4, 4, "r6-r9", TTK_DWA_STD);
TTK_DWA_ROUTINE_X(ttk_dw_q2_k7s1_dsp, 7, 8, TTK_DWA_INIT4, TTK_DWA_ROWS7(TTK_DWA_ROW_7_1), TTK_DWA_EPI4, 6, "r6-r11", TTK_DWA_STD);
TTK_DWA_ROUTINE_X(ttk_dw_q2_k7s2_dsp, 7, 12, TTK_DWA_INIT3, TTK_DWA_ROWS7(TTK_DWA_ROW_7_2), TTK_DWA_EPI3, 6, "r6-r11", TTK_DWA_STD);
#define TTK_DW_ASM_N(k, stride) ((k) == 7 && (stride) == 2 ? 3 : 4)
/* The pixel tail of `nn` output rows of one channel at stride 1 (ow - ox0 < 4 pixels) as one
 * more group of the assembly rows into `tail` (4 outputs a row, up to 8 rows a call), then its
 * valid outputs to y: the group's x words end at column ox0 + 4 + K - 2 <= W + 2 pad + 2, inside
 * the strip row (ttk_dw_strip_cols), so the dropped outputs read its zeroed columns. Not
 * inlined: the group loop keeps its registers. */
__attribute__((noinline)) static void ttk_dw_tail_s1(const int16_t* xs, int32_t cols, const int32_t* wq,
                                                    int32_t b, ttk_q2_t q2, int32_t k, int32_t ox0,
                                                    int32_t ow, int32_t nn, int8_t* yc, int32_t c) {
  int8_t tail[32];
  const int32_t rec[4] = {b, q2.m, q2.kc, q2.e};
  for (int32_t t0 = 0; t0 < nn; t0 += 8) {
    const int32_t tn = nn - t0 < 8 ? nn - t0 : 8;
    const ttk_dw_args_t at = {xs + t0 * cols + ox0, 2 * cols, wq, rec, tail, 1, 1, tn, 2 * cols, 4, 1, 0};
    if (k == 3) ttk_dw_q2_k3s1_dsp(&at);
    else if (k == 5) ttk_dw_q2_k5s1_dsp(&at);
    else ttk_dw_q2_k7s1_dsp(&at);
    for (int32_t t = 0; t < tn; ++t)
      for (int32_t o = ox0; o < ow; ++o) yc[((t0 + t) * ow + o) * c] = tail[4 * t + o - ox0];
  }
}
#endif

TTK_INLINE void ttk_dw_group_smlad(const int8_t* x, int32_t h, int32_t w, int32_t c,
                                   const int8_t* wt, int32_t k, int32_t stride, int32_t pad,
                                   const int32_t* bias, const ttk_quant_t* q, int8_t* y,
                                   int32_t ch, const int ff, int32_t* wqs, int16_t* strip,
                                   int32_t rows, const int zero_rows_kept) {
  const int32_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  const int32_t off = ttk_offset2(q->x_zero), yz = q->y_zero, lo = q->act_min, hi = q->act_max;
  const int32_t cols = ttk_dw_strip_cols(w, pad), plane = rows * cols;
  const int32_t n = (rows - k) / stride + 1; /* output rows per strip */
  int32_t* wq[4] = {wqs, wqs + k * (k - 1), wqs + 2 * k * (k - 1), wqs + 3 * k * (k - 1)};
  ttk_q2_t q2[4];
  ttk_rq_t rq[4];
  for (int32_t p = 0; p < 4; ++p) {
    if (k == 3) /* q2: 2 w, 2 bias (2 acc) */
      ttk_dw_pack_channel(wt, 3, c, ch + p, ff ? 2 : 1, wq[p]);
    else
      ttk_dw_pack_channel_call(wt, k, c, ch + p, ff ? 2 : 1, wq[p]);
    q2[p] = ff ? ttk_q2_make(q->mult[ch + p], q->shift[ch + p], yz) : (ttk_q2_t){0, 0, 0};
    rq[p] = ttk_rq_make(q->mult[ch + p], q->shift[ch + p]);
  }
#if TTK_HAVE_DSP
  const int32_t na = TTK_DW_ASM_N(k, stride), groups = ow / na;
  const int asm_rows = ff && groups > 0;
#endif
  for (int32_t oy0 = 0; oy0 < oh; oy0 += n) {
    const int32_t nn = oh - oy0 < n ? oh - oy0 : n;
    ttk_dw_strip_fill(x, h, w, c, ch, k, stride, pad, off, oy0, nn, cols, plane, strip, zero_rows_kept);
    for (int32_t p = 0; p < 4; ++p) {
      const int32_t cc = ch + p;
      const int32_t b = bias ? (ff ? 2 * bias[cc] : bias[cc]) : 0;
      const int16_t* xs = strip + p * plane;
      int8_t* yc = y + oy0 * ow * c + cc;
      int32_t n_px = TTK_DW_N, ox0 = 0;
#if TTK_HAVE_DSP
      if (ff) n_px = 1; /* q2 rows: the assembly's groups, the C rows only for the pixel tail */
      if (asm_rows) { /* the assembly rows, then the pixel tail (if any) in C */
        const int32_t rec[4] = {b, q2[p].m, q2[p].kc, q2[p].e};
        const ttk_dw_args_t a = {xs, 2 * cols, wq[p], rec, yc, c, groups, nn, 2 * stride * cols, ow * c, 1, 0};
        if (k == 3) (stride == 1 ? ttk_dw_q2_k3s1_dsp : ttk_dw_q2_k3s2_dsp)(&a);
        else if (k == 5) (stride == 1 ? ttk_dw_q2_k5s1_dsp : ttk_dw_q2_k5s2_dsp)(&a);
        else (stride == 1 ? ttk_dw_q2_k7s1_dsp : ttk_dw_q2_k7s2_dsp)(&a);
        ox0 = groups * na;
        if (ox0 == ow) continue;
        if (stride == 1) { /* the pixel tail in assembly too (ttk_dw_tail_s1) */
          ttk_dw_tail_s1(xs, cols, wq[p], b, q2[p], k, ox0, ow, nn, yc, c);
          continue;
        }
      }
#endif
      for (int32_t t = 0; t < nn; ++t)
        ttk_dw_row_smlad(xs + t * stride * cols, cols, wq[p], k, stride, n_px, ox0, ow, b, ff,
                         q2[p], rq[p], yz, lo, hi, yc + t * ow * c, c);
    }
    if (oy0 + nn < oh) ttk_dw_strip_shift(strip, plane, cols, k, stride, nn);
  }
}

#if TTK_HAVE_DSP
/* The q2 layers' channel groups when every output row is the assembly's pixel groups (plus, at
 * stride 1, ttk_dw_tail_s1's tail): the same work as ttk_dw_group_smlad's assembly rows with
 * the layer's constants (output size, strip geometry, which routine) computed once per call
 * instead of once per group, and no general requantization records. Not inlined: its own
 * small frame (ttk_dw_group_smlad inlined six times spills its state per group). */
__attribute__((noinline)) static void ttk_dw_groups_q2_dsp(const int8_t* x, int32_t h, int32_t w, int32_t c,
                                                          const int8_t* wt, int32_t k, int32_t stride,
                                                          int32_t pad, const int32_t* bias,
                                                          const ttk_quant_t* q, int8_t* y, int32_t* wqs,
                                                          int16_t* strip, int32_t rows, int zero_rows_kept) {
  const int32_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  const int32_t off = ttk_offset2(q->x_zero), yz = q->y_zero;
  const int32_t cols = ttk_dw_strip_cols(w, pad), plane = rows * cols;
  const int32_t n = (rows - k) / stride + 1; /* output rows per strip */
  const int32_t kw = k * (k - 1), na = TTK_DW_ASM_N(k, stride), groups = ow / na;
  const int tail = groups * na < ow; /* stride 1 only (ttk_dw_groups_q2_dsp_ok) */
  const int32_t routine = (k - 3) + (stride - 1); /* 0, 1 (K 3); 2, 3 (K 5); 4, 5 (K 7) */
  ttk_q2_t q2[4];
  int32_t rec[4][4]; /* per channel {2 bias, m, kc, e} (ttk_dw_args_t) */
  for (int32_t ch = 0; ch + 4 <= c; ch += 4) {
    for (int32_t p = 0; p < 4; ++p) { /* weights and bias doubled (q2) */
      if (k == 3) ttk_dw_pack_channel(wt, 3, c, ch + p, 2, wqs + p * kw);
      else ttk_dw_pack_channel_call(wt, k, c, ch + p, 2, wqs + p * kw);
      q2[p] = ttk_q2_make(q->mult[ch + p], q->shift[ch + p], yz);
      rec[p][0] = bias ? 2 * bias[ch + p] : 0;
      rec[p][1] = q2[p].m, rec[p][2] = q2[p].kc, rec[p][3] = q2[p].e;
    }
    for (int32_t oy0 = 0; oy0 < oh; oy0 += n) {
      const int32_t nn = oh - oy0 < n ? oh - oy0 : n;
      ttk_dw_strip_fill(x, h, w, c, ch, k, stride, pad, off, oy0, nn, cols, plane, strip, zero_rows_kept);
      int8_t* yc = y + oy0 * ow * c + ch;
      /* the 4 channels' rows in one call */
      const ttk_dw_args_t a = {strip, 2 * cols, wqs, rec[0], yc, c, groups, nn, 2 * stride * cols, ow * c,
                               4, 2 * plane};
      /* direct calls (the firmware's static stack bound resolves no function pointer) */
      switch (routine) {
        case 0: ttk_dw_q2_k3s1_dsp(&a); break;
        case 1: ttk_dw_q2_k3s2_dsp(&a); break;
        case 2: ttk_dw_q2_k5s1_dsp(&a); break;
        case 3: ttk_dw_q2_k5s2_dsp(&a); break;
        case 4: ttk_dw_q2_k7s1_dsp(&a); break;
        default: ttk_dw_q2_k7s2_dsp(&a); break;
      }
      if (tail)
        for (int32_t p = 0; p < 4; ++p)
          ttk_dw_tail_s1(strip + p * plane, cols, wqs + p * kw, rec[p][0], q2[p], k, groups * na, ow, nn,
                         yc + p, c);
      if (oy0 + nn < oh) ttk_dw_strip_shift(strip, plane, cols, k, stride, nn);
    }
  }
}

/* 1 if ttk_dw_groups_q2_dsp computes this q2 layer: at least one pixel group per output row,
 * and a pixel tail only at stride 1. */
static int ttk_dw_groups_q2_dsp_ok(int32_t w, int32_t k, int32_t stride, int32_t pad) {
  const int32_t ow = (w + 2 * pad - k) / stride + 1, na = TTK_DW_ASM_N(k, stride);
  return ow >= na && (stride == 1 || ow % na == 0);
}
#endif

/* The SMLAD path for channels [0, 4 * (c / 4)) when the scratch holds the weight words and a
 * strip of K rows; 0 if not taken. */
__attribute__((noinline)) static int ttk_dwconv_s8_smlad(const int8_t* x, int32_t h, int32_t w, int32_t c,
                               const int8_t* wt, int32_t k, int32_t stride, int32_t pad,
                               const int32_t* bias, const ttk_quant_t* q, int8_t* y, int ff,
                               void* scratch, size_t scratch_bytes) {
  const int32_t cols = ttk_dw_strip_cols(w, pad);
  if (scratch == NULL || c < 4 || scratch_bytes < ttk_dwconv_s8_scratch_min(w, k, pad)) return 0;
  const size_t strip_bytes = scratch_bytes - (size_t)(16 * k * (k - 1));
  const int32_t all = h + 2 * pad;
  int32_t rows = (int32_t)(strip_bytes / (8u * (size_t)cols) < (size_t)all ? strip_bytes / (8u * (size_t)cols) : (size_t)all);
  int32_t* wq = (int32_t*)scratch;
  int16_t* s16 = (int16_t*)(void*)(wq + 4 * k * (k - 1));
  for (int32_t i = 0; i < 4 * rows; ++i) { /* the padding columns and those past the input */
    for (int32_t j = 0; j < pad; ++j) s16[i * cols + j] = 0;
    for (int32_t j = pad + w; j < cols; ++j) s16[i * cols + j] = 0;
  }
  /* One strip holds the whole padded input: its padding rows (strip rows [0, pad) and
   * [pad + h, rows)) are the same for every channel group and never moved, so they are
   * zeroed here once instead of by each group's widening. */
  const int zero_rows_kept = rows == all;
  if (zero_rows_kept)
    for (int32_t p = 0; p < 4; ++p)
      for (int32_t i = 0; i < rows; ++i)
        if (i < pad || i >= pad + h)
          for (int32_t j = 0; j < cols; ++j) s16[(p * rows + i) * cols + j] = 0;
#if TTK_HAVE_DSP
  if (ff && ttk_dw_groups_q2_dsp_ok(w, k, stride, pad)) {
    ttk_dw_groups_q2_dsp(x, h, w, c, wt, k, stride, pad, bias, q, y, wq, s16, rows, zero_rows_kept);
    return 1;
  }
#endif
  for (int32_t ch = 0; ch + 4 <= c; ch += 4) {
#define TTK_DW_SMLAD(K, S) ttk_dw_group_smlad(x, h, w, c, wt, K, S, pad, bias, q, y, ch, ff, wq, s16, rows, zero_rows_kept)
    if (stride == 1) {
      if (k == 3) TTK_DW_SMLAD(3, 1);
      else if (k == 5) TTK_DW_SMLAD(5, 1);
      else TTK_DW_SMLAD(7, 1);
    } else {
      if (k == 3) TTK_DW_SMLAD(3, 2);
      else if (k == 5) TTK_DW_SMLAD(5, 2);
      else TTK_DW_SMLAD(7, 2);
    }
#undef TTK_DW_SMLAD
  }
  return 1;
}

static void ttk_dwconv_s8_mac1(const int8_t* x, int32_t h, int32_t w, int32_t c,
                               const int8_t* wt, int32_t k, int32_t stride, int32_t pad,
                               const int32_t* bias, const ttk_quant_t* q, int8_t* y, int ff,
                               int32_t ch);

int ttk_dwconv_s8(const int8_t* x, int32_t h, int32_t w, int32_t c, const int8_t* wt,
                  int32_t k, int32_t stride, int32_t pad, const int32_t* bias,
                  const ttk_quant_t* q, int8_t* y, void* scratch, size_t scratch_bytes) {
  if (x == NULL || wt == NULL || y == NULL || !ttk_dw_shape_ok(h, w, c, k, stride, pad) ||
      !ttk_quant_ok(q) || ((uintptr_t)scratch & 3u) != 0u)
    return -1;
  const int ff = ttk_layer_q2(q, bias, c, (int64_t)k * k * TTK_MAX_PROD);
  int32_t ch = 0;
  if (ttk_dwconv_s8_smlad(x, h, w, c, wt, k, stride, pad, bias, q, y, ff, scratch, scratch_bytes))
    ch = c & ~3;
  ttk_dwconv_s8_mac1(x, h, w, c, wt, k, stride, pad, bias, q, y, ff, ch);
  return 0;
}

/* The one-MAC-per-instruction path for channels [ch, C): groups of 4, then the C mod 4 tail
 * in plain C. Not inlined: its frame and the SMLAD path's are never on the stack together. */
__attribute__((noinline)) static void ttk_dwconv_s8_mac1(const int8_t* x, int32_t h, int32_t w,
                                                        int32_t c, const int8_t* wt, int32_t k,
                                                        int32_t stride, int32_t pad,
                                                        const int32_t* bias, const ttk_quant_t* q,
                                                        int8_t* y, int ff, int32_t ch) {
  for (; ch + 4 <= c; ch += 4) {
    if (ff) {
      if (k == 3)
        ttk_dw_group(x, h, w, c, wt, 3, stride, pad, bias, q, y, ch, 1);
      else if (k == 5)
        ttk_dw_group(x, h, w, c, wt, 5, stride, pad, bias, q, y, ch, 1);
      else
        ttk_dw_group(x, h, w, c, wt, 7, stride, pad, bias, q, y, ch, 1);
    } else {
      if (k == 3)
        ttk_dw_group(x, h, w, c, wt, 3, stride, pad, bias, q, y, ch, 0);
      else if (k == 5)
        ttk_dw_group(x, h, w, c, wt, 5, stride, pad, bias, q, y, ch, 0);
      else
        ttk_dw_group(x, h, w, c, wt, 7, stride, pad, bias, q, y, ch, 0);
    }
  }
  if (ch == c) return;
  /* channel tail (C not a multiple of 4): plain C */
  const int32_t xz = q->x_zero;
  const int32_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  for (int32_t oy = 0; oy < oh; ++oy)
    for (int32_t ox = 0; ox < ow; ++ox)
      for (int32_t cc = ch; cc < c; ++cc) {
        int32_t a = bias ? bias[cc] : 0;
        for (int32_t r = 0; r < k; ++r) {
          const int32_t iy = oy * stride - pad + r;
          if (iy < 0 || iy >= h) continue;
          for (int32_t t = 0; t < k; ++t) {
            const int32_t ix = ox * stride - pad + t;
            if (ix < 0 || ix >= w) continue;
            a += (x[(iy * w + ix) * c + cc] - xz) * wt[(r * k + t) * c + cc];
          }
        }
        y[(oy * ow + ox) * c + cc] = ttk_out(a, q, cc);
      }
}

/* ------------------------------------------------------------------------------------------ */
/* Dense conv with few input channels (first layer): the pointwise GEMM on im2col rows: 4 output */
/* pixels' windows (x, x_zero in the padding) widened like the pointwise inputs, against the    */
/* channel pairs packed by ttk_pack_conv_q15 (already widened); the q2 layers run the pointwise */
/* 4-pixel group routine.                                                                       */

static void ttk_im2col_s8(const int8_t* x, int32_t h, int32_t w, int32_t c_in, int32_t k,
                          int32_t iy0, int32_t ix0, int8_t pad, int8_t* col) {
  const int32_t run = k * c_in;
  for (int32_t r = 0; r < k; ++r, col += run) {
    const int32_t iy = iy0 + r;
    if (iy < 0 || iy >= h) {
      for (int32_t i = 0; i < run; ++i) col[i] = pad;
      continue;
    }
    const int8_t* xr = x + (iy * w) * c_in;
    if (ix0 >= 0 && ix0 + k <= w) { /* the whole row of the window inside: word copies */
      const int8_t* src = xr + ix0 * c_in;
      int32_t i = 0;
      for (; i + 4 <= run; i += 4) {
        const uint32_t v = ttk_ld32(src + i);
        __builtin_memcpy(col + i, &v, 4); /* one STR */
      }
      for (; i < run; ++i) col[i] = src[i];
      continue;
    }
    for (int32_t t = 0; t < k; ++t) {
      const int32_t ix = ix0 + t;
      for (int32_t i = 0; i < c_in; ++i)
        col[t * c_in + i] = (ix < 0 || ix >= w) ? pad : xr[ix * c_in + i];
    }
  }
}

/* n bytes from s to d (any alignment): word copies (LDR/STR, unaligned allowed on the M4/M7). */
TTK_INLINE void ttk_copy_run(int8_t* d, const int8_t* s, int32_t n) {
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint32_t v = ttk_ld32(s + i);
    __builtin_memcpy(d + i, &v, 4);
  }
  for (; i < n; ++i) d[i] = s[i];
}

#define TTK_CONV_PAIRS 8 /* channel pairs per block (epilogue records on the stack): 16 channels, the first convs of the paper models in one block */
/* Inlined twice, for pad = (K-1)/2 and for pad = 0 (no window reaches outside the input). */
TTK_INLINE void ttk_conv_s8_body(const int8_t* x, int32_t h, int32_t w, int32_t c_in,
                                 const int16_t* w_packed, int32_t k, int32_t stride, int32_t pad,
                                 const int32_t* bias, int32_t c_out, const ttk_quant_t* q,
                                 int8_t* y) {
  const int32_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  const int32_t kk = k * k * c_in, k4 = ttk_k4(kk), quads = k4 / 4;
  const int32_t n_out = oh * ow, pairs = (c_out + 1) / 2;
  const int32_t yz = q->y_zero, lo = q->act_min, hi = q->act_max;
  const int full = lo == -128 && hi == 127; /* no fused activation range: one SSAT */
  const int q2 = ttk_layer_q2(q, bias, c_out, (int64_t)kk * TTK_MAX_PROD);
  const int32_t run = k * c_in; /* one window row */
  int8_t col[4][TTK_CONV_MAX_K];
  for (int32_t i = 0; i < 4; ++i)
    for (int32_t t = kk; t < k4; ++t) col[i][t] = (int8_t)q->x_zero;
  int32_t xs[2 * TTK_CONV_MAX_K];
  int32_t rec[TTK_CONV_PAIRS * TTK_Q2R_WORDS]; /* the q2 records (TTK_Q2R_*) */
  ttk_rq_t rqs[2 * TTK_CONV_PAIRS];       /* otherwise */
  for (int32_t j0 = 0; j0 < pairs; j0 += TTK_CONV_PAIRS) {
    const int32_t jn = pairs - j0 < TTK_CONV_PAIRS ? pairs - j0 : TTK_CONV_PAIRS;
    const int32_t c0 = 2 * j0;
    const int32_t nfull = c0 + 2 * jn > c_out ? jn - 1 : jn; /* pairs with both channels */
    for (int32_t i = 0; i < 2 * jn; ++i) {
      const int32_t c = c0 + i;
      int32_t* r = rec + (i / 2) * TTK_Q2R_WORDS + (i & 1);
      /* the weights are doubled: the q2 accumulators start at 2 bias (|bias| < 2^30), the
       * others at 0, halved before the bias is added */
      const int32_t b = (bias != NULL && c < c_out) ? bias[c] : 0;
      r[0] = r[2] = r[4] = r[6] = q2 ? 2 * b : b;
      const ttk_q2_t r2 = q2 && c < c_out ? ttk_q2_make(q->mult[c], q->shift[c], yz) : (ttk_q2_t){0, 0, 0};
      r[TTK_Q2R_M] = r2.m;
      r[TTK_Q2R_K] = r2.kc;
      r[TTK_Q2R_E] = r2.e;
      rqs[i] = c < c_out ? ttk_rq_make(q->mult[c], q->shift[c]) : ttk_rq_make(0, 0);
    }
    const int32_t* wblk = (const int32_t*)(const void*)w_packed + j0 * k4;
    int32_t oy = 0, ox = 0; /* output pixel p */
    for (int32_t p = 0; p < n_out; p += 4) {
      const int32_t np = n_out - p < 4 ? n_out - p : 4;
      const int8_t* rows[4] = {NULL, NULL, NULL, NULL};
      const int32_t iy0 = oy * stride - pad, ix0 = ox * stride - pad;
      if (np == 4 && ox + 3 < ow && (pad == 0 || (iy0 >= 0 && iy0 + k <= h && ix0 >= 0 &&
                                                  ix0 + 3 * stride + k <= w))) {
        /* 4 windows on one output row, all inside the input: row copies, no bounds checks */
        const int8_t* src = x + (iy0 * w + ix0) * c_in;
        const int32_t step = stride * c_in, wrow = w * c_in;
        if (run == 9) { /* 3x3 x 3 channels, the networks' first conv: 2 words + 1 byte a row */
          for (int32_t i = 0; i < 4; ++i, src += step) {
            ttk_copy_run(col[i], src, 9);
            ttk_copy_run(col[i] + 9, src + wrow, 9);
            ttk_copy_run(col[i] + 18, src + 2 * wrow, 9);
          }
        } else {
          for (int32_t i = 0; i < 4; ++i, src += step)
            for (int32_t r = 0; r < k; ++r) ttk_copy_run(col[i] + r * run, src + r * wrow, run);
        }
        rows[0] = col[0], rows[1] = col[1], rows[2] = col[2], rows[3] = col[3];
      } else {
        for (int32_t i = 0, yy = oy, xx = ox; i < np; ++i) {
          const int32_t iy = yy * stride - pad, ix = xx * stride - pad;
          if (ix >= 0 && ix + k <= w) { /* columns inside: per window row a copy or x_zero */
            for (int32_t r = 0; r < k; ++r) {
              if (iy + r >= 0 && iy + r < h) {
                ttk_copy_run(col[i] + r * run, x + ((iy + r) * w + ix) * c_in, run);
              } else {
                for (int32_t t = 0; t < run; ++t) col[i][r * run + t] = (int8_t)q->x_zero;
              }
            }
          } else {
            ttk_im2col_s8(x, h, w, c_in, k, iy, ix, (int8_t)q->x_zero, col[i]);
          }
          rows[i] = col[i];
          if (++xx == ow) xx = 0, ++yy;
        }
      }
      ox += 4;
      while (ox >= ow) ox -= ow, ++oy;
      /* the columns kk..k4 of col hold x_zero: whole quads, no tail */
      if (np == 4) ttk_widen_rows4(col[0], TTK_CONV_MAX_K, k4, q->x_zero, xs);
      else ttk_widen_rows(rows, 4, k4, q->x_zero, xs);
      int8_t* y0 = y + p * c_out + c0;
      int32_t j = 0;
      if (q2 && np == 4) {
        ttk_pw_q2_px4(xs, wblk, rec, nfull, quads, TTK_Q2R_WORDS, y0, c_out);
        j = nfull;
      }
      for (; j < jn; ++j) { /* pixel tail, the last single channel, or the general epilogue */
        const int32_t* rj = rec + TTK_Q2R_WORDS * j;
        const int32_t b0 = q2 ? rj[0] : 0, b1 = q2 ? rj[1] : 0;
        int32_t s[8] = {b0, b1, b0, b1, b0, b1, b0, b1};
        ttk_dot_q15_4x2(xs, wblk + j * k4, quads, s);
        const int both = j < nfull;
        for (int32_t i = 0; i < np; ++i) {
          int8_t* yp = y0 + i * c_out + 2 * j;
          if (q2) {
            yp[0] = ttk_sat_s8(ttk_q2_apply2(s[2 * i], rj[TTK_Q2R_M], rj[TTK_Q2R_K], rj[TTK_Q2R_E]));
            if (both)
              yp[1] = ttk_sat_s8(ttk_q2_apply2(s[2 * i + 1], rj[TTK_Q2R_M + 1], rj[TTK_Q2R_K + 1],
                                               rj[TTK_Q2R_E + 1]));
          } else { /* 2 dot (even, |dot| < 2^21) halved, then + bias (wrapping, like SMLAD) */
            yp[0] = TTK_OUT((int32_t)((uint32_t)(s[2 * i] >> 1) + (uint32_t)rj[0]), rqs[2 * j]);
            if (both)
              yp[1] = TTK_OUT((int32_t)((uint32_t)(s[2 * i + 1] >> 1) + (uint32_t)rj[1]), rqs[2 * j + 1]);
          }
        }
      }
    }
  }
}

int ttk_conv_s8(const int8_t* x, int32_t h, int32_t w, int32_t c_in, const int16_t* w_packed,
                int32_t k, int32_t stride, int32_t pad, const int32_t* bias, int32_t c_out,
                const ttk_quant_t* q, int8_t* y) {
  if (x == NULL || w_packed == NULL || y == NULL || h < 1 || w < 1 || c_in < 1 || c_out < 1 ||
      k < 1 || (k & 1) == 0 || stride < 1 || k * k * c_in > TTK_CONV_MAX_K || !ttk_quant_ok(q) ||
      (pad != 0 && pad != (k - 1) / 2) || h + 2 * pad < k || w + 2 * pad < k ||
      ((uintptr_t)w_packed & 3u) != 0u)
    return -1;
  if (pad == 0)
    ttk_conv_s8_body(x, h, w, c_in, w_packed, k, stride, 0, bias, c_out, q, y);
  else
    ttk_conv_s8_body(x, h, w, c_in, w_packed, k, stride, (k - 1) / 2, bias, c_out, q, y);
  return 0;
}
