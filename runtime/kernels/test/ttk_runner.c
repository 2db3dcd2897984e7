/* Kernel test/benchmark runner (firmware for the QEMU mps2 boards, or a host executable).
 *
 * Reads cases from `ttk_cases.bin` (QEMU's working directory, via semihosting), runs one kernel
 * per case on its inputs and writes every output to `ttk_out.bin`; prints one line per case,
 * `CASE <index> op=<op> ticks=<timer ticks around the kernel call>`, then `DONE <n>`.
 * Layout (little endian, see tests/python/ttk_cases.py): a case is
 *   u32 magic 'TTKC', u32 op, i32 params[16], u32 n_inputs, u32 sizes[n_inputs], u32 out_bytes,
 *   then the inputs, each padded to 8 bytes.
 * An output record is u32 out_bytes, the bytes, u64 ticks. Weight packing (done once at compile
 * time in a real model) happens before the timer starts.
 */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "ttk/kernels.h"

#ifndef TTK_ARENA_BYTES
#define TTK_ARENA_BYTES (160u * 1024u)
#endif
#define TTK_MAX_INPUTS 8

enum {
  TTK_OP_CONV1X1 = 1, TTK_OP_LINEAR = 2, TTK_OP_DWCONV = 3, TTK_OP_CONV = 4,
  TTK_OP_DW_GRAD_INPUT = 5, TTK_OP_PW_GRAD_INPUT = 6, TTK_OP_PW_GRAD_WEIGHT = 7,
  TTK_OP_DW_GRAD_WEIGHT = 8, TTK_OP_MASK = 9, TTK_OP_REQUANT = 10,
};

static uint8_t ttk_arena[TTK_ARENA_BYTES] __attribute__((aligned(8)));

static uint32_t ttk_pad8(uint32_t n) { return (n + 7u) & ~7u; }

static void ttk_fail(const char* what) {
  tt_board_puts("ERROR ");
  tt_board_puts(what);
  tt_board_puts("\n");
  tt_board_exit(2);
}

static float ttk_f32_bits(int32_t v) {
  float f;
  memcpy(&f, &v, 4);
  return f;
}

/* Runs case `op`; returns the kernel's status. `in` are the inputs, `out` the output buffer,
 * `scratch` what is left of the arena (packed weights). */
