/* tinytrain firmware harness: train a compiled model on samples streamed from host files.
 *
 * Files (semihosting, relative to QEMU's working directory; all optional):
 *   tt_params.bin  initial trained parameters in the arena's state layout (TT_MODEL_STATE_SIZE)
 *   tt_eval.bin    records (input, label): accuracy before and after training -> "EVAL" lines;
 *                  each record's raw predict output (TT_MODEL_OUTPUT_SIZE bytes) is written to
 *                  tt_out_before.bin / tt_out_after.bin (the class is the argmax of an f32, i8
 *                  or i32 output, TT_MODEL_OUTPUT_DTYPE; ties: the first)
 *   tt_train.bin   records (input, label): one training step each
 *   tt_trace.bin   written: per training record, the state (TT_MODEL_STATE_SIZE bytes) after
 *                  it, then the f32 loss (also for a refused record: the state is then unchanged)
 *   tt_ckpt.cfg    checkpointing (u32 little-endian each): every, restore, cut_after, tear,
 *                  page_size, page_count. With it the board NVM is the file tt_nvm.bin (created
 *                  erased with page_count pages if missing); `restore` != 0 restores the newest
 *                  checkpoint at boot and skips the training records already consumed;
 *                  `every` > 0 saves a checkpoint after every `every` accepted steps;
 *                  `cut_after` > 0 cuts the power after that many NVM erase/program operations
 *                  (exit status 99). At the end the state and counters go to tt_state.bin.
 * A streamed input (TT_MODEL_INPUT_STREAMED) is read range by range from the record file during
 * the step (the model's input reader), never whole into SRAM.
 * Prints "STEP <i> loss_bits=<u32> ticks=<SysTick ticks>" per accepted step, "REJECT <i> <status>"
 * per refused record (NaN/Inf: the board goes on), "CKPT ..." per checkpoint operation and
 * "TT done steps=<n>". Built with TT_PROFILE_COMMANDS (CMake option, off by default) it also
 * prints "PROF <command index> <SysTick ticks>" after each command tt_run runs (the print is
 * outside the timed interval, inside the step's).
 */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "tt/checkpoint.h"
#include "tt/model.h"
#include TT_MODEL_HEADER

#define TT_FW_ALIGN __attribute__((aligned(TT_ALIGNMENT)))

static uint8_t tt_fw_arena[TT_MODEL_ARENA_SIZE] TT_FW_ALIGN;
#if defined(TT_MODEL_INPUT_STREAMED)
/* The compiler streams the input (input_stream.py): no buffer holds it; the model's input reader
 * takes each range a kernel loads from the current record in the record file. */
#define tt_fw_train_input NULL
#define tt_fw_predict_input NULL
#elif defined(TT_MODEL_INPUT_IN_ARENA)
/* The compiler placed the input inside the transient arena (bytes no command uses before its
 * last read; each function has its own place): records are read straight there. */
#define tt_fw_train_input (tt_fw_arena + TT_MODEL_TRAIN_INPUT_OFFSET)
#define tt_fw_predict_input (tt_fw_arena + TT_MODEL_PREDICT_INPUT_OFFSET)
#else
static uint8_t tt_fw_input[TT_MODEL_INPUT_SIZE] TT_FW_ALIGN;
#define tt_fw_train_input tt_fw_input
#define tt_fw_predict_input tt_fw_input
#endif
static int32_t tt_fw_label[TT_ALIGNMENT / sizeof(int32_t)] TT_FW_ALIGN;
#if TT_MODEL_OUTPUT_SIZE > 0
static uint8_t tt_fw_logits[TT_MODEL_OUTPUT_SIZE] TT_FW_ALIGN;
#endif
#ifndef TT_MODEL_OUTPUT_DTYPE
#define TT_MODEL_OUTPUT_DTYPE TT_DTYPE_F32
#endif

#ifdef TT_MODEL_INPUT_STREAMED
/* The record file being read and where its current record starts. */
static struct {
  int fd;
  uint32_t record;
  uint32_t next;
} tt_fw_records;

