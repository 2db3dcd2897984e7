/* Host tests of the schedule interpreter and API against a fake ABI-v6 kernel library. */
#include <stdio.h>
#include <string.h>

#include "fake_library.h"
#include "tt/model.h"

static int failures;
#define CHECK(cond)                                                \
  do {                                                             \
    if (!(cond)) {                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                  \
    }                                                              \
  } while (0)

#define A64 __attribute__((aligned(64)))

static const float pool[32] A64 = {10.f, 20.f, 30.f, 40.f, [16] = 5.f};
static const float state_init[16] A64 = {0.5f, 1.5f, 2.5f, 3.5f};

static const tt_ref_t state[1] = {{TT_REGION_ARENA, 0u, 0u, 16u}};
static tt_export_t exports[3] = {{"vadd", 0u, 3u, 1u, 0u}, {"axpy2", 1u, 2u, 0u, 0u}, {"fail", 2u, 1u, 0u, 0u}};
static const uint32_t constants[3] = {2u, 1u, 4u};
static tt_ref_t refs[] = {
    /* 0: fill */ {TT_REGION_ARENA, 0u, 64u, 4u},
    /* 1,2: copy */ {TT_REGION_POOL, 0u, 0u, 16u}, {TT_REGION_ARENA, 0u, 128u, 16u},
    /* 3..5: vadd x + pool copy */ {TT_REGION_ARG, 1u, 0u, 16u}, {TT_REGION_ARENA, 0u, 128u, 16u},
    {TT_REGION_ARENA, 0u, 192u, 16u},
    /* 6,7: axpy2 into p */ {TT_REGION_ARENA, 0u, 192u, 16u}, {TT_REGION_ARG, 0u, 0u, 16u},
    /* 8..10: loss = 1 + pool[16] */ {TT_REGION_ARENA, 0u, 64u, 4u}, {TT_REGION_POOL, 0u, 64u, 4u},
    {TT_REGION_ARENA, 0u, 256u, 4u},
    /* 11..13: predict p + x */ {TT_REGION_ARG, 0u, 0u, 16u}, {TT_REGION_ARG, 1u, 0u, 16u},
    {TT_REGION_ARENA, 0u, 192u, 16u},
    /* 14: fail */ {TT_REGION_ARENA, 0u, 0u, 4u},
};
static const tt_cmd_t cmds[] = {
    {TT_CMD_FILL, 1u, 0u, 0u, 4u, 0x3f800000u, {0u, 0u, 0u}, 0u, 0u},
    {TT_CMD_COPY, 2u, 0u, 0u, 0u, 0u, {0u, 0u, 0u}, 1u, 0u},
    {TT_CMD_DISPATCH, 3u, 1u, 0u, 0u, 0u, {2u, 1u, 1u}, 3u, 0u},
    {TT_CMD_DISPATCH, 2u, 0u, 1u, 0u, 0u, {1u, 1u, 1u}, 6u, 0u},
    {TT_CMD_DISPATCH, 3u, 1u, 0u, 0u, 0u, {1u, 1u, 1u}, 8u, 1u},
    /* predict */ {TT_CMD_DISPATCH, 3u, 1u, 0u, 0u, 0u, {1u, 1u, 1u}, 11u, 2u},
    /* failing */ {TT_CMD_DISPATCH, 1u, 0u, 2u, 0u, 0u, {1u, 1u, 1u}, 14u, 0u},
};
static const tt_io_t io[] = {
    {{TT_REGION_ARG, 0u, 0u, 16u}, TT_DTYPE_F32, 1u, -1, {4u}},
    {{TT_REGION_ARG, 1u, 0u, 16u}, TT_DTYPE_F32, 1u, -1, {4u}},
    {{TT_REGION_ARG, 2u, 0u, 4u}, TT_DTYPE_I32, 1u, -1, {1u}},
    {{TT_REGION_ARG, 0u, 0u, 16u}, TT_DTYPE_F32, 1u, 0, {4u}},
    {{TT_REGION_ARENA, 0u, 256u, 4u}, TT_DTYPE_F32, 0u, -1, {0u}},
    /* predict: inputs p, x; output */
    {{TT_REGION_ARG, 0u, 0u, 16u}, TT_DTYPE_F32, 1u, -1, {4u}},
    {{TT_REGION_ARG, 1u, 0u, 16u}, TT_DTYPE_F32, 1u, -1, {4u}},
    {{TT_REGION_ARENA, 0u, 192u, 16u}, TT_DTYPE_F32, 2u, -1, {1u, 4u}},
};
static const tt_function_t functions[] = {
    {"train_step", 0u, 5u, 3u, 2u, &io[0], &io[3]},
    {"predict", 5u, 1u, 2u, 1u, &io[5], &io[7]},
    {"broken", 6u, 1u, 0u, 0u, NULL, NULL},
};
static tt_model_desc_t desc = {
    TT_IREE_ABI_VERSION, "fake_linked", fake_linked_library_query, (const uint8_t*)pool,
    sizeof(pool), 320u, 64u, (const uint8_t*)state_init, 1u, state, 3u, exports, cmds, refs,
    constants, 3u, functions, -1, 0, 1,
};

