/* fp32 backward kernels for the sparse update: input gradients of depthwise and pointwise
 * convs, weight gradients of a leading channel slice (from saved int8 activations), and the
 * 1-bit ReLU/ReLU6 mask. Register-blocked plain C (Cortex-M4F/M7 have no fp32 SIMD). */
#include "ttk/kernels.h"

/* a * b + c with one rounding: VFMA.F32 on the Cortex-M4F/M7 (ISO C mode does not contract
 * a separate multiply and add, which cost two instructions per MAC). */
#define TTK_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#define TTK_F32_INLINE static inline __attribute__((always_inline))

static int ttk_dwf_shape_ok(int32_t h, int32_t w, int32_t c, int32_t k, int32_t stride) {
  return h >= 1 && w >= 1 && c >= 1 && (k == 3 || k == 5 || k == 7) &&
         (stride == 1 || stride == 2);
}

#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__thumb2__) && !defined(TTK_PORTABLE)
#define TTK_F32_ASM 1 /* single-precision FPU, Thumb-2: the assembly blocks below */
#else
#define TTK_F32_ASM 0
#endif

#if TTK_F32_ASM
/* 8 channels of one input pixel over its n >= 1 taps: per tap the two offsets (LDR, post-
 * increment), VLDMIA of 8 gy and 8 w values, 8 VFMA into s0-s7 (16 instructions per 8 MACs; in
 * C each value is its own VLDR after an address ADD), then VSTMIA of the 8 sums to g. The same
 * FMA chains, in the same tap order, as the C loop's. */
TTK_F32_INLINE void ttk_dwgx_8ch(const float* gy, const float* wt, const int32_t* off_g,
                                 const int32_t* off_w, int32_t n, float* g) {
  __asm__ volatile(
      "movs   r0, #0\n\t"
      "vmov   s0, s1, r0, r0\n\t"
      "vmov   s2, s3, r0, r0\n\t"
      "vmov   s4, s5, r0, r0\n\t"
      "vmov   s6, s7, r0, r0\n"
      "1:\n\t"
      "ldr    r0, [%[og]], #4\n\t"
      "ldr    r1, [%[ow]], #4\n\t"
      "add    r0, %[gy], r0, lsl #2\n\t"
      "add    r1, %[wt], r1, lsl #2\n\t"
      "vldmia r0, {s16-s23}\n\t"
      "vldmia r1, {s24-s31}\n\t"
      "vfma.f32 s0, s16, s24\n\t"
      "vfma.f32 s1, s17, s25\n\t"
      "vfma.f32 s2, s18, s26\n\t"
      "vfma.f32 s3, s19, s27\n\t"
      "vfma.f32 s4, s20, s28\n\t"
      "vfma.f32 s5, s21, s29\n\t"
      "vfma.f32 s6, s22, s30\n\t"
      "vfma.f32 s7, s23, s31\n\t"
      "subs   %[n], %[n], #1\n\t"
      "bne    1b\n\t"
      "vstmia %[g], {s0-s7}\n\t"
      : [og] "+r"(off_g), [ow] "+r"(off_w), [n] "+r"(n)
      : [gy] "r"(gy), [wt] "r"(wt), [g] "r"(g)
      : "r0", "r1", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s16", "s17", "s18", "s19",
        "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31", "cc",
        "memory");
}
#endif

/* gx[iy][ix][c] = sum over taps (kh, kw) with iy = oy*s + kh - pad, ix = ox*s + kw - pad of
 * gy[oy][ox][c] * w[kh][kw][c]. Gathered per input pixel (no scatter, gx written once): the
 * pixel's valid taps are listed once, then 4 channels at a time accumulate in registers. */
