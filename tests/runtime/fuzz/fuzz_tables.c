/* libFuzzer target: tt_model_init's table checks against schedule tables it did not produce
 * (a descriptor from another compiler version, flash corruption). The fuzzer rewrites fields
 * of the fake model's commands, buffer references and I/O descriptors (the arrays keep their
 * sizes); whatever tt_model_init accepts must then run under ASan/UBSan without touching
 * memory outside the arena, the pool or the arguments. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_library.h"
#include "tt/model.h"

#define A64 __attribute__((aligned(64)))
static uint8_t arena[320] A64;
/* Writable here: a kernel bound to write into the pool is the MPU's to stop on the device
 * (flash is read-only); this target checks that no binding leaves its region. */
static float pool[16] A64 = {1.f, 2.f, 3.f, 4.f};
static const tt_ref_t state[2] = {{TT_REGION_ARENA, 0u, 0u, 16u}, {TT_REGION_ARENA, 0u, 64u, 8u}};
static const tt_export_t exports[2] = {{"vadd", 0u, 3u, 1u, 0u}, {"axpy2", 1u, 2u, 0u, 0u}};
static const uint32_t constants[2] = {4u, 2u};
static const tt_ref_t refs0[] = {
    {TT_REGION_ARG, 2u, 0u, 16u}, {TT_REGION_ARG, 0u, 0u, 16u}, {TT_REGION_ARENA, 0u, 256u, 4u},
    {TT_REGION_ARG, 0u, 0u, 16u}, {TT_REGION_POOL, 0u, 0u, 16u}, {TT_REGION_ARENA, 0u, 192u, 16u},
    {TT_REGION_ARENA, 0u, 128u, 16u}, {TT_REGION_ARENA, 0u, 192u, 16u},
};
static const tt_cmd_t cmds0[] = {
    {TT_CMD_DISPATCH, 2u, 0u, 1u, 0u, 0u, {1u, 1u, 1u}, 0u, 0u},
    {TT_CMD_FILL, 1u, 0u, 0u, 4u, 0x3f800000u, {0u, 0u, 0u}, 2u, 0u},
    {TT_CMD_COPY, 2u, 0u, 0u, 0u, 0u, {0u, 0u, 0u}, 6u, 0u},
    {TT_CMD_DISPATCH, 3u, 1u, 0u, 0u, 0u, {1u, 1u, 1u}, 3u, 0u},
};
static const tt_io_t io0[] = {
    {{TT_REGION_ARG, 0u, 0u, 16u}, TT_DTYPE_F32, 1u, -1, {4u}},
    {{TT_REGION_ARG, 1u, 0u, 8u}, TT_DTYPE_F32, 1u, -1, {2u}},
    {{TT_REGION_ARG, 2u, 0u, 16u}, TT_DTYPE_F32, 2u, -1, {1u, 4u}},
    {{TT_REGION_ARG, 3u, 0u, 4u}, TT_DTYPE_I32, 1u, -1, {1u}},
    {{TT_REGION_ARG, 0u, 0u, 16u}, TT_DTYPE_F32, 1u, 0, {4u}},
    {{TT_REGION_ARG, 1u, 0u, 8u}, TT_DTYPE_F32, 1u, 1, {2u}},
    {{TT_REGION_ARENA, 0u, 256u, 4u}, TT_DTYPE_F32, 0u, -1, {0u}},
    {{TT_REGION_ARENA, 0u, 192u, 16u}, TT_DTYPE_F32, 2u, -1, {1u, 4u}},
};
#define NREFS (sizeof(refs0) / sizeof(refs0[0]))
#define NCMDS (sizeof(cmds0) / sizeof(cmds0[0]))
#define NIO (sizeof(io0) / sizeof(io0[0]))

static void must(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tt_ref_t refs[NREFS];
  tt_cmd_t cmds[NCMDS];
  tt_io_t io[NIO];
  memcpy(refs, refs0, sizeof refs);
  memcpy(cmds, cmds0, sizeof cmds);
  memcpy(io, io0, sizeof io);
  /* Edits of 4 bytes: [target field selector, index, value lo, value hi]. */
  for (size_t i = 0; i + 3u < size; i += 4u) {
    const uint32_t v = (uint32_t)data[i + 2] | ((uint32_t)data[i + 3] << 8);
    const uint8_t k = data[i + 1];
    tt_ref_t* r = &refs[k % NREFS];
    tt_cmd_t* c = &cmds[k % NCMDS];
    tt_io_t* o = &io[4u + k % 4u]; /* outputs: inputs are the caller's buffers, sized by them */
    switch (data[i] % 16u) {
      case 0: r->region = (uint16_t)(v % 4u); break;
      case 1: r->index = (uint16_t)(v % 6u); break;
      case 2: r->offset = v; break;
      case 3: r->length = v; break;
      case 4: c->op = (uint8_t)(v % 4u); break;
      case 5: c->ref_count = (uint8_t)(v % 4u); break; /* stays within refs[] below */
      case 6: c->pattern_length = (uint16_t)(v % 6u); break;
      case 7: c->pattern = v * 2654435761u; break;
      case 8: c->workgroups[v % 3u] = (uint32_t)(k % 4u); break;
      case 9: c->export_index = (uint16_t)(v % 3u); break;
      case 10: c->constant_count = (uint16_t)(v % 3u); break;
      case 11: o->ref.offset = v; break;
      case 12: o->ref.length = v; break;
      case 13: o->ref.region = (uint16_t)(v % 4u); break;
      case 14: o->tied_input = (int16_t)((int)(v % 6u) - 1); break;
      default: c->ref_first = v % NREFS; c->constant_first = 0u; break;
    }
  }
  for (size_t c = 0; c < NCMDS; ++c) { /* the arrays' real sizes (not in the descriptor) */
    if (cmds[c].ref_first + cmds[c].ref_count > NREFS) cmds[c].ref_count = 0u;
    if (cmds[c].constant_count > 2u) cmds[c].constant_count = 2u;
  }
  const tt_function_t functions[2] = {{"train_step", 0u, 3u, 4u, 3u, &io[0], &io[4]},
                                      {"predict", 3u, 1u, 3u, 1u, &io[0], &io[7]}};
  const tt_model_desc_t desc = {
      TT_IREE_ABI_VERSION, "fake_linked", fake_linked_library_query, (const uint8_t*)pool,
      sizeof(pool), sizeof(arena), 128u, NULL, 2u, state, 2u, exports, cmds, refs, constants,
      2u, functions, -1, 0, 1,
  };
  tt_model_t m;
  if (tt_model_init(&m, &desc, arena, sizeof(arena)) != TT_OK) return 0;
  static float x[16] A64 = {1.f, 2.f, 3.f, 4.f};
  static float p[16] A64;
  static int32_t label[16] A64 = {1};
  float loss, logits[128]; /* >= any output the table checks let through (arena: 320 B) */
  const tt_status_t st = tt_train_step(&m, x, label, &loss);
  must(st == TT_OK || st == TT_ERR_KERNEL_FAILED || st == TT_ERR_NONFINITE ||
       st == TT_ERR_BAD_TABLE || st == TT_ERR_LABEL_RANGE);
  (void)tt_predict(&m, x, logits);
  const void* in[4] = {p, p + 4, x, label};
  (void)tt_run(&m, 0, in, NULL);
  return 0;
}