/* The model's input reader: bytes [offset, offset + length) of the current record's input. */
static tt_status_t tt_fw_read_input(void* ctx, uint32_t offset, void* dst, uint32_t length) {
  (void)ctx;
  if (offset > TT_MODEL_INPUT_SIZE || length > TT_MODEL_INPUT_SIZE - offset ||
      tt_board_seek(tt_fw_records.fd, tt_fw_records.record + offset) != 0 ||
      tt_board_read(tt_fw_records.fd, dst, length) != length) {
    return TT_ERR_INPUT_READ;
  }
  return TT_OK;
}

/* A record file was opened: its first record is next. */
static void tt_fw_begin_records(int fd) {
  tt_fw_records.fd = fd;
  tt_fw_records.record = 0u;
  tt_fw_records.next = 0u;
}

/* The next record: only its label is read here, its input by tt_fw_read_input during the run. */
static int tt_fw_read_record(int fd, uint8_t* input) {
  (void)input;
  if (fd != tt_fw_records.fd) return 0;
  const int32_t size = tt_board_length(fd);
  const uint32_t at = tt_fw_records.next;
  if (size < 0 || (uint32_t)size < at || (uint32_t)size - at < TT_MODEL_INPUT_SIZE + sizeof(int32_t) ||
      tt_board_seek(fd, at + TT_MODEL_INPUT_SIZE) != 0 ||
      tt_board_read(fd, tt_fw_label, sizeof(int32_t)) != sizeof(int32_t)) {
    return 0;
  }
  tt_fw_records.record = at;
  tt_fw_records.next = at + TT_MODEL_INPUT_SIZE + sizeof(int32_t);
  return 1;
}
#else
static void tt_fw_begin_records(int fd) { (void)fd; }

static int tt_fw_read_record(int fd, uint8_t* input) {
  if (tt_board_read(fd, input, TT_MODEL_INPUT_SIZE) != TT_MODEL_INPUT_SIZE) return 0;
  return tt_board_read(fd, tt_fw_label, sizeof(int32_t)) == sizeof(int32_t);
}
#endif

static void tt_fw_fail(const char* what, tt_status_t status) {
  tt_board_puts("TT error ");
  tt_board_puts(what);
  tt_board_puts(": ");
  tt_board_puts(tt_status_name(status));
  tt_board_puts("\n");
}

#if TT_MODEL_OUTPUT_SIZE > 0
/* Index of the largest element of the predict output (first on ties). */
static uint32_t tt_fw_argmax(void) {
  uint32_t best = 0u;
  if (TT_MODEL_OUTPUT_DTYPE == TT_DTYPE_I8) {
    const int8_t* v = (const int8_t*)tt_fw_logits;
    for (uint32_t k = 1u; k < TT_MODEL_OUTPUT_SIZE; ++k) {
      if (v[k] > v[best]) best = k;
    }
  } else if (TT_MODEL_OUTPUT_DTYPE == TT_DTYPE_I32) {
    const int32_t* v = (const int32_t*)(const void*)tt_fw_logits;
    for (uint32_t k = 1u; k < TT_MODEL_OUTPUT_SIZE / sizeof(int32_t); ++k) {
      if (v[k] > v[best]) best = k;
    }
  } else {
    const float* v = (const float*)(const void*)tt_fw_logits;
    for (uint32_t k = 1u; k < TT_MODEL_OUTPUT_SIZE / sizeof(float); ++k) {
      if (v[k] > v[best]) best = k;
    }
  }
  return best;
}

