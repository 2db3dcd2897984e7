/* libFuzzer target: tt_train_step / tt_predict on input and label bytes from outside (a
 * sensor, a radio), at any alignment. Properties (abort on violation): a refused step leaves
 * the trained state unchanged; an accepted step leaves it finite; a label outside [0, 4) and
 * a NaN/Inf input are always refused. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_model.h"
#include "tt/model.h"

#define A64 __attribute__((aligned(64)))
static uint8_t arena[FAKE_MODEL_ARENA_SIZE] A64;
static uint8_t input[64 + 16] A64;
static uint8_t label[64 + 8] A64;

static void must(int cond) {
  if (!cond) abort();
}

static int finite16(const uint8_t* p) {
  for (int i = 0; i < 4; ++i) {
    uint32_t b;
    memcpy(&b, p + 4 * i, 4);
    if ((b & 0x7F800000u) == 0x7F800000u) return 0;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tt_model_t m;
  must(tt_model_init(&m, &fake_model_desc, arena, sizeof(arena)) == TT_OK);
  /* Records of 1 (flags) + 16 (input) + 4 (label) bytes: a few steps per run. */
  while (size >= 21u) {
    const uint8_t flags = data[0];
    const size_t in_off = (flags & 1u) ? 4u : 0u; /* misaligned input: refused */
    const size_t lab_off = (flags >> 1) & 7u;      /* any label alignment: accepted */
    memcpy(input + in_off, data + 1, 16);
    memcpy(label + lab_off, data + 17, 4);
    int32_t lab;
    memcpy(&lab, data + 17, 4);
    uint8_t before[FAKE_MODEL_STATE_SIZE];
    memcpy(before, arena, sizeof before);
    float loss = 0.f;
    const uint64_t steps = tt_model_steps(&m);
    const tt_status_t st = tt_train_step(&m, input + in_off, label + lab_off, &loss);
    if (in_off != 0u) {
      must(st == TT_ERR_MISALIGNED);
    } else if (lab < 0 || lab >= 4) {
      must(st == TT_ERR_LABEL_RANGE);
    } else if (!finite16(data + 1)) {
      must(st == TT_ERR_NONFINITE);
    }
    if (st == TT_OK) {
      must(tt_model_state_finite(&m) && tt_model_steps(&m) == steps + 1u && loss == 1.0f);
    } else if (st == TT_ERR_NONFINITE && !tt_model_state_finite(&m)) {
      /* the step itself overflowed: reported; roll back as firmware would from a checkpoint */
      memcpy(arena, before, sizeof before);
    } else {
      must(memcmp(before, arena, sizeof before) == 0 && tt_model_steps(&m) == steps);
    }
    float logits[4];
    const tt_status_t sp = tt_predict(&m, input + in_off, logits);
    must(in_off ? sp == TT_ERR_MISALIGNED
                : (finite16(data + 1) ? sp == TT_OK : sp == TT_ERR_NONFINITE));
    data += 21;
    size -= 21;
  }
  return 0;
}
