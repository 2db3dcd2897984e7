/* The few Armv7E-M DSP operations the int8 kernels use, as ACLE intrinsics on Cortex-M with the
 * DSP extension and as plain C with the same semantics elsewhere (host unit tests).
 * Internal header of runtime/kernels. */
#ifndef TTK_SIMD_H_
#define TTK_SIMD_H_

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TTK_PORTABLE)
#include <arm_acle.h>
#define TTK_HAVE_DSP 1
#else
#define TTK_HAVE_DSP 0
#endif

#define TTK_INLINE static inline __attribute__((always_inline))

/** Rotate right by 8 (folds into SXTB16's ROR operand). */
TTK_INLINE uint32_t ttk_ror8(uint32_t v) { return (v >> 8) | (v << 24); }

/** Unaligned-safe 32-bit / 16-bit loads (one LDR/LDRH on Cortex-M3+, which allows unaligned). */
TTK_INLINE uint32_t ttk_ld32(const void* p) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4); /* a builtin even under -ffreestanding (firmware flags) */
  return v;
}

#if TTK_HAVE_DSP
/* Bytes 0 and 2 sign-extended to two 16-bit lanes. */
TTK_INLINE int32_t ttk_sxtb16(uint32_t v) { return __sxtb16((int32_t)v); }
/* Lane-wise a + sign-extended bytes 0 and 2 of v (16-bit lanes, wrapping). */
TTK_INLINE int32_t ttk_sxtab16(int32_t a, uint32_t v) { return __sxtab16(a, (int32_t)v); }
/* acc + a.lo*b.lo + a.hi*b.hi (16x16 signed). */
TTK_INLINE int32_t ttk_smlad(int32_t a, int32_t b, int32_t acc) { return __smlad(a, b, acc); }
TTK_INLINE int32_t ttk_smlabb(int32_t a, int32_t b, int32_t acc) { return __smlabb(a, b, acc); }
/* SXTB16 / SXTAB16 with their ROR #8 operand (bytes 1 and 3). GCC 12 does not fold a rotate
 * into the intrinsic's operand, so these two are inline asm (no side effects, schedulable). */
TTK_INLINE int32_t ttk_sxtb16_ror8(uint32_t v) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}
TTK_INLINE int32_t ttk_sxtab16_ror8(int32_t a, uint32_t v) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
  return r;
}
TTK_INLINE int32_t ttk_smlatt(int32_t a, int32_t b, int32_t acc) { return __smlatt(a, b, acc); }
TTK_INLINE int32_t ttk_smlabt(int32_t a, int32_t b, int32_t acc) { return __smlabt(a, b, acc); }
TTK_INLINE int32_t ttk_smlatb(int32_t a, int32_t b, int32_t acc) { return __smlatb(a, b, acc); }
/* Both 16-bit lanes doubled (SADD16; the q2 kernels' weights, |2 w| <= 256). */
TTK_INLINE int32_t ttk_dbl16(int32_t v) { return __sadd16(v, v); }
#else
TTK_INLINE int32_t ttk_lane(int32_t v, int hi) { return (int16_t)(uint16_t)((uint32_t)v >> (hi ? 16 : 0)); }
TTK_INLINE int32_t ttk_pack16(int32_t lo, int32_t hi) {
  return (int32_t)(((uint32_t)(uint16_t)lo) | ((uint32_t)(uint16_t)hi << 16));
}
TTK_INLINE int32_t ttk_sxtb16(uint32_t v) {
  return ttk_pack16((int8_t)(uint8_t)v, (int8_t)(uint8_t)(v >> 16));
}
TTK_INLINE int32_t ttk_sxtab16(int32_t a, uint32_t v) {
  return ttk_pack16(ttk_lane(a, 0) + (int8_t)(uint8_t)v, ttk_lane(a, 1) + (int8_t)(uint8_t)(v >> 16));
}
/* SMLAD's accumulation wraps modulo 2^32 (it only sets the Q flag); so does this. */
TTK_INLINE int32_t ttk_sxtb16_ror8(uint32_t v) { return ttk_sxtb16(ttk_ror8(v)); }
TTK_INLINE int32_t ttk_sxtab16_ror8(int32_t a, uint32_t v) { return ttk_sxtab16(a, ttk_ror8(v)); }
TTK_INLINE int32_t ttk_smlad(int32_t a, int32_t b, int32_t acc) {
  uint32_t r = (uint32_t)acc + (uint32_t)(ttk_lane(a, 0) * ttk_lane(b, 0)) +
               (uint32_t)(ttk_lane(a, 1) * ttk_lane(b, 1));
  return (int32_t)r;
}
TTK_INLINE int32_t ttk_smlabb(int32_t a, int32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(ttk_lane(a, 0) * ttk_lane(b, 0)));
}
TTK_INLINE int32_t ttk_smlatt(int32_t a, int32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(ttk_lane(a, 1) * ttk_lane(b, 1)));
}
TTK_INLINE int32_t ttk_smlabt(int32_t a, int32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(ttk_lane(a, 0) * ttk_lane(b, 1)));
}
TTK_INLINE int32_t ttk_smlatb(int32_t a, int32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(ttk_lane(a, 1) * ttk_lane(b, 0)));
}
TTK_INLINE int32_t ttk_dbl16(int32_t v) { return ttk_pack16(2 * ttk_lane(v, 0), 2 * ttk_lane(v, 1)); }
#endif