static int tt_fw_evaluate(tt_model_t* model, const char* tag) {
  int fd = tt_board_open("tt_eval.bin", 0);
  if (fd < 0) return 0;
  tt_fw_begin_records(fd);
  int out = tt_board_open(tag[0] == 'b' ? "tt_out_before.bin" : "tt_out_after.bin", TT_BOARD_WRITE);
  uint32_t total = 0u, correct = 0u;
  while (tt_fw_read_record(fd, tt_fw_predict_input)) {
    tt_status_t st = tt_predict(model, tt_fw_predict_input, tt_fw_logits);
    if (st != TT_OK) {
      tt_fw_fail("tt_predict", st);
      tt_board_close(fd);
      if (out >= 0) tt_board_close(out);
      return 1;
    }
    if (out >= 0) (void)tt_board_write(out, tt_fw_logits, TT_MODEL_OUTPUT_SIZE);
    correct += (tt_fw_argmax() == (uint32_t)tt_fw_label[0]);
    ++total;
  }
  tt_board_close(fd);
  if (out >= 0) tt_board_close(out);
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

typedef struct {
  uint32_t every, restore, cut_after, tear, page_size, page_count;
} tt_fw_ckpt_cfg_t;

static int tt_fw_read_cfg(tt_fw_ckpt_cfg_t* cfg) {
  int fd = tt_board_open("tt_ckpt.cfg", TT_BOARD_READ);
  if (fd < 0) return 0;
  uint8_t raw[sizeof(*cfg)];
  uint32_t n = tt_board_read(fd, raw, sizeof raw);
  tt_board_close(fd);
  uint32_t v[6] = {0u, 0u, 0u, 0u, 256u, 64u};
  for (uint32_t i = 0; i < 6u && 4u * i + 4u <= n; ++i) {
    v[i] = (uint32_t)raw[4 * i] | ((uint32_t)raw[4 * i + 1] << 8) |
           ((uint32_t)raw[4 * i + 2] << 16) | ((uint32_t)raw[4 * i + 3] << 24);
  }
  cfg->every = v[0];
  cfg->restore = v[1];
  cfg->cut_after = v[2];
  cfg->tear = v[3];
  cfg->page_size = v[4];
  cfg->page_count = v[5];
  return 1;
}

static void tt_fw_print_ckpt(const char* what, tt_status_t st, const tt_checkpoint_info_t* info) {
  tt_board_puts("CKPT ");
  tt_board_puts(what);
  tt_board_puts(" status=");
  tt_board_puts(tt_status_name(st));
  tt_board_puts(" slot=");
  tt_board_puts(info->slot == 0 ? "A" : info->slot == 1 ? "B" : "-");
  tt_board_puts(" seq=");
  tt_board_put_u64(info->sequence);
  tt_board_puts(" steps=");
  tt_board_put_u64(info->steps);
  tt_board_puts(" rejected=");
  tt_board_put_u64(info->rejected_steps);
  tt_board_puts(" slotA=");
  tt_board_puts(tt_status_name(info->slot_status[0]));
  tt_board_puts(" slotB=");
  tt_board_puts(tt_status_name(info->slot_status[1]));
  tt_board_puts("\n");
}

#ifdef TT_PROFILE_COMMANDS
static uint64_t tt_fw_prof_t0;

void tt_profile_command_begin(uint32_t cmd) {
  (void)cmd;
  tt_fw_prof_t0 = tt_board_timer_ticks();
}

void tt_profile_command_end(uint32_t cmd) {
  const uint64_t t1 = tt_board_timer_ticks();
  tt_board_puts("PROF ");
  tt_board_put_u64(cmd);
  tt_board_puts(" ");
  tt_board_put_u64(t1 - tt_fw_prof_t0);
  tt_board_puts("\n");
}
#endif

static void tt_fw_write_state(const tt_model_t* model) {
  int fd = tt_board_open("tt_state.bin", TT_BOARD_WRITE);
  if (fd < 0) return;
  uint64_t counters[2] = {tt_model_steps(model), tt_model_rejected_steps(model)};
  (void)tt_board_write(fd, tt_fw_arena, TT_MODEL_STATE_SIZE);
  (void)tt_board_write(fd, counters, sizeof counters);
  tt_board_close(fd);
}

int main(void) {
  tt_model_t model;
  tt_status_t st = tt_model_init(&model, &TT_MODEL_DESC, tt_fw_arena, sizeof(tt_fw_arena));
  if (st != TT_OK) {
    tt_fw_fail("tt_model_init", st);
    return 2;
  }
#ifdef TT_MODEL_INPUT_STREAMED
  tt_fw_records.fd = -1;
  (void)tt_model_set_input_reader(&model, tt_fw_read_input, NULL);
#endif
  int fd = tt_board_open("tt_params.bin", 0);
  if (fd >= 0) {
    uint32_t n = tt_board_read(fd, tt_fw_arena, TT_MODEL_STATE_SIZE);
    tt_board_close(fd);
    if (n != TT_MODEL_STATE_SIZE) {
      tt_board_puts("TT error: tt_params.bin is too short\n");
      return 3;
    }
  }
  tt_fw_ckpt_cfg_t cfg = {0u, 0u, 0u, 0u, 0u, 0u};
  tt_board_nvm_t board_nvm = {-1, 0u, 0u, 0u, 0u};
  tt_nvm_t nvm = {NULL, 0u, 0u, NULL, NULL, NULL};
  const int ckpt = tt_fw_read_cfg(&cfg);
  uint64_t skip = 0u;
  if (ckpt) {
    board_nvm.cut_after = cfg.cut_after;
    board_nvm.tear = cfg.tear;
    if (tt_board_nvm_open(&board_nvm, "tt_nvm.bin", cfg.page_size, cfg.page_count, &nvm) != 0) {
      tt_board_puts("TT error: cannot open the NVM file tt_nvm.bin\n");
      return 6;
    }
    if (cfg.restore) {
      tt_checkpoint_info_t info;
      st = tt_checkpoint_restore(&model, &nvm, &info);
      tt_fw_print_ckpt("restore", st, &info);
      skip = tt_model_steps(&model) + tt_model_rejected_steps(&model);
    }
  }
#if TT_MODEL_OUTPUT_SIZE > 0
  if (tt_fw_evaluate(&model, "before")) return 4;
#endif
  uint32_t steps = 0u;
  fd = tt_board_open("tt_train.bin", 0);
  if (fd >= 0) {
    tt_fw_begin_records(fd);
    int trace = tt_board_open("tt_trace.bin", 1);
    tt_board_timer_start();
    for (uint64_t i = 0; i < skip && tt_fw_read_record(fd, tt_fw_train_input); ++i) {
    }
    uint64_t record = skip;
    while (tt_fw_read_record(fd, tt_fw_train_input)) {
      float loss = 0.0f;
      uint64_t t0 = tt_board_timer_ticks();
      st = tt_train_step(&model, tt_fw_train_input, tt_fw_label, &loss);
      uint64_t t1 = tt_board_timer_ticks();
      if (st == TT_ERR_NONFINITE) {
        /* A bad sample: refused (input) or its step reported (loss/state). Go on; if the
         * state itself went bad, roll back to the last checkpoint. */
        tt_board_puts("REJECT ");
        tt_board_put_u64(record);
        tt_board_puts(" ");
        tt_board_puts(tt_status_name(st));
        tt_board_puts("\n");
        if (!tt_model_state_finite(&model) && ckpt) {
          tt_checkpoint_info_t info;
          const uint32_t rejected = tt_model_rejected_steps(&model);
          tt_status_t rs = tt_checkpoint_restore(&model, &nvm, &info);
          model.rejected_steps = rejected;
          tt_fw_print_ckpt("rollback", rs, &info);
        }
        if (trace >= 0) {
          (void)tt_board_write(trace, tt_fw_arena, TT_MODEL_STATE_SIZE);
          (void)tt_board_write(trace, &loss, sizeof(loss));
        }
        ++record;
        continue;
      }
      if (st != TT_OK) {
        tt_fw_fail("tt_train_step", st);
        return 5;
      }
      ++record;
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
      if (ckpt && cfg.every != 0u && tt_model_steps(&model) % cfg.every == 0u) {
        tt_checkpoint_info_t info;
        st = tt_checkpoint_save(&model, &nvm, &info);
        tt_fw_print_ckpt("save", st, &info);
      }
    }
    tt_board_close(fd);
    if (trace >= 0) tt_board_close(trace);
  }
  if (ckpt) {
    tt_board_nvm_close(&board_nvm);
    tt_fw_write_state(&model);
  }
#if TT_MODEL_OUTPUT_SIZE > 0
  if (tt_fw_evaluate(&model, "after")) return 4;
#endif
  tt_board_puts("TT done steps=");
  tt_board_put_u64(steps);
  tt_board_puts("\n");
  return 0;
}