static uint8_t arena[512] A64;

static void test_train_and_predict(void) {
  tt_model_t model;
  CHECK(tt_model_required_bytes(&desc) == 320u);
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_OK);
  size_t bytes = 0;
  float* p = (float*)tt_model_param(&model, 0, &bytes);
  CHECK(p == (float*)(void*)arena && bytes == 16u);
  CHECK(p[0] == 0.5f && p[3] == 3.5f);
  static const float x[4] A64 = {1.f, 2.f, 3.f, 4.f};
  static const int32_t label[16] A64 = {3};
  float loss = -1.f;
  fake_calls = 0;
  CHECK(tt_train_step(&model, x, label, &loss) == TT_OK);
  CHECK(fake_calls == 4); /* vadd: 2 workgroups, axpy2, vadd */
  CHECK(loss == 6.0f);
  const float expect[4] = {0.5f + 2.f * 11.f, 1.5f + 2.f * 22.f, 2.5f + 2.f * 33.f,
                           3.5f + 2.f * 44.f};
  CHECK(memcmp(p, expect, sizeof(expect)) == 0);
  float logits[4];
  CHECK(tt_predict(&model, x, logits) == TT_OK);
  for (int i = 0; i < 4; ++i) CHECK(logits[i] == expect[i] + x[i]);
  CHECK(tt_model_find_function(&model, "predict") == 1);
  CHECK(tt_model_find_function(&model, "nope") == -1);
  /* Generic tt_run with an explicit output copy and the tied output pointer. */
  static float p2[4] A64 = {0.f, 0.f, 0.f, 0.f};
  const void* in[3] = {p2, x, label};
  float loss2 = 0.f;
  void* out[2] = {NULL, &loss2};
  CHECK(tt_run(&model, 0, in, out) == TT_OK);
  CHECK(loss2 == 6.0f && p2[0] == 22.f);
  CHECK(tt_model_output(&model, 0, 0, in) == (const void*)p2);
}