/* Halfword packing (PKHBT / PKHTB; GCC emits them for these expressions):
 * (lo of a, lo of b) and (hi of a, hi of b). */
#if TTK_HAVE_DSP
TTK_INLINE uint32_t ttk_pk_lo(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
TTK_INLINE uint32_t ttk_pk_hi(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
#else
TTK_INLINE uint32_t ttk_pk_lo(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
TTK_INLINE uint32_t ttk_pk_hi(uint32_t a, uint32_t b) { return (a >> 16) | (b & 0xFFFF0000u); }
#endif

/** Unaligned-safe 32-bit store (one STR). */
TTK_INLINE void ttk_st32(void* p, uint32_t v) { __builtin_memcpy(p, &v, 4); }

/** -z in both 16-bit lanes: sxtab16(ttk_offset2(z), x) = (x0 - z, x2 - z). */
TTK_INLINE int32_t ttk_offset2(int32_t z) {
  uint32_t m = (uint32_t)(uint16_t)(int16_t)(-z);
  return (int32_t)(m | (m << 16));
}

/* Requantization (TFLite MultiplyByQuantizedMultiplier, gemmlowp rounding), branch-free.
 *
 * SRDHM(a, m) = trunc_toward_zero((a*m + nudge) / 2^31), nudge = 2^30 or 1 - 2^30 by sign.
 * For a*m < 0 that truncation is the ceiling of (a*m + 1 - 2^30)/2^31, which equals
 * floor((a*m + 2^30) / 2^31); for a*m >= 0 it is the same floor. So SRDHM = (a*m + 2^30) >> 31
 * (arithmetic). Saturation only happens for a = m = INT32_MIN, impossible with m >= 0.
 * RDBPOT(x, e) rounds half away from zero (see ttk_rq_apply). */
TTK_INLINE int32_t ttk_srdhm(int32_t a, int32_t m) {
  int64_t ab = (int64_t)a * (int64_t)m + (int64_t)(1 << 30);
  return (int32_t)(ab >> 31);
}

/* One output channel's requantization, precomputed once per channel (loop-invariant). The
 * fast form's fields come first (two LDRDs); 4-byte alignment suffices (no 64-bit member). */
typedef struct {
  int32_t mult;
  int32_t rsh;    /* right - 1 (fast form) */
  uint32_t k0_lo; /* k0 = 2^30 + 2^(30 + right) (fast form), low and high words */
  int32_t k0_hi;
  int32_t left;   /* max(shift, 0) */
  int32_t right;  /* max(-shift, 0) */
  uint32_t mask;  /* 2^right - 1 */
  uint32_t thr;   /* mask >> 1 */
  int32_t fast;   /* right >= 1 and 2^30 < mult < 2^31: the one-rounding form below applies */
} ttk_rq_t;

TTK_INLINE ttk_rq_t ttk_rq_make(int32_t mult, int32_t shift) {
  ttk_rq_t r;
  r.mult = mult;
  r.left = shift > 0 ? shift : 0;
  r.right = shift > 0 ? 0 : -shift;
  r.mask = (1u << r.right) - 1u;
  r.thr = r.mask >> 1;
  r.fast = r.right >= 1 && mult > (1 << 30);
  r.rsh = r.right >= 1 ? r.right - 1 : 0;
  const uint64_t k0 = ((uint64_t)1 << 30) + ((uint64_t)1 << (30 + r.right));
  r.k0_lo = (uint32_t)k0;
  r.k0_hi = (int32_t)(uint32_t)(k0 >> 32);
  return r;
}

/* Exact requantization.
 * General form: SRDHM, then gemmlowp's RDBPOT in its threshold form (exact for right = 0):
 *   (x >> e) + ((x & mask) > (mask >> 1) + (x < 0)).
 * Fast form (right = e >= 1, 2^30 < mult < 2^31, so no left shift): with u = a*m + 2^30 and
 * t = floor(u / 2^31) = SRDHM, RDBPOT(t, e) = floor((t + 2^(e-1) - [t<0]) / 2^e), and nesting
 * the floors gives floor((a*m + 2^30 + 2^(30+e) - [u<0] 2^31) / 2^(31+e)): one SMLAL into the
 * preset k0, then the high word shifted by e - 1. [u<0] = [a<0] because mult > 2^30 (a = -1
 * gives u = 2^30 - mult < 0; a >= 0 gives u > 0); subtracting 2^31 from the 64-bit sum only
 * changes the high word when the low word's bit 31 is clear (a borrow). */
TTK_INLINE int32_t ttk_rq_apply_fast(int32_t acc, const ttk_rq_t* r) {
  const int64_t k0 = (int64_t)(((uint64_t)(uint32_t)r->k0_hi << 32) | r->k0_lo);
  const int64_t v = (int64_t)acc * (int64_t)r->mult + k0;
  const uint32_t lo = (uint32_t)v;
  int32_t hi = (int32_t)(uint32_t)((uint64_t)v >> 32);
  const uint32_t neg = (uint32_t)(acc >> 31);
  hi += (int32_t)(neg & ~lo) >> 31;
  return hi >> r->rsh;
}

TTK_INLINE int32_t ttk_rq_apply(int32_t acc, ttk_rq_t r) {
  if (r.fast) return ttk_rq_apply_fast(acc, &r);
  const int32_t x = ttk_srdhm((int32_t)((uint32_t)acc << r.left), r.mult);
  const uint32_t rem = (uint32_t)x & r.mask;
  const uint32_t thr = r.thr + ((uint32_t)x >> 31);
  return (x >> r.right) + (rem > thr);
}

TTK_INLINE int32_t ttk_requant(int32_t acc, int32_t mult, int32_t shift) {
  return ttk_rq_apply(acc, ttk_rq_make(mult, shift));
}

/* One-SMMLAR requantization with y_zero folded in ("q2" form), for the kernels' inner epilogues.
 * Preconditions (checked once per layer by ttk_q2_ok): right shift e = -shift in [1, 22],
 * 2^30 < mult < 2^31, |acc| < 2^30. Then the two roundings and + y_zero are
 *   y + y_zero = floor((2 acc mult + 2^31 + 2^(31+e) - [acc<0] 2^32 + y_zero 2^(32+e)) / 2^(32+e)).
 * The kernels accumulate acc2 = 2 acc directly (weights doubled to int16, |2 w| <= 256, and the
 * bias doubled; |acc| < 2^30 keeps acc2 in int32 and its sign that of acc), so with
 * kc = 2^(e-1) + y_zero 2^e and acc2 >> 31 = -[acc<0] the numerator is the 64-bit
 *   ((kc + (acc2 >> 31)) << 32) + acc2 * mult + 2^31,
 * whose high word is exactly SMMLAR(acc2, mult, kc + (acc2 >> 31)) (most significant word of
 * Ra:0 + Rn * Rm, rounded): |acc2 mult| < 2^62 and |kc| < 2^29 + 1 keep it inside int64, so the
 * hardware's mod-2^64 arithmetic never wraps and the high word is floor(numerator / 2^32). Per
 * output: ADD (with ASR #31), SMMLAR, ASR by e, then SSAT and STRB: 5 instructions. */
typedef struct {
  int32_t m;  /* mult, in (2^30, 2^31) */
  int32_t kc; /* 2^(e-1) + y_zero 2^e */
  int32_t e;  /* -shift */
} ttk_q2_t;

/* 1 if the q2 form applies to a channel whose |acc| is at most acc_bound. */
TTK_INLINE int ttk_q2_ok(int32_t mult, int32_t shift, int64_t acc_bound) {
  return shift <= -1 && shift >= -22 && mult > (1 << 30) && acc_bound < ((int64_t)1 << 30);
}

TTK_INLINE ttk_q2_t ttk_q2_make(int32_t mult, int32_t shift, int32_t y_zero) {
  ttk_q2_t r;
  r.e = -shift;
  r.m = mult;
  r.kc = (int32_t)((1u << (r.e - 1)) + (uint32_t)y_zero * (1u << r.e));
  return r;
}

/* requant(acc) + y_zero (not saturated) from acc2 = 2 acc under ttk_q2_ok's preconditions. */
TTK_INLINE int32_t ttk_q2_apply2(int32_t acc2, int32_t m, int32_t kc, int32_t e) {
  const int32_t t = kc + (acc2 >> 31);
#if TTK_HAVE_DSP
  int32_t r;
  __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(acc2), "r"(m), "r"(t));
  return r >> e;
#else
  const int64_t v = (int64_t)t * ((int64_t)1 << 32) + (int64_t)acc2 * m + ((int64_t)1 << 31);
  return (int32_t)(v >> 32) >> e;
#endif
}

/* The same from acc itself (paths whose weights are not doubled). */
TTK_INLINE int32_t ttk_q2_apply(int32_t acc, int32_t m, int32_t kc, int32_t e) {
  return ttk_q2_apply2((int32_t)(2u * (uint32_t)acc), m, kc, e);
}

/* Saturate to [-128, 127]: one SSAT. */
TTK_INLINE int8_t ttk_sat_s8(int32_t v) {
#if TTK_HAVE_DSP
  return (int8_t)__ssat(v, 8);
#else
  return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
#endif
}

TTK_INLINE int8_t ttk_clamp_s8(int32_t v, int32_t lo, int32_t hi) {
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  return (int8_t)v;
}

#endif /* TTK_SIMD_H_ */
