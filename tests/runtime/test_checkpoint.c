/* Host tests of the A/B checkpoints: format, power cuts at every erase/program (clean and
 * torn), corrupted and foreign slots, non-finite state. */
#include <stdio.h>
#include <string.h>

#include "fake_library.h"
#include "fake_model.h"
#include "mem_nvm.h"
#include "tt/checkpoint.h"

static int failures;
#define CHECK(cond)                                                                \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
      ++failures;                                                                  \
    }                                                                              \
  } while (0)

#define A64 __attribute__((aligned(64)))
#define PAGE 64u
#define PAGES 8u /* two slots of 4 pages; the model needs 3 (header + 128 B) */

static uint8_t arena[FAKE_MODEL_ARENA_SIZE] A64;
static uint8_t arena2[FAKE_MODEL_ARENA_SIZE] A64;
static const int32_t label[16] A64 = {1};

static void step(tt_model_t* m, float v) {
  static float x[16] A64;
  for (int i = 0; i < 4; ++i) x[i] = v + (float)i;
  float loss = 0.f;
  CHECK(tt_train_step(m, x, label, &loss) == TT_OK);
  CHECK(loss == 1.0f);
}

static void test_crc_and_identity(void) {
  CHECK(tt_crc32(0u, "123456789", 9u) == 0xCBF43926u); /* the standard check value */
  CHECK(tt_crc32(tt_crc32(0u, "1234", 4u), "56789", 5u) == 0xCBF43926u);
  CHECK(tt_checkpoint_model_id(&fake_model_desc) != tt_checkpoint_model_id(&fake_model_desc_other));
  CHECK(tt_checkpoint_slot_pages(&fake_model_desc, PAGE) == 3u);
  CHECK(tt_checkpoint_slot_pages(&fake_model_desc, 128u) == 2u);
  CHECK(tt_checkpoint_slot_pages(&fake_model_desc, 100u) == 3u);
}

/* Save, train, save, save: slots alternate A, B, A; restore takes the newest. */
static void test_save_restore(void) {
  mem_nvm_t mem;
  tt_nvm_t nvm;
  mem_nvm_init(&mem, PAGE, PAGES, &nvm);
  tt_model_t m;
  CHECK(tt_model_init(&m, &fake_model_desc, arena, sizeof(arena)) == TT_OK);
  tt_checkpoint_info_t info;
  CHECK(tt_checkpoint_restore(&m, &nvm, &info) == TT_ERR_NO_CHECKPOINT);
  CHECK(info.slot == -1 && info.slot_status[0] == TT_ERR_NO_CHECKPOINT);
  CHECK(tt_checkpoint_save(&m, &nvm, &info) == TT_OK);
  CHECK(info.slot == 0 && info.sequence == 1u && mem.ops == 6u);
  step(&m, 1.f);
  CHECK(tt_checkpoint_save(&m, &nvm, &info) == TT_OK);
  CHECK(info.slot == 1 && info.sequence == 2u && info.steps == 1u);
  step(&m, 2.f);
  step(&m, 3.f);
  CHECK(tt_checkpoint_save(&m, &nvm, &info) == TT_OK);
  CHECK(info.slot == 0 && info.sequence == 3u && info.steps == 3u);
  uint8_t saved[FAKE_MODEL_STATE_SIZE];
  memcpy(saved, arena, sizeof saved);
  /* The header layout the host reader (python/tinytrain/checkpoint.py) parses. */
  CHECK(memcmp(mem.bytes, "TTCK", 4) == 0 && mem.bytes[4] == 1u && mem.bytes[6] == 64u);
  CHECK(mem.bytes[8] == 3u && mem.bytes[12] == 128u && mem.bytes[16] == 3u);
  CHECK(memcmp(mem.bytes + PAGE, arena, FAKE_MODEL_STATE_SIZE) == 0);

  tt_model_t r;
  CHECK(tt_model_init(&r, &fake_model_desc, arena2, sizeof(arena2)) == TT_OK);
  CHECK(memcmp(arena2, saved, sizeof saved) != 0);
  CHECK(tt_checkpoint_restore(&r, &nvm, &info) == TT_OK);
  CHECK(info.slot == 0 && info.sequence == 3u && info.slot_sequence[1] == 2u);
  CHECK(memcmp(arena2, saved, sizeof saved) == 0);
  CHECK(tt_model_steps(&r) == 3u && tt_model_rejected_steps(&r) == 0u);
  /* Training goes on from the restored state exactly as it would have. */
  step(&m, 4.f);
  step(&r, 4.f);
  CHECK(memcmp(arena, arena2, FAKE_MODEL_STATE_SIZE) == 0 && tt_model_steps(&r) == 4u);
}