static void test_errors(void) {
  tt_model_t model;
  memset(&model, 0xAB, sizeof(model));
  CHECK(tt_model_init(&model, &desc, arena, 100u) == TT_ERR_ARENA_TOO_SMALL);
  CHECK(model.desc == NULL && model.arena == NULL); /* cleared on entry */
  CHECK(tt_model_init(&model, &desc, arena + 4, 400u) == TT_ERR_MISALIGNED);
  CHECK(tt_model_init(NULL, &desc, arena, sizeof(arena)) == TT_ERR_NULL);
  CHECK(tt_model_init(&model, NULL, arena, sizeof(arena)) == TT_ERR_NULL);
  CHECK(tt_model_init(&model, &desc, NULL, sizeof(arena)) == TT_ERR_NULL);

  tt_model_desc_t bad = desc;
  bad.library_query = fake_v5_library_query;
  CHECK(tt_model_init(&model, &bad, arena, sizeof(arena)) == TT_ERR_ABI_VERSION);
  bad = desc;
  bad.abi_version = 5u;
  CHECK(tt_model_init(&model, &bad, arena, sizeof(arena)) == TT_ERR_ABI_VERSION);
  bad = desc;
  bad.library_name = "other_linked";
  CHECK(tt_model_init(&model, &bad, arena, sizeof(arena)) == TT_ERR_LIBRARY_MISMATCH);
  bad = desc;
  bad.library_query = NULL;
  CHECK(tt_model_init(&model, &bad, arena, sizeof(arena)) == TT_ERR_NULL);

  exports[1].name = "axpy3"; /* kernel renamed: schedule from another compile */
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_ERR_KERNEL_MISMATCH);
  exports[1].name = "axpy2";
  exports[1].ordinal = 7u; /* no such export in the library */
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_ERR_KERNEL_MISMATCH);
  exports[1].ordinal = 1u;
  exports[0].binding_count = 4u;
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_ERR_KERNEL_MISMATCH);
  exports[0].binding_count = 3u;
  refs[5].offset = 400u; /* past the arena */
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_ERR_BAD_TABLE);
  refs[5].offset = 196u; /* inside the arena but not 64-byte aligned: kernels assume it */
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_ERR_BAD_TABLE);
  exports[0].unaligned_ok = 1u << 1; /* another binding may be unaligned: still refused */
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_ERR_BAD_TABLE);
  exports[0].unaligned_ok = 1u << 2; /* the kernel declares no alignment for binding 2 */
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_OK);
  exports[0].unaligned_ok = 0u;
  refs[5].offset = 192u;
  refs[3].index = 3u; /* argument 3 of a 3-argument function */
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_ERR_BAD_TABLE);
  refs[3].index = 1u;
  refs[9].offset = 16u; /* a pool binding off the 64-byte grid */
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_ERR_BAD_TABLE);
  refs[9].offset = 64u;
  refs[3].offset = 4u; /* an argument binding off the grid */
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_ERR_BAD_TABLE);
  refs[3].offset = 0u;
  refs[3].region = 9u; /* unknown region */
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_ERR_BAD_TABLE);
  refs[3].region = TT_REGION_ARG;
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_OK);

  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_OK);
  static const float x[8] A64 = {1.f};
  static const int32_t label[16] A64 = {0};
  float loss = 7.f;
  CHECK(tt_train_step(&model, (const uint8_t*)x + 4, label, &loss) == TT_ERR_MISALIGNED);
  CHECK(loss == 0.0f); /* cleared on entry */
  CHECK(tt_train_step(&model, NULL, label, &loss) == TT_ERR_NULL);
  CHECK(tt_train_step(&model, x, NULL, &loss) == TT_ERR_NULL);
  CHECK(tt_train_step(NULL, x, label, &loss) == TT_ERR_NULL);
  CHECK(tt_run(&model, 2, NULL, NULL) == TT_ERR_KERNEL_FAILED); /* kernel returned -1 */
  CHECK(tt_run(&model, 3, NULL, NULL) == TT_ERR_BAD_INDEX);
  CHECK(tt_run(&model, -1, NULL, NULL) == TT_ERR_BAD_INDEX);
  CHECK(tt_run(&model, 0, NULL, NULL) == TT_ERR_NULL);
  CHECK(tt_model_param(&model, 1, NULL) == NULL);
  CHECK(tt_predict(&model, (const uint8_t*)x + 4, NULL) == TT_ERR_NULL);
  float logits[4];
  CHECK(tt_predict(&model, (const uint8_t*)x + 4, logits) == TT_ERR_MISALIGNED);
  tt_model_desc_t no_train = desc;
  no_train.train_function = -1;
  no_train.predict_function = -1;
  tt_model_t m2;
  CHECK(tt_model_init(&m2, &no_train, arena, sizeof(arena)) == TT_OK);
  CHECK(tt_train_step(&m2, x, label, &loss) == TT_ERR_NO_FUNCTION);
  CHECK(tt_predict(&m2, x, logits) == TT_ERR_NO_FUNCTION);
  CHECK(strcmp(tt_status_name(TT_ERR_ARENA_TOO_SMALL), "TT_ERR_ARENA_TOO_SMALL") == 0);
  CHECK(strcmp(tt_status_name(TT_ERR_NONFINITE), "TT_ERR_NONFINITE") == 0);
  CHECK(strcmp(tt_status_name((tt_status_t)-999), "TT_ERR_UNKNOWN") == 0);
  CHECK(strstr(tt_status_string(TT_ERR_LABEL_RANGE), "label") != NULL);
  /* Every code has its own name and description. */
  for (int a = 0; a >= -16; --a) {
    CHECK(strcmp(tt_status_name((tt_status_t)a), "TT_ERR_UNKNOWN") != 0);
    for (int b = a - 1; b >= -16; --b) {
      CHECK(strcmp(tt_status_name((tt_status_t)a), tt_status_name((tt_status_t)b)) != 0);
      CHECK(strcmp(tt_status_string((tt_status_t)a), tt_status_string((tt_status_t)b)) != 0);
    }
  }
}