int ttk_dwconv_grad_input_f32(const float* gy, int32_t h, int32_t w, int32_t c, const float* wt,
                              int32_t k, int32_t stride, float* gx) {
  if (gy == NULL || wt == NULL || gx == NULL || !ttk_dwf_shape_ok(h, w, c, k, stride)) return -1;
  const int32_t pad = (k - 1) / 2;
  const int32_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  int32_t off_g[49], off_w[49];
  for (int32_t iy = 0; iy < h; ++iy) {
    for (int32_t ix = 0; ix < w; ++ix) {
      int32_t n = 0;
      for (int32_t kh = 0; kh < k; ++kh) {
        const int32_t ty = iy + pad - kh; /* = oy * stride */
        if (ty < 0 || ty % stride != 0 || ty / stride >= oh) continue;
        for (int32_t kw = 0; kw < k; ++kw) {
          const int32_t tx = ix + pad - kw;
          if (tx < 0 || tx % stride != 0 || tx / stride >= ow) continue;
          off_g[n] = ((ty / stride) * ow + tx / stride) * c;
          off_w[n] = (kh * k + kw) * c;
          ++n;
        }
      }
      float* g = gx + (iy * w + ix) * c;
      int32_t ch = 0;
#if TTK_F32_ASM
      if (n > 0)
        for (; ch + 8 <= c; ch += 8) ttk_dwgx_8ch(gy + ch, wt + ch, off_g, off_w, n, g + ch);
#endif
      for (; ch + 4 <= c; ch += 4) {
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (int32_t j = 0; j < n; ++j) {
          const float* gp = gy + off_g[j] + ch;
          const float* wp = wt + off_w[j] + ch;
          a0 = TTK_FMA(gp[0], wp[0], a0);
          a1 = TTK_FMA(gp[1], wp[1], a1);
          a2 = TTK_FMA(gp[2], wp[2], a2);
          a3 = TTK_FMA(gp[3], wp[3], a3);
        }
        g[ch] = a0;
        g[ch + 1] = a1;
        g[ch + 2] = a2;
        g[ch + 3] = a3;
      }
      for (; ch < c; ++ch) {
        float a = 0.0f;
        for (int32_t j = 0; j < n; ++j) a = TTK_FMA(gy[off_g[j] + ch], wt[off_w[j] + ch], a);
        g[ch] = a;
      }
    }
  }
  return 0;
}


#if TTK_F32_ASM
/* The 4x4 blocks' shared assembly text: s0-s15 zeroed from a zero core register, and 16 VFMA
 * adding row operand r (one of 4 s registers) times column operand c into s(4 r + c). */
#define TTK_VZERO16(z)                                                                \
  "vmov   s0, s1, " z ", " z "\n\t" "vmov   s2, s3, " z ", " z "\n\t"               \
  "vmov   s4, s5, " z ", " z "\n\t" "vmov   s6, s7, " z ", " z "\n\t"               \
  "vmov   s8, s9, " z ", " z "\n\t" "vmov   s10, s11, " z ", " z "\n\t"             \
  "vmov   s12, s13, " z ", " z "\n\t" "vmov   s14, s15, " z ", " z "\n\t"
#define TTK_VFMA_ROW(a0, a1, a2, a3, r, c0, c1, c2, c3)                              \
  "vfma.f32 " a0 ", " r ", " c0 "\n\t" "vfma.f32 " a1 ", " r ", " c1 "\n\t"          \
  "vfma.f32 " a2 ", " r ", " c2 "\n\t" "vfma.f32 " a3 ", " r ", " c3 "\n\t"
#define TTK_VFMA_4X4(r0, r1, r2, r3, c0, c1, c2, c3)                                 \
  TTK_VFMA_ROW("s0", "s1", "s2", "s3", r0, c0, c1, c2, c3)                           \
  TTK_VFMA_ROW("s4", "s5", "s6", "s7", r1, c0, c1, c2, c3)                           \
  TTK_VFMA_ROW("s8", "s9", "s10", "s11", r2, c0, c1, c2, c3)                         \
  TTK_VFMA_ROW("s12", "s13", "s14", "s15", r3, c0, c1, c2, c3)
#endif

#define TTK_GX_ROW(a, gv)                                                             \
  do {                                                                                \
    a##0 = TTK_FMA(gv, b0, a##0);                                                     \
    a##1 = TTK_FMA(gv, b1, a##1);                                                     \
    a##2 = TTK_FMA(gv, b2, a##2);                                                     \
    a##3 = TTK_FMA(gv, b3, a##3);                                                     \
  } while (0)

