/* Fault-containment firmware (tests/python/test_reliability_faults.py): the real runtime and
 * board support with deliberately broken schedules, chosen by the first byte of the host file
 * tt_fault.cfg:
 *   'w'  a schedule entry binds a kernel's output to the constant pool, which is in flash:
 *        tt_model_init accepts it (the buffer is inside its region), the MPU stops the write;
 *   's'  a kernel recurses until the stack runs into the guard region below it;
 *   'o'  the same schedule with the output in the arena: runs, then "OK" and the MEM report.
 * The fault handler prints "FAULT: ..." and ends the run with exit status 121. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "tt/model.h"

#define A64 __attribute__((aligned(64)))

static volatile uint32_t tt_depth_sink;

static uint32_t tt_deep(uint32_t n) {
  volatile uint8_t frame[256];
  frame[n & 255u] = (uint8_t)n;
  tt_depth_sink += frame[(n * 7u) & 255u];
  return n == 0u ? 0u : tt_deep(n - 1u) + frame[3];
}

static int k_store(const tt_iree_environment_t* env, const tt_iree_dispatch_state_t* ds,
                   const tt_iree_workgroup_state_t* wg) {
  (void)env;
  (void)wg;
  uint32_t* out = (uint32_t*)ds->binding_ptrs[0];
  for (size_t i = 0; i < ds->binding_lengths[0] / 4u; ++i) out[i] = 0xDEADBEEFu;
  return 0;
}

static int k_deep(const tt_iree_environment_t* env, const tt_iree_dispatch_state_t* ds,
                  const tt_iree_workgroup_state_t* wg) {
  (void)env;
  (void)wg;
  return (int)(tt_deep(ds->constants[0]) == 0xFFFFFFFFu);
}

static const tt_iree_kernel_fn_t k_ptrs[2] = {k_store, k_deep};
static const char* const k_names[2] = {"store", "deep"};
static const tt_iree_dispatch_attrs_t k_attrs[2] = {
    {0u, 0u, 0u, 1u, 1u, 1u, 1u, 0u, {0u, 0u, 0u, 0u, 0u}},
    {0u, 0u, 1u, 1u, 1u, 1u, 1u, 0u, {0u, 0u, 0u, 0u, 0u}},
};
static const tt_iree_library_header_t k_header = {6u, "fault_linked", 0u, 0};
static const tt_iree_library_t k_library = {
    &k_header, {0u, NULL}, {2u, k_ptrs, k_attrs, NULL, NULL, k_names, NULL, NULL, NULL, NULL},
    {0u}, {0u, NULL}};

static const tt_iree_library_header_t** k_query(uint32_t max_version,
                                                const tt_iree_environment_t* env) {
  (void)env;
  return max_version == 6u ? (const tt_iree_library_header_t**)&k_library : NULL;
}

static const uint8_t pool[64] A64 = {1u}; /* const: in flash */
static const tt_export_t exports[2] = {{"store", 0u, 1u, 0u, 0u}, {"deep", 1u, 1u, 1u, 0u}};
static const uint32_t constants[1] = {100000u}; /* recursion depth: ~25 MB of stack */
static const tt_ref_t refs[3] = {
    {TT_REGION_POOL, 0u, 0u, 64u},    /* 0: the broken entry: output in flash */
    {TT_REGION_ARENA, 0u, 0u, 64u},   /* 1: the same kernel into the arena */
    {TT_REGION_ARENA, 0u, 64u, 64u},  /* 2: binding of the deep kernel */
};
static const tt_cmd_t cmds[3] = {
    {TT_CMD_DISPATCH, 1u, 0u, 0u, 0u, 0u, {1u, 1u, 1u}, 0u, 0u},
    {TT_CMD_DISPATCH, 1u, 0u, 0u, 0u, 0u, {1u, 1u, 1u}, 1u, 0u},
    {TT_CMD_DISPATCH, 1u, 1u, 1u, 0u, 0u, {1u, 1u, 1u}, 2u, 0u},
};
static const tt_function_t functions[3] = {
    {"write_flash", 0u, 1u, 0u, 0u, NULL, NULL},
    {"write_arena", 1u, 1u, 0u, 0u, NULL, NULL},
    {"deep_stack", 2u, 1u, 0u, 0u, NULL, NULL},
};
static const tt_model_desc_t desc = {
    TT_IREE_ABI_VERSION, "fault_linked", k_query, pool, sizeof(pool), 128u, 0u, NULL, 0u, NULL,
    2u, exports, cmds, refs, constants, 3u, functions, -1, -1, -1,
};

static uint8_t arena[128] A64;

int main(void) {
  char mode = 'o';
  int fd = tt_board_open("tt_fault.cfg", TT_BOARD_READ);
  if (fd >= 0) {
    (void)tt_board_read(fd, &mode, 1u);
    tt_board_close(fd);
  }
  tt_model_t model;
  tt_status_t st = tt_model_init(&model, &desc, arena, sizeof(arena));
  tt_board_puts("init ");
  tt_board_puts(tt_status_name(st));
  tt_board_puts("\n");
  if (st != TT_OK) return 2;
  const int fn = mode == 'w' ? 0 : mode == 's' ? 2 : 1;
  st = tt_run(&model, fn, NULL, NULL);
  tt_board_puts("run ");
  tt_board_puts(tt_status_name(st));
  tt_board_puts("\n");
  uint32_t word;
  memcpy(&word, arena, sizeof word);
  tt_board_puts(word == 0xDEADBEEFu ? "OK arena written\n" : "arena untouched\n");
  return st == TT_OK ? 0 : 3;
}