/* A cut after every possible number k of erase/program operations of a save (and torn inside
 * the (k+1)-th): the restored state is exactly the old or the new checkpoint, never a mix, and
 * the new one only once its header page is programmed (the last operation). */
static void test_power_cut_every_operation(void) {
  for (int tear = 0; tear <= 1; ++tear) {
    for (uint32_t k = 0; k <= 7u; ++k) {
      mem_nvm_t mem;
      tt_nvm_t nvm;
      mem_nvm_init(&mem, PAGE, PAGES, &nvm);
      tt_model_t m;
      CHECK(tt_model_init(&m, &fake_model_desc, arena, sizeof(arena)) == TT_OK);
      step(&m, 1.f);
      CHECK(tt_checkpoint_save(&m, &nvm, NULL) == TT_OK); /* old: slot A, seq 1 */
      step(&m, 2.f);
      CHECK(tt_checkpoint_save(&m, &nvm, NULL) == TT_OK); /* old: slot B, seq 2 */
      uint8_t old_state[FAKE_MODEL_STATE_SIZE], new_state[FAKE_MODEL_STATE_SIZE];
      memcpy(old_state, arena, sizeof old_state);
      step(&m, 3.f);
      memcpy(new_state, arena, sizeof new_state);
      mem.ops = 0u;
      mem.cut_after = k == 0u ? 0u : k; /* k = 0: no cut */
      mem.tear = tear;
      const tt_status_t st = tt_checkpoint_save(&m, &nvm, NULL);
      CHECK((k == 0u || k >= 6u) ? st == TT_OK : st == TT_ERR_NVM);
      mem.cut = 0; /* power back */
      mem.cut_after = 0u;
      tt_model_t r;
      tt_checkpoint_info_t info;
      CHECK(tt_model_init(&r, &fake_model_desc, arena2, sizeof(arena2)) == TT_OK);
      CHECK(tt_checkpoint_restore(&r, &nvm, &info) == TT_OK);
      const int complete = k == 0u || k >= 6u; /* 6 ops: 3 erases, 2 payload, 1 header */
      if (complete) {
        CHECK(memcmp(arena2, new_state, sizeof new_state) == 0);
        CHECK(info.sequence == 3u && info.slot == 0 && tt_model_steps(&r) == 3u);
      } else {
        CHECK(memcmp(arena2, old_state, sizeof old_state) == 0);
        CHECK(info.sequence == 2u && info.slot == 1 && tt_model_steps(&r) == 2u);
      }
      /* And the next save after the reboot works and wins. */
      step(&r, 5.f);
      CHECK(tt_checkpoint_save(&r, &nvm, &info) == TT_OK);
      CHECK(info.sequence == (complete ? 4u : 3u));
    }
  }
}