#if !TTK_F32_ASM
/* Full 4 x 4 block: 16 accumulators, 8 loads + 16 VFMA per o. */
static void ttk_gx_4x4(const float* gy, int32_t c_out, const float* wt, float* gx, int32_t c_in) {
  const float *g0 = gy, *g1 = gy + c_out, *g2 = gy + 2 * c_out, *g3 = gy + 3 * c_out;
  const float *w0 = wt, *w1 = wt + c_out, *w2 = wt + 2 * c_out, *w3 = wt + 3 * c_out;
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, b0_ = 0.0f, b1_ = 0.0f, b2_ = 0.0f;
  float b3_ = 0.0f, c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f, d0 = 0.0f, d1 = 0.0f;
  float d2 = 0.0f, d3 = 0.0f;
  for (int32_t o = 0; o < c_out; ++o) {
    const float b0 = w0[o], b1 = w1[o], b2 = w2[o], b3 = w3[o];
    const float x0 = g0[o], x1 = g1[o], x2 = g2[o], x3 = g3[o];
    TTK_GX_ROW(a, x0);
    b0_ = TTK_FMA(x1, b0, b0_);
    b1_ = TTK_FMA(x1, b1, b1_);
    b2_ = TTK_FMA(x1, b2, b2_);
    b3_ = TTK_FMA(x1, b3, b3_);
    TTK_GX_ROW(c, x2);
    TTK_GX_ROW(d, x3);
  }
  float* r = gx;
  r[0] = a0; r[1] = a1; r[2] = a2; r[3] = a3;
  r += c_in;
  r[0] = b0_; r[1] = b1_; r[2] = b2_; r[3] = b3_;
  r += c_in;
  r[0] = c0; r[1] = c1; r[2] = c2; r[3] = c3;
  r += c_in;
  r[0] = d0; r[1] = d1; r[2] = d2; r[3] = d3;
}
#endif

#if TTK_F32_ASM
/* The 4 x 4 blocks of 4 pixels in Armv7E-M assembly (GCC addresses each of the 8 streams with
 * an ADD before its VLDR: ~2.0 instructions per MAC in C): the 8 row pointers walk with VLDMIA
 * writeback, two values each per iteration (8 VLDMIA + 32 VFMA + SUBS + BNE = 42 instructions
 * per 32 MACs), an odd last o with one value each. Accumulator (r, c) is s(4r + c) (pixel r,
 * input channel c), the values s16-s23 (gy rows, 2 each) and s24-s31 (w rows); the sums are
 * the same FMA chains, in the same order, as ttk_gx_4x4's. r0-r3 gy rows, r4-r7 w rows, r8
 * the pair count, r9 c_out * 4, r10 the output, r11 c_in * 4, r12 gy row 0, lr blocks left.
 * After a block r7 has walked to the next block's w row 0. */
typedef struct {
  const float* gy; /* 4 rows of c_out */
  const float* wt; /* c_in rows of c_out, from the first block's row 0 */
  int32_t c_out;   /* >= 1 */
  int32_t blocks;  /* >= 1 blocks of 4 input channels */
  float* gx;       /* the first block's output: 4 rows of c_in */
  int32_t c_in;
} ttk_gx_args_t;

__asm__("  .text\n\t"
        "  .syntax unified\n\t"
        "  .thumb\n\t"
        "  .p2align 2\n\t"
        "  .global ttk_gx_px4_f32_fpu\n\t"
        "  .hidden ttk_gx_px4_f32_fpu\n\t"
        "  .type ttk_gx_px4_f32_fpu, %function\n\t"
        "  .thumb_func\nttk_gx_px4_f32_fpu:\n\t"
        "push   {r4-r11, lr}\n\t"
        "vpush  {s16-s31}\n\t"
        "ldr    r12, [r0]\n\t"
        "ldrd   r7, r9, [r0, #4]\n\t"
        "ldrd   lr, r10, [r0, #12]\n\t"
        "ldr    r11, [r0, #20]\n\t"
        "lsls   r9, r9, #2\n\t"
        "lsls   r11, r11, #2\n"
        "0:\n\t"
        "mov    r4, r7\n\t"
        "add    r5, r4, r9\n\t"
        "add    r6, r5, r9\n\t"
        "add    r7, r6, r9\n\t"
        "mov    r0, r12\n\t"
        "add    r1, r0, r9\n\t"
        "add    r2, r1, r9\n\t"
        "add    r3, r2, r9\n\t"
        "movs   r8, #0\n\t"
        TTK_VZERO16("r8")
        "lsrs   r8, r9, #3\n\t"
        "beq    2f\n"
        "1:\n\t"
        "vldmia r0!, {s16-s17}\n\t"
        "vldmia r1!, {s18-s19}\n\t"
        "vldmia r2!, {s20-s21}\n\t"
        "vldmia r3!, {s22-s23}\n\t"
        "vldmia r4!, {s24-s25}\n\t"
        "vldmia r5!, {s26-s27}\n\t"
        "vldmia r6!, {s28-s29}\n\t"
        "vldmia r7!, {s30-s31}\n\t"
        TTK_VFMA_4X4("s16", "s18", "s20", "s22", "s24", "s26", "s28", "s30")
        TTK_VFMA_4X4("s17", "s19", "s21", "s23", "s25", "s27", "s29", "s31")
        "subs   r8, r8, #1\n\t"
        "bne    1b\n"
        "2:\n\t"
        "tst    r9, #4\n\t"
        "beq    3f\n\t"
        "vldmia r0!, {s16}\n\t"
        "vldmia r1!, {s18}\n\t"
        "vldmia r2!, {s20}\n\t"
        "vldmia r3!, {s22}\n\t"
        "vldmia r4!, {s24}\n\t"
        "vldmia r5!, {s26}\n\t"
        "vldmia r6!, {s28}\n\t"
        "vldmia r7!, {s30}\n\t"
        TTK_VFMA_4X4("s16", "s18", "s20", "s22", "s24", "s26", "s28", "s30")
        "\n3:\n\t"
        "vstm   r10, {s0-s3}\n\t"
        "add    r0, r10, r11\n\t"
        "vstm   r0, {s4-s7}\n\t"
        "add    r0, r0, r11\n\t"
        "vstm   r0, {s8-s11}\n\t"
        "add    r0, r0, r11\n\t"
        "vstm   r0, {s12-s15}\n\t"
        "adds   r10, r10, #16\n\t"
        "subs   lr, lr, #1\n\t"
        "bne    0b\n\t"
        "vpop   {s16-s31}\n\t"
        "pop    {r4-r11, pc}\n\t"
        "  .size ttk_gx_px4_f32_fpu, .-ttk_gx_px4_f32_fpu\n\t");