/* Labels: the model has 4 classes (predict's logits are {1, 4}); 4 is the first bad one. The
 * label needs no alignment (it is copied), so it is also passed at an odd address. */
static void test_label_range(void) {
  tt_model_t model;
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_OK);
  static const float x[4] A64 = {1.f, 2.f, 3.f, 4.f};
  float before[4], loss = 0.f;
  memcpy(before, tt_model_param(&model, 0, NULL), sizeof(before));
  static uint8_t buf[16] A64;
  const int32_t bad[3] = {4, -1, 2147483647};
  for (int i = 0; i < 3; ++i) {
    memcpy(buf + 1, &bad[i], sizeof(int32_t));
    fake_calls = 0;
    CHECK(tt_train_step(&model, x, buf + 1, &loss) == TT_ERR_LABEL_RANGE);
    CHECK(fake_calls == 0); /* refused before any kernel */
    CHECK(memcmp(before, tt_model_param(&model, 0, NULL), sizeof(before)) == 0);
  }
  CHECK(tt_model_steps(&model) == 0u);
  const int32_t last = 3; /* classes - 1 */
  memcpy(buf + 1, &last, sizeof last);
  CHECK(tt_train_step(&model, x, buf + 1, &loss) == TT_OK);
  CHECK(loss == 6.0f && tt_model_steps(&model) == 1u);
  const int32_t zero = 0;
  CHECK(tt_train_step(&model, x, &zero, &loss) == TT_OK);
  CHECK(tt_model_steps(&model) == 2u && tt_model_rejected_steps(&model) == 0u);
}

/* A NaN or Inf pixel is refused before any kernel runs; the state is unchanged and counted. */
static void test_nonfinite_input(void) {
  tt_model_t model;
  CHECK(tt_model_init(&model, &desc, arena, sizeof(arena)) == TT_OK);
  static float x[4] A64 = {1.f, 2.f, 3.f, 4.f};
  static const int32_t label[16] A64 = {1};
  float before[4], loss = 1.f;
  memcpy(before, tt_model_param(&model, 0, NULL), sizeof(before));
  const uint32_t patterns[3] = {0x7FC00000u /* NaN */, 0x7F800000u /* +Inf */,
                                0xFF800001u /* -NaN, signalling */};
  for (int i = 0; i < 3; ++i) {
    memcpy(&x[2], &patterns[i], sizeof(float));
    fake_calls = 0;
    CHECK(tt_train_step(&model, x, label, &loss) == TT_ERR_NONFINITE);
    CHECK(fake_calls == 0);
    CHECK(memcmp(before, tt_model_param(&model, 0, NULL), sizeof(before)) == 0);
    float logits[4];
    CHECK(tt_predict(&model, x, logits) == TT_ERR_NONFINITE);
    CHECK(fake_calls == 0);
  }
  CHECK(tt_model_rejected_steps(&model) == 3u && tt_model_steps(&model) == 0u);
  x[2] = 1e38f; /* large but finite: accepted (p[2] becomes 2.5 + 2 * 1e38) */
  CHECK(tt_train_step(&model, x, label, &loss) == TT_OK);
  CHECK(tt_model_state_finite(&model));
  /* The step itself makes a parameter overflow to Inf (2e38 + 2e38): reported and counted. */
  CHECK(tt_train_step(&model, x, label, &loss) == TT_ERR_NONFINITE);
  CHECK(!tt_model_state_finite(&model));
  CHECK(tt_model_rejected_steps(&model) == 4u && tt_model_steps(&model) == 1u);
}

/* With SGD momentum the state is the parameters, then their momentum buffers: predict takes
 * (and binds) only the leading state tensors, train_step must take all of them. */
