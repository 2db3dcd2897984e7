/* tinytrain firmware harness: train a compiled model on samples streamed from host files.
 *
 * Files (semihosting, relative to QEMU's working directory; all optional):
 *   tt_params.bin  initial trained parameters in the arena's state layout (TT_MODEL_STATE_SIZE)
 *   tt_eval.bin    records (input, label): accuracy before and after training -> "EVAL" lines
 *   tt_train.bin   records (input, label): one training step each
 *   tt_trace.bin   written: per step, the state (TT_MODEL_STATE_SIZE bytes) then the f32 loss
 * Prints "STEP <i> loss_bits=<u32> ticks=<SysTick ticks>" per step and "TT done steps=<n>".
 */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "tt/model.h"
#include TT_MODEL_HEADER

#define TT_FW_ALIGN __attribute__((aligned(TT_ALIGNMENT)))

static uint8_t tt_fw_arena[TT_MODEL_ARENA_SIZE] TT_FW_ALIGN;
static uint8_t tt_fw_input[TT_MODEL_INPUT_SIZE] TT_FW_ALIGN;
static int32_t tt_fw_label[TT_ALIGNMENT / sizeof(int32_t)] TT_FW_ALIGN;
#if TT_MODEL_OUTPUT_SIZE > 0
static float tt_fw_logits[TT_MODEL_OUTPUT_SIZE / sizeof(float)] TT_FW_ALIGN;
#endif

static int tt_fw_read_record(int fd) {
  if (tt_board_read(fd, tt_fw_input, TT_MODEL_INPUT_SIZE) != TT_MODEL_INPUT_SIZE) return 0;
  return tt_board_read(fd, tt_fw_label, sizeof(int32_t)) == sizeof(int32_t);
}

static void tt_fw_fail(const char* what, tt_status_t status) {
  tt_board_puts("TT error ");
  tt_board_puts(what);
  tt_board_puts(": ");
  tt_board_puts(tt_status_name(status));
  tt_board_puts("\n");
}

#if TT_MODEL_OUTPUT_SIZE > 0
static int tt_fw_evaluate(tt_model_t* model, const char* tag) {
  int fd = tt_board_open("tt_eval.bin", 0);
  if (fd < 0) return 0;
  uint32_t total = 0u, correct = 0u;
  while (tt_fw_read_record(fd)) {
    tt_status_t st = tt_predict(model, tt_fw_input, tt_fw_logits);
    if (st != TT_OK) {
      tt_fw_fail("tt_predict", st);
      tt_board_close(fd);
      return 1;
    }
    uint32_t best = 0u;
    for (uint32_t k = 1u; k < TT_MODEL_OUTPUT_SIZE / sizeof(float); ++k) {
      if (tt_fw_logits[k] > tt_fw_logits[best]) best = k;
    }
    correct += (best == (uint32_t)tt_fw_label[0]);
    ++total;
  }
  tt_board_close(fd);
  tt_board_puts("EVAL ");
  tt_board_puts(tag);
  tt_board_puts(" correct=");
  tt_board_put_u64(correct);
  tt_board_puts(" total=");
  tt_board_put_u64(total);
  tt_board_puts("\n");
  return 0;
}
#endif

int main(void) {
  tt_model_t model;
  tt_status_t st = tt_model_init(&model, &TT_MODEL_DESC, tt_fw_arena, sizeof(tt_fw_arena));
  if (st != TT_OK) {
    tt_fw_fail("tt_model_init", st);
    return 2;
  }
  int fd = tt_board_open("tt_params.bin", 0);
  if (fd >= 0) {
    uint32_t n = tt_board_read(fd, tt_fw_arena, TT_MODEL_STATE_SIZE);
    tt_board_close(fd);
    if (n != TT_MODEL_STATE_SIZE) {
      tt_board_puts("TT error: tt_params.bin is too short\n");
      return 3;
    }
  }
#if TT_MODEL_OUTPUT_SIZE > 0
  if (tt_fw_evaluate(&model, "before")) return 4;
#endif
  uint32_t steps = 0u;
  fd = tt_board_open("tt_train.bin", 0);
  if (fd >= 0) {
    int trace = tt_board_open("tt_trace.bin", 1);
    tt_board_timer_start();
    while (tt_fw_read_record(fd)) {
      float loss = 0.0f;
      uint64_t t0 = tt_board_timer_ticks();
      st = tt_train_step(&model, tt_fw_input, tt_fw_label, &loss);
      uint64_t t1 = tt_board_timer_ticks();
      if (st != TT_OK) {
        tt_fw_fail("tt_train_step", st);
        return 5;
      }
      uint32_t bits;
      memcpy(&bits, &loss, sizeof(bits));
      tt_board_puts("STEP ");
      tt_board_put_u64(steps);
      tt_board_puts(" loss_bits=");
      tt_board_put_u64(bits);
      tt_board_puts(" ticks=");
      tt_board_put_u64(t1 - t0);
      tt_board_puts("\n");
      if (trace >= 0) {
        (void)tt_board_write(trace, tt_fw_arena, TT_MODEL_STATE_SIZE);
        (void)tt_board_write(trace, &loss, sizeof(loss));
      }
      ++steps;
    }
    tt_board_close(fd);
    if (trace >= 0) tt_board_close(trace);
  }
#if TT_MODEL_OUTPUT_SIZE > 0
  if (tt_fw_evaluate(&model, "after")) return 4;
#endif
  tt_board_puts("TT done steps=");
  tt_board_put_u64(steps);
  tt_board_puts("\n");
  return 0;
}