void ttk_gx_px4_f32_fpu(const ttk_gx_args_t* a);
#endif

int ttk_conv1x1_grad_input_f32(const float* gy, int32_t pixels, int32_t c_out, const float* wt,
                               int32_t c_in, float* gx) {
  if (gy == NULL || wt == NULL || gx == NULL || pixels < 1 || c_out < 1 || c_in < 1) return -1;
  const int32_t p4 = pixels & ~3, i4 = c_in & ~3;
  for (int32_t p = 0; p < p4; p += 4) {
#if TTK_F32_ASM
    if (i4 > 0) {
      const ttk_gx_args_t a = {gy + p * c_out, wt, c_out, i4 / 4, gx + p * c_in, c_in};
      ttk_gx_px4_f32_fpu(&a);
    }
#else
    for (int32_t i = 0; i < i4; i += 4)
      ttk_gx_4x4(gy + p * c_out, c_out, wt + i * c_out, gx + p * c_in + i, c_in);
#endif
  }
  /* tails: the last pixels (all channels) and the last channels (the first p4 pixels) */
  for (int32_t p = 0; p < pixels; ++p) {
    for (int32_t i = p < p4 ? i4 : 0; i < c_in; ++i) {
      const float* g0 = gy + p * c_out;
      const float* w0 = wt + i * c_out;
      float acc = 0.0f;
      for (int32_t o = 0; o < c_out; ++o) acc = TTK_FMA(g0[o], w0[o], acc);
      gx[p * c_in + i] = acc;
    }
  }
  return 0;
}

/* gw[i][o] = x_scale * sum_p (x[p][i] - x_zero) * gy[p][o] for o < n_out: dot products over
 * the pixels, 4 input x 4 output channels per register block (each x converted once per
 * block row), the scale applied once at the end. `sums` gets the 16 unscaled sums, row r
 * (input channel i + r) at sums[4 r]. */
#if TTK_F32_ASM
/* In Armv7E-M assembly (~2.9 instructions per MAC in C): per pixel one LDR of the 4 int8
 * inputs, SXTAB (-x_zero + the sign-extended byte, ROR 0/8/16/24) for each, 2 VMOV of pairs
 * to s16-s19, 4 VCVT, one VLDM of gy's 4 values (s20-s23), 16 VFMA into s0-s15 (s(4 r + o)),
 * 2 pointer ADDs, SUBS + BNE: 32 instructions per 16 MACs; the same FMA chains, in the same
 * order, as the C loop. r0 x, r1 gy, r5 c_in, r7 c_out * 4, r8 pixels left, r9 -x_zero, r12
 * the sums. */