static void test_predict_binds_the_leading_state(void) {
  static const tt_ref_t state2[2] = {{TT_REGION_ARENA, 0u, 0u, 16u},
                                     {TT_REGION_ARENA, 0u, 64u, 16u}};
  tt_model_desc_t d = desc;
  d.state = state2;
  d.state_count = 2u;
  d.state_size = 128u;
  d.state_init = NULL;
  tt_model_t model;
  CHECK(tt_model_init(&model, &d, arena, sizeof(arena)) == TT_OK);
  float* p = (float*)tt_model_param(&model, 0, NULL);
  float* v = (float*)tt_model_param(&model, 1, NULL);
  CHECK(p != NULL && v != NULL && (uint8_t*)v == arena + 64);
  for (int i = 0; i < 4; ++i) {
    p[i] = (float)i;
    v[i] = 100.f;
  }
  static const float x[4] A64 = {1.f, 2.f, 3.f, 4.f};
  static const int32_t label[16] A64 = {3};
  float logits[4], loss = -1.f;
  CHECK(tt_predict(&model, x, logits) == TT_OK);
  for (int i = 0; i < 4; ++i) CHECK(logits[i] == (float)i + x[i]);
  /* train_step(p, x, label) leaves the second state tensor unbound: a table error. */
  fake_calls = 0;
  CHECK(tt_train_step(&model, x, label, &loss) == TT_ERR_BAD_TABLE);
  CHECK(fake_calls == 0 && v[0] == 100.f);
}

/* train_step's input x placed by the compiler in the transient arena at 256 (the loss's bytes,
 * written only after x's last read): the same tables with x's refs moved there. */
static void test_input_in_arena(void) {
  static tt_ref_t refs2[sizeof(refs) / sizeof(refs[0])];
  static tt_io_t io2[sizeof(io) / sizeof(io[0])];
  static tt_function_t functions2[3];
  memcpy(refs2, refs, sizeof(refs));
  memcpy(io2, io, sizeof(io));
  memcpy(functions2, functions, sizeof(functions));
  const tt_ref_t in_arena = {TT_REGION_ARENA, 0u, 256u, 16u};
  refs2[3] = in_arena;
  io2[1].ref = in_arena;
  functions2[0].inputs = &io2[0];
  functions2[0].outputs = &io2[3];
  tt_model_desc_t d = desc;
  d.refs = refs2;
  d.functions = functions2;
  tt_model_t model;
  CHECK(tt_model_init(&model, &d, arena, sizeof(arena)) == TT_OK);
  CHECK(tt_model_input_buffer(&model, 0, 1) == (void*)(arena + 256));
  CHECK(tt_model_input_buffer(&model, 0, 0) == NULL && tt_model_input_buffer(&model, 1, 1) == NULL);
  CHECK(tt_model_input_buffer(&model, 0, 3) == NULL && tt_model_input_buffer(NULL, 0, 1) == NULL);
  static const float x[4] A64 = {1.f, 2.f, 3.f, 4.f};
  static const int32_t label[16] A64 = {3};
  float loss = -1.f;
  /* From the caller's own buffer: copied into the arena first. */
  CHECK(tt_train_step(&model, x, label, &loss) == TT_OK);
  float* p = (float*)tt_model_param(&model, 0, NULL);
  CHECK(loss == 6.0f && p[0] == 0.5f + 2.f * 11.f && p[3] == 3.5f + 2.f * 44.f);
  /* Written in place by the caller: no copy, the same step. */
  memcpy(tt_model_input_buffer(&model, 0, 1), x, sizeof(x));
  CHECK(tt_train_step(&model, tt_model_input_buffer(&model, 0, 1), label, &loss) == TT_OK);
  CHECK(loss == 6.0f && p[0] == 0.5f + 4.f * 11.f && p[3] == 3.5f + 4.f * 44.f);
  /* An arena input must be aligned, after the state and inside the arena. */
  const uint32_t bad[3][2] = {{260u, 16u}, {0u, 16u}, {320u, 16u}};
  for (int i = 0; i < 3; ++i) {
    io2[1].ref.offset = bad[i][0];
    io2[1].ref.length = bad[i][1];
    CHECK(tt_model_init(&model, &d, arena, sizeof(arena)) == TT_ERR_BAD_TABLE);
  }
}

/* A streamed input (TT_CMD_READ_INPUT): train_step's x is brought into the arena by a READ_INPUT
 * just before the kernel that reads it, from the caller's buffer or from the input reader. */
static uint32_t reads_seen, read_offset, read_length;
static int reader_fails;
static const float reader_x[4] = {1.f, 2.f, 3.f, 4.f};

static tt_status_t test_reader(void* ctx, uint32_t offset, void* dst, uint32_t length) {
  ++reads_seen;
  read_offset = offset;
  read_length = length;
  if (reader_fails || ctx != (void*)reader_x) return TT_ERR_NVM;
  memcpy(dst, (const uint8_t*)reader_x + offset, length);
  return TT_OK;
}

