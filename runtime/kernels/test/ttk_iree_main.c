/* Times one IREE-generated function (a single int8 layer compiled by iree-compile into the
 * static library, scheduled by our runtime) for bench/cortexm_kernels.py: reads the input from
 * `iree_in.bin`, runs @predict once with SysTick around tt_run, writes the output to
 * `iree_out.bin` and prints `IREE ticks=<n>`. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "k_model.h"

static uint8_t ttk_arena[K_ARENA_SIZE + 64] __attribute__((aligned(64)));
static uint8_t ttk_in[K_INPUT_SIZE] __attribute__((aligned(64)));

static void ttk_die(const char* what) {
  tt_board_puts("ERROR ");
  tt_board_puts(what);
  tt_board_puts("\n");
  tt_board_exit(2);
}

int main(void) {
  tt_model_t m;
  if (tt_model_init(&m, &k_model, ttk_arena, sizeof(ttk_arena)) != TT_OK) ttk_die("init");
  const int fn = tt_model_find_function(&m, "predict");
  if (fn < 0) ttk_die("no predict");
  /* Read the input where the compiler placed it (inside the arena, or its own buffer), so the
   * timed tt_run copies nothing. */
  uint8_t* in = (uint8_t*)tt_model_input_buffer(&m, fn, 0);
  if (in == NULL) in = ttk_in;
  int f = tt_board_open("iree_in.bin", 0);
  if (f < 0 || tt_board_read(f, in, K_INPUT_SIZE) != K_INPUT_SIZE) ttk_die("input");
  tt_board_close(f);
  const void* inputs[1] = {in};
  tt_board_timer_start();
  const uint64_t t0 = tt_board_timer_ticks();
  tt_status_t st = tt_run(&m, fn, inputs, NULL);
  const uint64_t ticks = tt_board_timer_ticks() - t0;
  if (st != TT_OK) ttk_die("run");
  f = tt_board_open("iree_out.bin", 1);
  if (f < 0) ttk_die("output");
  tt_board_write(f, tt_model_output(&m, fn, 0, inputs), K_OUTPUT_SIZE);
  tt_board_close(f);
  tt_board_puts("IREE ticks=");
  tt_board_put_u64(ticks);
  tt_board_puts("\n");
  return 0;
}