typedef struct {
  const int8_t* x; /* the block's first input channel of pixel 0 */
  int32_t c_in;    /* bytes between pixels of x */
  const float* gy; /* the block's first output column of pixel 0 */
  int32_t c_out;   /* floats between pixels of gy */
  int32_t pixels;  /* >= 1 */
  int32_t x_zero;
  float* sums;     /* 16 floats */
} ttk_gw_args_t;

__asm__("  .text\n\t"
        "  .syntax unified\n\t"
        "  .thumb\n\t"
        "  .p2align 2\n\t"
        "  .global ttk_gw_4x4_f32_fpu\n\t"
        "  .hidden ttk_gw_4x4_f32_fpu\n\t"
        "  .type ttk_gw_4x4_f32_fpu, %function\n\t"
        "  .thumb_func\nttk_gw_4x4_f32_fpu:\n\t"
        "push   {r4-r9, lr}\n\t"
        "vpush  {s16-s23}\n\t"
        "ldm    r0, {r4-r9, r12}\n\t"
        "mov    r0, r4\n\t"
        "mov    r1, r6\n\t"
        "lsls   r7, r7, #2\n\t"
        "negs   r9, r9\n\t"
        "movs   r3, #0\n\t"
        TTK_VZERO16("r3")
        "\n1:\n\t"
        "ldr    r3, [r0]\n\t"
        "add    r0, r0, r5\n\t"
        "vldm   r1, {s20-s23}\n\t"
        "add    r1, r1, r7\n\t"
        "sxtab  r4, r9, r3\n\t"
        "sxtab  r6, r9, r3, ror #8\n\t"
        "vmov   s16, s17, r4, r6\n\t"
        "sxtab  r4, r9, r3, ror #16\n\t"
        "sxtab  r6, r9, r3, ror #24\n\t"
        "vmov   s18, s19, r4, r6\n\t"
        "vcvt.f32.s32 s16, s16\n\t"
        "vcvt.f32.s32 s17, s17\n\t"
        "vcvt.f32.s32 s18, s18\n\t"
        "vcvt.f32.s32 s19, s19\n\t"
        TTK_VFMA_4X4("s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23")
        "subs   r8, r8, #1\n\t"
        "bne    1b\n\t"
        "vstm   r12, {s0-s15}\n\t"
        "vpop   {s16-s23}\n\t"
        "pop    {r4-r9, pc}\n\t"
        "  .size ttk_gw_4x4_f32_fpu, .-ttk_gw_4x4_f32_fpu\n\t");
void ttk_gw_4x4_f32_fpu(const ttk_gw_args_t* a);

/* The 2 x 8 blocks (2 input channels x 8 output columns; the 4 x 4 blocks convert 4 x values
 * for 16 MACs, these 2 for 16): per pixel LDRH of the 2 x values, 2 SXTAB (- x_zero), VMOV,
 * 2 VCVT, VLDMIA of 8 gy values, 16 VFMA, the two pointer ADDs, SUBS, BNE: 27 instructions per
 * 16 MACs (33 in the 4 x 4 blocks). Accumulator (r, c) is s(8r + c); the same FMA chains (one
 * per weight, over the pixels in order) as every other block's. */
__asm__("  .text\n\t"
        "  .syntax unified\n\t"
        "  .thumb\n\t"
        "  .p2align 2\n\t"
        "  .global ttk_gw_2x8_f32_fpu\n\t"
        "  .hidden ttk_gw_2x8_f32_fpu\n\t"
        "  .type ttk_gw_2x8_f32_fpu, %function\n\t"
        "  .thumb_func\nttk_gw_2x8_f32_fpu:\n\t"
        "push   {r4-r9, lr}\n\t"
        "vpush  {s16-s25}\n\t"
        "ldm    r0, {r4-r9, r12}\n\t"
        "lsls   r7, r7, #2\n\t"
        "negs   r9, r9\n\t"
        "movs   r3, #0\n\t"
        TTK_VZERO16("r3")
        "\n1:\n\t"
        "ldrh   r3, [r4]\n\t"
        "add    r4, r4, r5\n\t"
        "vldm   r6, {s18-s25}\n\t"
        "add    r6, r6, r7\n\t"
        "sxtab  r0, r9, r3\n\t"
        "sxtab  r1, r9, r3, ror #8\n\t"
        "vmov   s16, s17, r0, r1\n\t"
        "vcvt.f32.s32 s16, s16\n\t"
        "vcvt.f32.s32 s17, s17\n\t"
        TTK_VFMA_ROW("s0", "s1", "s2", "s3", "s16", "s18", "s19", "s20", "s21")
        TTK_VFMA_ROW("s4", "s5", "s6", "s7", "s16", "s22", "s23", "s24", "s25")
        TTK_VFMA_ROW("s8", "s9", "s10", "s11", "s17", "s18", "s19", "s20", "s21")
        TTK_VFMA_ROW("s12", "s13", "s14", "s15", "s17", "s22", "s23", "s24", "s25")
        "subs   r8, r8, #1\n\t"
        "bne    1b\n\t"
        "vstm   r12, {s0-s15}\n\t"
        "vpop   {s16-s25}\n\t"
        "pop    {r4-r9, pc}\n\t"
        "  .size ttk_gw_2x8_f32_fpu, .-ttk_gw_2x8_f32_fpu\n\t");