static void test_streamed_input(void) {
  static tt_ref_t refs2[sizeof(refs) / sizeof(refs[0]) + 2];
  static tt_cmd_t cmds2[sizeof(cmds) / sizeof(cmds[0]) + 1];
  static tt_function_t functions2[3];
  const uint32_t nrefs = sizeof(refs) / sizeof(refs[0]);
  memcpy(refs2, refs, sizeof(refs));
  refs2[nrefs] = (tt_ref_t){TT_REGION_ARG, 1u, 0u, 16u};       /* x, from the caller or reader */
  refs2[nrefs + 1] = (tt_ref_t){TT_REGION_ARENA, 0u, 256u, 16u};
  refs2[3] = refs2[nrefs + 1];                                  /* vadd reads the arena copy */
  memcpy(cmds2, cmds, 2 * sizeof(tt_cmd_t));
  cmds2[2] = (tt_cmd_t){TT_CMD_READ_INPUT, 2u, 0u, 0u, 0u, 0u, {0u, 0u, 0u}, nrefs, 0u};
  memcpy(cmds2 + 3, cmds + 2, sizeof(cmds) - 2 * sizeof(tt_cmd_t));
  memcpy(functions2, functions, sizeof(functions));
  /* the compiler streams no f32 input (an f32 input is checked for NaN/Inf before the step) */
  static tt_io_t io2[sizeof(io) / sizeof(io[0])];
  memcpy(io2, io, sizeof(io));
  io2[1].dtype = TT_DTYPE_I8;
  functions2[0].inputs = &io2[0];
  functions2[0].outputs = &io2[3];
  functions2[0].cmd_count = 6u;
  functions2[1].cmd_first = 6u;
  functions2[2].cmd_first = 7u;
  tt_model_desc_t d = desc;
  d.refs = refs2;
  d.cmds = cmds2;
  d.functions = functions2;
  tt_model_t model;
  CHECK(tt_model_init(&model, &d, arena, sizeof(arena)) == TT_OK);
  CHECK(model.input_reader == NULL);
  static const int32_t label[16] A64 = {3};
  static const float x[4] A64 = {1.f, 2.f, 3.f, 4.f};
  float loss = -1.f;
  float* p = (float*)tt_model_param(&model, 0, NULL);
  /* No reader: from the caller's buffer; a NULL input is refused. */
  CHECK(tt_train_step(&model, NULL, label, &loss) == TT_ERR_NULL);
  CHECK(tt_train_step(&model, x, label, &loss) == TT_OK);
  CHECK(loss == 6.0f && p[0] == 0.5f + 2.f * 11.f && p[3] == 3.5f + 2.f * 44.f);
  /* With a reader: the input may be NULL; the reader is asked for exactly the range. */
  CHECK(tt_model_set_input_reader(NULL, test_reader, NULL) == TT_ERR_NULL);
  CHECK(tt_model_set_input_reader(&model, test_reader, (void*)reader_x) == TT_OK);
  CHECK(tt_train_step(&model, NULL, label, &loss) == TT_OK);
  CHECK(reads_seen == 1u && read_offset == 0u && read_length == 16u);
  CHECK(loss == 6.0f && p[0] == 0.5f + 4.f * 11.f && p[3] == 3.5f + 4.f * 44.f);
  /* predict reads x directly (not streamed there): NULL is refused even with a reader */
  float logits[4];
  CHECK(tt_predict(&model, NULL, logits) == TT_ERR_NULL);
  /* A failing reader ends the run with TT_ERR_INPUT_READ. */
  reader_fails = 1;
  CHECK(tt_train_step(&model, NULL, label, &loss) == TT_ERR_INPUT_READ);
  reader_fails = 0;
  /* READ_INPUT must go from an argument into the arena, with equal lengths. */
  refs2[nrefs + 1].region = TT_REGION_POOL;
  CHECK(tt_model_init(&model, &d, arena, sizeof(arena)) == TT_ERR_BAD_TABLE);
  refs2[nrefs + 1] = (tt_ref_t){TT_REGION_ARENA, 0u, 256u, 8u};
  CHECK(tt_model_init(&model, &d, arena, sizeof(arena)) == TT_ERR_BAD_TABLE);
}

int main(void) {
  test_train_and_predict();
  test_input_in_arena();
  test_streamed_input();
  test_predict_binds_the_leading_state();
  test_errors();
  test_label_range();
  test_nonfinite_input();
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("runtime tests passed\n");
  return 0;
}
