/* A small model over the fake kernel library (see fake_model.h). */
#include "fake_model.h"

#include "fake_library.h"

#define A64 __attribute__((aligned(64)))

static const float fm_pool[16] A64 = {0.f};
static const float fm_state_init[32] A64 = {0.5f, 1.5f, 2.5f, 3.5f, 0.f, 0.f, 0.f, 0.f,
                                            0.f,  0.f,  0.f,  0.f,  0.f, 0.f, 0.f, 0.f,
                                            -1.f, -2.f};
static const tt_ref_t fm_state[2] = {{TT_REGION_ARENA, 0u, 0u, 16u},
                                     {TT_REGION_ARENA, 0u, 64u, 8u}};
static const tt_export_t fm_exports[2] = {{"vadd", 0u, 3u, 1u, 0u}, {"axpy2", 1u, 2u, 0u, 0u}};
static const uint32_t fm_constants[1] = {4u};
static const tt_ref_t fm_refs[] = {
    /* 0,1: axpy2 p0 += 2 x */ {TT_REGION_ARG, 2u, 0u, 16u}, {TT_REGION_ARG, 0u, 0u, 16u},
    /* 2: loss fill */ {TT_REGION_ARENA, 0u, 256u, 4u},
    /* 3..5: predict p0 + x */ {TT_REGION_ARG, 0u, 0u, 16u}, {TT_REGION_ARG, 2u, 0u, 16u},
    {TT_REGION_ARENA, 0u, 192u, 16u},
};
static const tt_cmd_t fm_cmds[] = {
    {TT_CMD_DISPATCH, 2u, 0u, 1u, 0u, 0u, {1u, 1u, 1u}, 0u, 0u},
    {TT_CMD_FILL, 1u, 0u, 0u, 4u, 0x3f800000u, {0u, 0u, 0u}, 2u, 0u},
    {TT_CMD_DISPATCH, 3u, 1u, 0u, 0u, 0u, {1u, 1u, 1u}, 3u, 0u},
};
#define FM_IO(p1_rank, p1_d0, p1_d1)                                            \
  {                                                                             \
    /* train inputs */                                                          \
    {{TT_REGION_ARG, 0u, 0u, 16u}, TT_DTYPE_F32, 1u, -1, {4u}},                 \
    {{TT_REGION_ARG, 1u, 0u, 8u}, TT_DTYPE_F32, p1_rank, -1, {p1_d0, p1_d1}},   \
    {{TT_REGION_ARG, 2u, 0u, 16u}, TT_DTYPE_F32, 2u, -1, {1u, 4u}},             \
    {{TT_REGION_ARG, 3u, 0u, 4u}, TT_DTYPE_I32, 1u, -1, {1u}},                  \
    /* train outputs */                                                         \
    {{TT_REGION_ARG, 0u, 0u, 16u}, TT_DTYPE_F32, 1u, 0, {4u}},                  \
    {{TT_REGION_ARG, 1u, 0u, 8u}, TT_DTYPE_F32, p1_rank, 1, {p1_d0, p1_d1}},    \
    {{TT_REGION_ARENA, 0u, 256u, 4u}, TT_DTYPE_F32, 0u, -1, {0u}},              \
    /* predict output */                                                        \
    {{TT_REGION_ARENA, 0u, 192u, 16u}, TT_DTYPE_F32, 2u, -1, {1u, 4u}},         \
  }
static const tt_io_t fm_io[] = FM_IO(1u, 2u, 0u);
static const tt_io_t fm_io_other[] = FM_IO(2u, 2u, 1u);
static const tt_function_t fm_functions[] = {
    {"train_step", 0u, 2u, 4u, 3u, &fm_io[0], &fm_io[4]},
    {"predict", 2u, 1u, 3u, 1u, &fm_io[0], &fm_io[7]},
};
static const tt_function_t fm_functions_other[] = {
    {"train_step", 0u, 2u, 4u, 3u, &fm_io_other[0], &fm_io_other[4]},
    {"predict", 2u, 1u, 3u, 1u, &fm_io_other[0], &fm_io_other[7]},
};

/* predict(p0, p1, x) has 3 inputs: predict's input list is the train list without the label. */
const tt_model_desc_t fake_model_desc = {
    TT_IREE_ABI_VERSION, "fake_linked", fake_linked_library_query, (const uint8_t*)fm_pool,
    sizeof(fm_pool), FAKE_MODEL_ARENA_SIZE, FAKE_MODEL_STATE_SIZE,
    (const uint8_t*)fm_state_init, 2u, fm_state, 2u, fm_exports, fm_cmds, fm_refs,
    fm_constants, 2u, fm_functions, -1, 0, 1,
};
const tt_model_desc_t fake_model_desc_other = {
    TT_IREE_ABI_VERSION, "fake_linked", fake_linked_library_query, (const uint8_t*)fm_pool,
    sizeof(fm_pool), FAKE_MODEL_ARENA_SIZE, FAKE_MODEL_STATE_SIZE,
    (const uint8_t*)fm_state_init, 2u, fm_state, 2u, fm_exports, fm_cmds, fm_refs,
    fm_constants, 2u, fm_functions_other, -1, 0, 1,
};