void ttk_gw_2x8_f32_fpu(const ttk_gw_args_t* a);

static void ttk_gw_2x8(const int8_t* x, int32_t x_zero, int32_t pixels, int32_t c_in,
                       const float* gy, int32_t c_out, float x_scale, float* gw, int32_t ldw) {
  float sums[16];
  const ttk_gw_args_t a = {x, c_in, gy, c_out, pixels, x_zero, sums};
  ttk_gw_2x8_f32_fpu(&a);
  for (int32_t r = 0; r < 2; ++r)
    for (int32_t o = 0; o < 8; ++o) gw[r * ldw + o] = sums[8 * r + o] * x_scale;
}

static void ttk_gw_4x4_sums(const int8_t* x, int32_t x_zero, int32_t pixels, int32_t c_in,
                            const float* gy, int32_t c_out, float* sums) {
  const ttk_gw_args_t a = {x, c_in, gy, c_out, pixels, x_zero, sums};
  ttk_gw_4x4_f32_fpu(&a);
}
#else
static void ttk_gw_4x4_sums(const int8_t* x, int32_t x_zero, int32_t pixels, int32_t c_in,
                            const float* gy, int32_t c_out, float* sums) {
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, b0_ = 0.0f, b1_ = 0.0f, b2_ = 0.0f;
  float b3_ = 0.0f, c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f, d0 = 0.0f, d1 = 0.0f;
  float d2 = 0.0f, d3 = 0.0f;
  for (int32_t p = 0; p < pixels; ++p, x += c_in, gy += c_out) {
    const float b0 = gy[0], b1 = gy[1], b2 = gy[2], b3 = gy[3];
    const float x0 = (float)(x[0] - x_zero), x1 = (float)(x[1] - x_zero);
    const float x2 = (float)(x[2] - x_zero), x3 = (float)(x[3] - x_zero);
    TTK_GX_ROW(a, x0);
    b0_ = TTK_FMA(x1, b0, b0_);
    b1_ = TTK_FMA(x1, b1, b1_);
    b2_ = TTK_FMA(x1, b2, b2_);
    b3_ = TTK_FMA(x1, b3, b3_);
    TTK_GX_ROW(c, x2);
    TTK_GX_ROW(d, x3);
  }
  const float out[16] = {a0, a1, a2, a3, b0_, b1_, b2_, b3_, c0, c1, c2, c3, d0, d1, d2, d3};
  for (int32_t j = 0; j < 16; ++j) sums[j] = out[j];
}
#endif

static void ttk_gw_4x4(const int8_t* x, int32_t x_zero, int32_t pixels, int32_t c_in,
                       const float* gy, int32_t c_out, float x_scale, float* gw, int32_t ldw,
                       int32_t no) {
  float sums[16];
  ttk_gw_4x4_sums(x, x_zero, pixels, c_in, gy, c_out, sums);
  for (int32_t r = 0; r < 4; ++r)
    for (int32_t o = 0; o < no; ++o) gw[r * ldw + o] = sums[4 * r + o] * x_scale;
}

