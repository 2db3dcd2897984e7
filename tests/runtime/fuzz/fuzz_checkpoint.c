/* libFuzzer target: tt_checkpoint_restore / inspect / save on NVM contents the runtime did
 * not write (flash that was corrupted, torn, or written by something else).
 *
 * Byte 0 picks how the rest becomes an NVM image:
 *   0: the raw bytes are the image (page size 64 or 128 from byte 1);
 *   1: a valid two-checkpoint image, then the rest XORs bytes at fuzzed positions;
 *   2: a record with fuzzed header fields and a *correct* CRC (reaches the checks after it).
 * Properties checked (abort on violation): restore changes the model only when it returns
 * TT_OK; after a successful save, restore returns exactly the saved state. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_model.h"
#include "mem_nvm.h"
#include "tt/checkpoint.h"

#define A64 __attribute__((aligned(64)))
static uint8_t arena[FAKE_MODEL_ARENA_SIZE] A64;
static mem_nvm_t mem;

static void must(int cond) {
  if (!cond) abort();
}

static void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2u) return 0;
  tt_nvm_t nvm;
  const uint32_t page = (data[1] & 1u) ? 128u : 64u;
  mem_nvm_init(&mem, page, 8u, &nvm);
  tt_model_t m;
  must(tt_model_init(&m, &fake_model_desc, arena, sizeof(arena)) == TT_OK);
  const uint8_t mode = data[0] % 3u;
  data += 2;
  size -= 2;
  if (mode == 0u) {
    const size_t n = size < page * 8u ? size : page * 8u;
    memcpy(mem.bytes, data, n);
    nvm.page_count = (uint32_t)(n / page) < 2u ? 2u : (uint32_t)(n / page);
  } else if (mode == 1u) {
    must(tt_checkpoint_save(&m, &nvm, NULL) == TT_OK);
    float* p0 = (float*)tt_model_param(&m, 0, NULL);
    p0[0] += 1.0f;
    must(tt_checkpoint_save(&m, &nvm, NULL) == TT_OK);
    for (size_t i = 0; i + 2u < size; i += 3u) {
      const uint32_t pos = ((uint32_t)data[i] | ((uint32_t)data[i + 1] << 8)) % (page * 8u);
      mem.bytes[pos] ^= data[i + 2];
    }
  } else {
    uint8_t h[64];
    memset(h, 0, sizeof h);
    memcpy(h, data, size < 36u ? size : 36u);
    if (size > 0u && (data[0] & 1u)) put32(h, TT_CKPT_MAGIC); /* mostly a plausible header */
    if (size > 1u && (data[1] & 1u)) {
      h[4] = 1u;
      h[5] = 0u;
      h[6] = 64u;
      h[7] = 0u;
    }
    if (size > 2u && (data[2] & 1u)) put32(h + 28, tt_checkpoint_model_id(&fake_model_desc));
    const size_t rest = size > 36u ? size - 36u : 0u;
    const uint32_t payload = (uint32_t)(rest < page * 3u ? rest : page * 3u);
    memset(mem.bytes, 0xFF, sizeof mem.bytes);
    memcpy(mem.bytes + page, data + 36, payload);
    /* The CRC over the header and the bytes its payload-size field claims (clamped). */
    uint32_t claimed = (uint32_t)h[12] | ((uint32_t)h[13] << 8) | ((uint32_t)h[14] << 16) |
                       ((uint32_t)h[15] << 24);
    if (claimed > page * 3u) claimed = page * 3u;
    put32(h + 60, tt_crc32(tt_crc32(0u, h, 60u), mem.bytes + page, claimed));
    memcpy(mem.bytes, h, sizeof h);
  }
  uint8_t before[FAKE_MODEL_STATE_SIZE];
  memcpy(before, arena, sizeof before);
  tt_checkpoint_info_t info;
  const tt_status_t si = tt_checkpoint_inspect(&m, &nvm, &info);
  const tt_status_t sr = tt_checkpoint_restore(&m, &nvm, &info);
  must(si == sr);
  if (sr != TT_OK) {
    must(memcmp(before, arena, sizeof before) == 0 && tt_model_steps(&m) == 0u);
    must(info.slot == -1);
  } else {
    must(info.slot == 0 || info.slot == 1);
  }
  if (tt_checkpoint_save(&m, &nvm, &info) == TT_OK) {
    uint8_t saved[FAKE_MODEL_STATE_SIZE];
    memcpy(saved, arena, sizeof saved);
    const uint64_t steps = tt_model_steps(&m);
    memset(arena, 0, FAKE_MODEL_STATE_SIZE);
    tt_checkpoint_info_t again;
    must(tt_checkpoint_restore(&m, &nvm, &again) == TT_OK);
    must(again.slot == info.slot && again.sequence == info.sequence);
    must(memcmp(saved, arena, sizeof saved) == 0 && tt_model_steps(&m) == steps);
  }
  return 0;
}