static int ttk_run(int32_t op, const int32_t* p, uint8_t* const* in, uint8_t* out,
                   uint8_t* scratch, uint32_t scratch_bytes, uint64_t* ticks) {
  ttk_quant_t q;
  int rc = -1;
  uint64_t t0 = 0;
  switch (op) {
    case TTK_OP_CONV1X1:
    case TTK_OP_LINEAR: {
      /* p: pixels c_in c_out x_zero y_zero act_min act_max has_bias scratch_bytes */
      const int32_t c_in = p[1], c_out = p[2];
      if ((uint32_t)(c_in * c_out) > scratch_bytes) ttk_fail("scratch");
      ttk_pack_oi_s8((const int8_t*)in[1], c_in, c_out, (int8_t*)scratch);
      q = (ttk_quant_t){p[3], p[4], p[5], p[6], (const int32_t*)in[3], (const int32_t*)in[4]};
      const int32_t* bias = p[7] ? (const int32_t*)in[2] : NULL;
      tt_board_timer_start();
      t0 = tt_board_timer_ticks();
      /* p[8]: kernel scratch bytes: 0 none, -1 all that is left of the arena, -2 - n the
       * minimum plus n channel pairs (several weight blocks) */
      uint8_t* ks = scratch + ((uint32_t)(c_in * c_out) + 7u) / 8u * 8u;
      const uint32_t left = scratch_bytes - (uint32_t)(ks - scratch);
      const uint32_t pair = (uint32_t)(ttk_conv1x1_s8_scratch_size(c_in, 2) -
                                       ttk_conv1x1_s8_scratch_size(c_in, 0));
      const uint32_t ks_bytes =
          p[8] == -1 ? left
          : p[8] < -1 ? (uint32_t)ttk_conv1x1_s8_scratch_min(c_in) + (uint32_t)(-2 - p[8]) * pair
                      : (uint32_t)p[8];
      if (ks_bytes > left) ttk_fail("scratch");
      if (op == TTK_OP_CONV1X1)
        rc = ttk_conv1x1_s8((const int8_t*)in[0], p[0], c_in, (const int8_t*)scratch, bias, c_out,
                            &q, (int8_t*)out, ks_bytes ? ks : NULL, ks_bytes);
      else
        rc = ttk_linear_s8((const int8_t*)in[0], c_in, (const int8_t*)scratch, bias, c_out, &q,
                           (int8_t*)out);
      break;
    }
    case TTK_OP_DWCONV: {
      /* p: h w c k stride x_zero y_zero act_min act_max has_bias pad scratch; p[11]: kernel
       * scratch bytes: -1 ttk_dwconv_s8_scratch_size, -2 ttk_dwconv_s8_scratch_min, 0 none,
       * n > 0 n bytes */
      const uint32_t ks_bytes = p[11] == -1 ? (uint32_t)ttk_dwconv_s8_scratch_size(p[0], p[1], p[3], p[4], p[10])
                              : p[11] == -2 ? (uint32_t)ttk_dwconv_s8_scratch_min(p[1], p[3], p[10])
                              : p[11] > 0   ? (uint32_t)p[11]
                                            : 0u;
      if (ks_bytes > scratch_bytes) ttk_fail("scratch");
      q = (ttk_quant_t){p[5], p[6], p[7], p[8], (const int32_t*)in[3], (const int32_t*)in[4]};
      tt_board_timer_start();
      t0 = tt_board_timer_ticks();
      rc = ttk_dwconv_s8((const int8_t*)in[0], p[0], p[1], p[2], (const int8_t*)in[1], p[3], p[4],
                         p[10], p[9] ? (const int32_t*)in[2] : NULL, &q, (int8_t*)out,
                         ks_bytes ? scratch : NULL, ks_bytes);
      break;
    }
    case TTK_OP_CONV: {
      /* p: h w c_in c_out k stride x_zero y_zero act_min act_max has_bias pad */
      const size_t need = ttk_pack_conv_q15_size(p[4], p[4], p[2], p[3]);
      if (need > scratch_bytes) ttk_fail("scratch");
      ttk_pack_conv_q15((const int8_t*)in[1], p[4], p[4], p[2], p[3], (int16_t*)scratch);
      q = (ttk_quant_t){p[6], p[7], p[8], p[9], (const int32_t*)in[3], (const int32_t*)in[4]};
      tt_board_timer_start();
      t0 = tt_board_timer_ticks();
      rc = ttk_conv_s8((const int8_t*)in[0], p[0], p[1], p[2], (const int16_t*)scratch, p[4], p[5],
                       p[11], p[10] ? (const int32_t*)in[2] : NULL, p[3], &q, (int8_t*)out);
      break;
    }
    case TTK_OP_DW_GRAD_INPUT: /* p: h w c k stride */
      tt_board_timer_start();
      t0 = tt_board_timer_ticks();
      rc = ttk_dwconv_grad_input_f32((const float*)in[0], p[0], p[1], p[2], (const float*)in[1],
                                     p[3], p[4], (float*)out);
      break;
    case TTK_OP_PW_GRAD_INPUT: /* p: pixels c_out c_in */
      tt_board_timer_start();
      t0 = tt_board_timer_ticks();
      rc = ttk_conv1x1_grad_input_f32((const float*)in[0], p[0], p[1], (const float*)in[1], p[2],
                                      (float*)out);
      break;
    case TTK_OP_PW_GRAD_WEIGHT: /* p: pixels c_in c_out n_out x_zero x_scale_bits */
      tt_board_timer_start();
      t0 = tt_board_timer_ticks();
      rc = ttk_conv1x1_grad_weight_f32((const int8_t*)in[0], p[4], ttk_f32_bits(p[5]), p[0], p[1],
                                       (const float*)in[1], p[2], p[3], (float*)out, p[3]);
      break;
    case TTK_OP_DW_GRAD_WEIGHT: /* p: h w c k stride n_ch x_zero x_scale_bits c_g */
      tt_board_timer_start();
      t0 = tt_board_timer_ticks();
      rc = ttk_dwconv_grad_weight_f32((const int8_t*)in[0], p[6], ttk_f32_bits(p[7]), p[0], p[1],
                                      p[2], (const float*)in[1], p[8], p[3], p[4], p[5],
                                      (float*)out, p[5]);
      break;
    case TTK_OP_MASK: { /* p: n act_min act_max; out = mask bytes (padded to 8) + masked g */
      const int32_t n = p[0];
      const uint32_t mbytes = ttk_pad8((uint32_t)(n + 7) / 8u);
      float* g = (float*)(out + mbytes);
      memcpy(g, in[1], (size_t)n * 4u);
      tt_board_timer_start();
      t0 = tt_board_timer_ticks();
      ttk_mask_from_s8((const int8_t*)in[0], n, p[1], p[2], out);
      ttk_mask_apply_f32(g, n, out);
      rc = 0;
      break;
    }
    case TTK_OP_REQUANT: { /* p: n; out[i] = ttk_requantize(acc[i], mult[i], shift[i]) */
      const int32_t* acc = (const int32_t*)in[0];
      const int32_t* m = (const int32_t*)in[1];
      const int32_t* s = (const int32_t*)in[2];
      int32_t* o = (int32_t*)out;
      tt_board_timer_start();
      t0 = tt_board_timer_ticks();
      for (int32_t i = 0; i < p[0]; ++i) o[i] = ttk_requantize(acc[i], m[i], s[i]);
      rc = 0;
      break;
    }
    default:
      ttk_fail("unknown op");
  }
  *ticks = tt_board_timer_ticks() - t0;
  return rc;
}