int ttk_conv1x1_grad_weight_f32(const int8_t* x, int32_t x_zero, float x_scale, int32_t pixels,
                                int32_t c_in, const float* gy, int32_t c_out, int32_t n_out,
                                float* gw, int32_t ldw) {
  if (x == NULL || gy == NULL || gw == NULL || pixels < 1 || c_in < 1 || c_out < 1 ||
      n_out < 0 || n_out > c_out || ldw < n_out)
    return -1;
  /* Cortex-M4F/M7: 2 x 8 blocks over rows [0, i2) and columns [0, o8) first; then 4x4 blocks
   * wherever 4 columns of gy exist (only the first n_out are stored) */
#if TTK_F32_ASM
  const int32_t i2 = c_in & ~1, o8 = n_out & ~7;
  for (int32_t i = 0; i < i2; i += 2)
    for (int32_t o = 0; o < o8; o += 8)
      ttk_gw_2x8(x + i, x_zero, pixels, c_in, gy + o, c_out, x_scale, gw + i * ldw + o, ldw);
#else
  const int32_t i2 = 0, o8 = 0;
#endif
  const int32_t i4 = c_in & ~3;
  int32_t ob = o8; /* columns done by blocks */
  while (ob < n_out && ob + 4 <= c_out) ob += 4;
  if (ob > n_out) ob = n_out;
  for (int32_t i = 0; i < i4; i += 4)
    for (int32_t o = o8; o < ob; o += 4)
      ttk_gw_4x4(x + i, x_zero, pixels, c_in, gy + o, c_out, x_scale, gw + i * ldw + o, ldw,
                 ob - o < 4 ? ob - o : 4);
  for (int32_t i = 0; i < c_in; ++i) {
    for (int32_t o = i < i4 ? ob : i < i2 ? o8 : 0; o < n_out; ++o) {
      float acc = 0.0f;
      for (int32_t p = 0; p < pixels; ++p)
        acc = TTK_FMA((float)(x[p * c_in + i] - x_zero), gy[p * c_out + o], acc);
      gw[i * ldw + o] = acc * x_scale;
    }
  }
  return 0;
}

int ttk_dwconv_grad_weight_f32(const int8_t* x, int32_t x_zero, float x_scale, int32_t h,
                               int32_t w, int32_t c, const float* gy, int32_t c_g, int32_t k,
                               int32_t stride, int32_t n_ch, float* gw, int32_t ldw) {
  if (x == NULL || gy == NULL || gw == NULL || !ttk_dwf_shape_ok(h, w, c, k, stride) ||
      n_ch < 0 || n_ch > c || n_ch > c_g || ldw < n_ch)
    return -1;
  const int32_t pad = (k - 1) / 2;
  const int32_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  for (int32_t t = 0; t < k * k; ++t)
    for (int32_t ch = 0; ch < n_ch; ++ch) gw[t * ldw + ch] = 0.0f;
  for (int32_t oy = 0; oy < oh; ++oy) {
    for (int32_t ox = 0; ox < ow; ++ox) {
      const float* g = gy + (oy * ow + ox) * c_g;
      for (int32_t kh = 0; kh < k; ++kh) {
        const int32_t iy = oy * stride + kh - pad;
        if (iy < 0 || iy >= h) continue;
        for (int32_t kw = 0; kw < k; ++kw) {
          const int32_t ix = ox * stride + kw - pad;
          if (ix < 0 || ix >= w) continue;
          const int8_t* xp = x + (iy * w + ix) * c;
          float* r = gw + (kh * k + kw) * ldw;
          for (int32_t ch = 0; ch < n_ch; ++ch)
            r[ch] = TTK_FMA((float)(xp[ch] - x_zero) * x_scale, g[ch], r[ch]);
        }
      }
    }
  }
  return 0;
}

void ttk_mask_from_s8(const int8_t* y, int32_t n, int32_t act_min, int32_t act_max,
                      uint8_t* mask) {
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint32_t m = 0;
    for (int32_t b = 0; b < 8; ++b) m |= (uint32_t)(y[i + b] > act_min && y[i + b] < act_max) << b;
    mask[i >> 3] = (uint8_t)m;
  }
  if (i < n) {
    uint32_t m = 0;
    for (int32_t b = 0; i + b < n; ++b) m |= (uint32_t)(y[i + b] > act_min && y[i + b] < act_max) << b;
    mask[i >> 3] = (uint8_t)m;
  }
}

void ttk_mask_apply_f32(float* g, int32_t n, const uint8_t* mask) {
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint32_t m = mask[i >> 3];
    if (m == 0xFFu) continue;
    for (int32_t b = 0; b < 8; ++b)
      if (!((m >> b) & 1u)) g[i + b] = 0.0f;
  }
  for (; i < n; ++i)
    if (!((mask[i >> 3] >> (i & 7)) & 1u)) g[i] = 0.0f;
}