static void test_corruption(void) {
  mem_nvm_t mem;
  tt_nvm_t nvm;
  mem_nvm_init(&mem, PAGE, PAGES, &nvm);
  tt_model_t m, r;
  tt_checkpoint_info_t info;
  CHECK(tt_model_init(&m, &fake_model_desc, arena, sizeof(arena)) == TT_OK);
  CHECK(tt_checkpoint_save(&m, &nvm, NULL) == TT_OK); /* A: seq 1 */
  uint8_t a_state[FAKE_MODEL_STATE_SIZE];
  memcpy(a_state, arena, sizeof a_state);
  step(&m, 1.f);
  CHECK(tt_checkpoint_save(&m, &nvm, NULL) == TT_OK); /* B: seq 2 */
  const uint32_t b = (PAGES / 2u) * PAGE;
  uint8_t image[MEM_NVM_MAX_BYTES];
  memcpy(image, mem.bytes, sizeof image);

  /* Every single-bit flip anywhere in slot B's header or payload is caught by the CRC (or
   * the header checks), and restore falls back to slot A. */
  for (uint32_t byte = 0; byte < PAGE + FAKE_MODEL_STATE_SIZE; ++byte) {
    for (int bit = 0; bit < 8; bit += 3) {
      memcpy(mem.bytes, image, sizeof image);
      mem.bytes[b + byte] ^= (uint8_t)(1u << bit);
      CHECK(tt_model_init(&r, &fake_model_desc, arena2, sizeof(arena2)) == TT_OK);
      const tt_status_t st = tt_checkpoint_restore(&r, &nvm, &info);
      CHECK(st == TT_OK && info.slot == 0);
      CHECK(info.slot_status[1] == TT_ERR_CKPT_CORRUPT);
      CHECK(memcmp(arena2, a_state, sizeof a_state) == 0);
    }
  }
  /* The header page of B erased (a cut right after its erase): A is used, B reads "erased". */
  memcpy(mem.bytes, image, sizeof image);
  memset(mem.bytes + b, 0xFF, PAGE);
  CHECK(tt_checkpoint_restore(&r, &nvm, &info) == TT_OK);
  CHECK(info.slot == 0 && info.slot_status[1] == TT_ERR_NO_CHECKPOINT);
  /* A payload page of B erased. */
  memcpy(mem.bytes, image, sizeof image);
  memset(mem.bytes + b + PAGE, 0xFF, PAGE);
  CHECK(tt_checkpoint_restore(&r, &nvm, &info) == TT_OK && info.slot == 0);
  /* Both slots damaged: refused, the model keeps its state. */
  memcpy(mem.bytes, image, sizeof image);
  mem.bytes[PAGE + 5] ^= 0x10u;
  mem.bytes[b + PAGE + 5] ^= 0x10u;
  CHECK(tt_model_init(&r, &fake_model_desc, arena2, sizeof(arena2)) == TT_OK);
  uint8_t before[FAKE_MODEL_STATE_SIZE];
  memcpy(before, arena2, sizeof before);
  CHECK(tt_checkpoint_restore(&r, &nvm, &info) == TT_ERR_CKPT_CORRUPT);
  CHECK(info.slot == -1 && memcmp(arena2, before, sizeof before) == 0);
  CHECK(tt_model_steps(&r) == 0u);
  /* Another model's checkpoint (same sizes, another layout) is refused. */
  memcpy(mem.bytes, image, sizeof image);
  tt_model_t o;
  CHECK(tt_model_init(&o, &fake_model_desc_other, arena2, sizeof(arena2)) == TT_OK);
  memcpy(before, arena2, sizeof before);
  CHECK(tt_checkpoint_restore(&o, &nvm, &info) == TT_ERR_CKPT_MODEL);
  CHECK(info.slot_status[0] == TT_ERR_CKPT_MODEL && info.slot_status[1] == TT_ERR_CKPT_MODEL);
  CHECK(memcmp(arena2, before, sizeof before) == 0);
  /* ... and saving that model over it starts its own sequence in slot A. */
  CHECK(tt_checkpoint_save(&o, &nvm, &info) == TT_OK && info.slot == 0 && info.sequence == 1u);
  CHECK(tt_checkpoint_restore(&o, &nvm, &info) == TT_OK && info.slot == 0);
  /* The NVM failing to read is its own error. */
  mem.fail_reads = 1;
  CHECK(tt_checkpoint_restore(&o, &nvm, &info) == TT_ERR_NVM);
  CHECK(tt_checkpoint_save(&o, &nvm, &info) == TT_ERR_NVM);
  mem.fail_reads = 0;
}

static void test_refusals(void) {
  mem_nvm_t mem;
  tt_nvm_t nvm;
  mem_nvm_init(&mem, PAGE, PAGES, &nvm);
  tt_model_t m;
  CHECK(tt_model_init(&m, &fake_model_desc, arena, sizeof(arena)) == TT_OK);
  CHECK(tt_checkpoint_save(&m, &nvm, NULL) == TT_OK);
  uint8_t image[MEM_NVM_MAX_BYTES];
  memcpy(image, mem.bytes, sizeof image);
  /* A NaN parameter is never saved: the good checkpoint stays. */
  float* p1 = (float*)tt_model_param(&m, 1, NULL);
  const uint32_t nan = 0x7FC00000u;
  memcpy(&p1[1], &nan, sizeof nan);
  CHECK(tt_checkpoint_save(&m, &nvm, NULL) == TT_ERR_NONFINITE);
  CHECK(memcmp(image, mem.bytes, sizeof image) == 0 && mem.ops == 6u);
  p1[1] = 0.f;
  /* Geometry: each slot needs 3 pages of 64 B. */
  tt_nvm_t small = nvm;
  small.page_count = 5u;
  CHECK(tt_checkpoint_save(&m, &small, NULL) == TT_ERR_NVM);
  small.page_count = 6u;
  CHECK(tt_checkpoint_save(&m, &small, NULL) == TT_OK);
  small = nvm;
  small.page_size = 32u;
  CHECK(tt_checkpoint_save(&m, &small, NULL) == TT_ERR_NVM);
  small = nvm;
  small.erase = NULL;
  CHECK(tt_checkpoint_save(&m, &small, NULL) == TT_ERR_NULL);
  CHECK(tt_checkpoint_save(NULL, &nvm, NULL) == TT_ERR_NULL);
  CHECK(tt_checkpoint_save(&m, NULL, NULL) == TT_ERR_NULL);
  CHECK(tt_checkpoint_restore(NULL, &nvm, NULL) == TT_ERR_NULL);
}

int main(void) {
  test_crc_and_identity();
  test_save_restore();
  test_power_cut_every_operation();
  test_corruption();
  test_refusals();
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("checkpoint tests passed\n");
  return 0;
}