int main(void) {
  int fin = tt_board_open("ttk_cases.bin", 0);
  int fout = tt_board_open("ttk_out.bin", 1);
  if (fin < 0 || fout < 0) ttk_fail("cannot open ttk_cases.bin / ttk_out.bin");
  uint32_t index = 0;
  for (;;) {
    uint32_t head[2 + 16 + 1];
    uint32_t got = tt_board_read(fin, head, sizeof(head));
    if (got == 0) break;
    if (got != sizeof(head) || head[0] != 0x434B5454u /* "TTKC" */) ttk_fail("bad case header");
    const int32_t op = (int32_t)head[1];
    const int32_t* p = (const int32_t*)&head[2];
    const uint32_t n_in = head[18];
    uint32_t sizes[TTK_MAX_INPUTS + 1];
    if (n_in > TTK_MAX_INPUTS) ttk_fail("too many inputs");
    if (tt_board_read(fin, sizes, 4u * (n_in + 1u)) != 4u * (n_in + 1u)) ttk_fail("truncated");
    uint8_t* in[TTK_MAX_INPUTS];
    uint32_t used = 0;
    for (uint32_t i = 0; i < n_in; ++i) {
      const uint32_t len = ttk_pad8(sizes[i]);
      if (used + len > TTK_ARENA_BYTES) ttk_fail("arena too small for the inputs");
      in[i] = ttk_arena + used;
      if (tt_board_read(fin, in[i], len) != len) ttk_fail("truncated input");
      used += len;
    }
    const uint32_t out_bytes = sizes[n_in];
    if (used + ttk_pad8(out_bytes) > TTK_ARENA_BYTES) ttk_fail("arena too small for the output");
    uint8_t* out = ttk_arena + used;
    memset(out, 0xA5, out_bytes); /* kernels must write every output element */
    used += ttk_pad8(out_bytes);
    uint64_t ticks = 0;
    int rc = ttk_run(op, p, in, out, ttk_arena + used, TTK_ARENA_BYTES - used, &ticks);
    if (rc != 0) ttk_fail("kernel rejected its arguments");
    tt_board_write(fout, &out_bytes, 4u);
    tt_board_write(fout, out, out_bytes);
    tt_board_write(fout, &ticks, 8u);
    tt_board_puts("CASE ");
    tt_board_put_u64(index);
    tt_board_puts(" op=");
    tt_board_put_u64((uint64_t)op);
    tt_board_puts(" ticks=");
    tt_board_put_u64(ticks);
    tt_board_puts("\n");
    ++index;
  }
  tt_board_close(fin);
  tt_board_close(fout);
  tt_board_puts("DONE ");
  tt_board_put_u64(index);
  tt_board_puts("\n");
  return 0;
}
