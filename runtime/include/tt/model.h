/* tinytrain runtime: a compiled model = IREE kernels + a static schedule, run from one arena.
 *
 * The compiler (lowering/iree_static.py) emits one C module per model that defines a
 * `const tt_model_desc_t` (all tables in flash) and a header with its sizes. The runtime runs
 * the schedule: fills, copies and kernel dispatches whose buffers are an offset into the
 * caller-owned arena (SRAM), the constant pool (flash) or a caller argument. No heap is used.
 *
 * Arena layout: [trained parameters (state)][persistent buffers][transient working set].
 * Every buffer handed to a kernel must be 64-byte aligned (IREE assumes it).
 */
#ifndef TT_MODEL_H_
#define TT_MODEL_H_

#include <stddef.h>
#include <stdint.h>

#include "tt/iree_abi.h"
#include "tt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TT_ALIGNMENT 64u      /**< alignment of the arena, the pool and every argument */
#define TT_MAX_RANK 6u        /**< highest tensor rank in an I/O descriptor */
#define TT_MAX_BINDINGS 32u   /**< most buffers one dispatch may bind */
#define TT_MAX_CONSTANTS 64u  /**< most push constants one dispatch may take */

/** Where a schedule buffer lives. */
typedef enum {
  TT_REGION_ARENA = 0,  /**< caller-owned arena (SRAM); offset from its start */
  TT_REGION_POOL = 1,   /**< constant pool (flash) */
  TT_REGION_ARG = 2,    /**< function argument `index` */
} tt_region_t;

/** A byte range of a region. */
typedef struct tt_ref_t {
  uint16_t region;  /**< tt_region_t */
  uint16_t index;   /**< argument index for TT_REGION_ARG, else 0 */
  uint32_t offset;  /**< bytes from the region's start */
  uint32_t length;  /**< bytes */
} tt_ref_t;

typedef enum {
  TT_CMD_FILL = 0,
  TT_CMD_COPY = 1,
  TT_CMD_DISPATCH = 2,
  TT_CMD_READ_INPUT = 3,
} tt_cmd_op_t;

/** One scheduled command. FILL uses refs[ref_first]; COPY refs[ref_first] -> refs[ref_first+1];
 *  READ_INPUT is a COPY from a streamed input (refs[ref_first] = {ARG, i, offset, bytes}): from
 *  the caller's input buffer, or from the model's input reader when one is set;
 *  DISPATCH binds refs[ref_first .. ref_first+ref_count) and constants[constant_first ..). */
typedef struct tt_cmd_t {
  uint8_t op;               /**< tt_cmd_op_t */
  uint8_t ref_count;
  uint16_t constant_count;
  uint16_t export_index;    /**< DISPATCH: index into tt_model_desc_t.exports */
  uint16_t pattern_length;  /**< FILL: 1, 2 or 4 bytes */
  uint32_t pattern;         /**< FILL: little-endian pattern */
  uint32_t workgroups[3];   /**< DISPATCH: x, y, z workgroup counts */
  uint32_t ref_first;
  uint32_t constant_first;
} tt_cmd_t;

typedef enum {
  TT_DTYPE_F32 = 0, TT_DTYPE_I32 = 1, TT_DTYPE_I8 = 2, TT_DTYPE_U8 = 3,
  TT_DTYPE_F16 = 4, TT_DTYPE_I16 = 5, TT_DTYPE_I64 = 6, TT_DTYPE_F64 = 7, TT_DTYPE_I1 = 8,
} tt_dtype_t;

/** A function input or output. Inputs: `ref` is {ARG, i, 0, bytes}, or {ARENA, 0, offset, bytes}
 *  for an input the compiler placed inside the transient arena (bytes no command touches before
 *  its last read; tt_run copies it there unless the caller wrote it there, and the step clobbers
 *  it). Outputs: where the result is after the run; `tied_input` >= 0 when it is written in place
 *  into that argument. */
typedef struct tt_io_t {
  tt_ref_t ref;
  uint8_t dtype;  /**< tt_dtype_t */
  uint8_t rank;
  int16_t tied_input;
  uint32_t shape[TT_MAX_RANK];
} tt_io_t;

typedef struct tt_function_t {
  const char* name;
  uint32_t cmd_first;
  uint32_t cmd_count;
  uint16_t input_count;
  uint16_t output_count;
  const tt_io_t* inputs;
  const tt_io_t* outputs;
} tt_function_t;

/** A kernel the schedule uses: checked against the library's export table at init. */
typedef struct tt_export_t {
  const char* name;
  uint16_t ordinal;
  uint8_t binding_count;
  uint8_t constant_count;
  /** Bit b set: binding b needs no 64-byte alignment (its kernel declares none, e.g. a copy into
   *  the interior of a padded buffer); the others must be 64-byte aligned. 0: all aligned. */
  uint32_t unaligned_ok;
} tt_export_t;

/** Everything the compiler generated for one model (const, in flash). */
typedef struct tt_model_desc_t {
  uint32_t abi_version;             /**< must equal TT_IREE_ABI_VERSION */
  const char* library_name;         /**< IREE library name, e.g. "model_linked" */
  tt_iree_query_fn_t library_query;
  const uint8_t* pool;              /**< 64-byte aligned constants (frozen weights) */
  uint32_t pool_size;
  uint32_t arena_size;              /**< bytes the caller's arena must have */
  uint32_t state_size;              /**< bytes of trained parameters at the arena start */
  const uint8_t* state_init;        /**< initial trained parameters (state_size bytes) or NULL */
  uint16_t state_count;
  const tt_ref_t* state;            /**< arena range of trained parameter i */
  uint16_t export_count;
  const tt_export_t* exports;
  const tt_cmd_t* cmds;
  const tt_ref_t* refs;
  const uint32_t* constants;
  uint16_t function_count;
  const tt_function_t* functions;
  int16_t init_function;            /**< run by tt_model_init, or -1 */
  int16_t train_function;           /**< train_step(params..., input, label), or -1 */
  int16_t predict_function;         /**< predict(params..., input), or -1 */
} tt_model_desc_t;

/** Reads bytes [offset, offset + length) of the step input into `dst` (an arena range the
 *  kernels then read); returns TT_OK, or any error, which ends the run with TT_ERR_INPUT_READ.
 *  Called by a compiled program whose input is streamed (the header defines
 *  TT_MODEL_INPUT_STREAMED) once per range a kernel loads, in program order: for a patched first
 *  stage patch by patch, each range's start no lower than the previous one's, consecutive ranges
 *  overlapping (the patches' halo). */
typedef tt_status_t (*tt_input_reader_t)(void* ctx, uint32_t offset, void* dst, uint32_t length);

/** A model instance. Fill it with tt_model_init; it borrows the arena. */
typedef struct tt_model_t {
  const tt_model_desc_t* desc;
  const tt_iree_library_t* library;
  uint8_t* arena;
  uint64_t steps;           /**< accepted training steps (restored by tt_checkpoint_restore) */
  uint32_t rejected_steps;  /**< steps refused with TT_ERR_NONFINITE */
  tt_input_reader_t input_reader;  /**< tt_model_set_input_reader; NULL: the caller's buffer */
  void* input_reader_ctx;
} tt_model_t;

/** Bytes of arena the model needs (== desc->arena_size). */
size_t tt_model_required_bytes(const tt_model_desc_t* desc);

/** Bind `desc` to `arena` (64-byte aligned, at least tt_model_required_bytes), check the kernel
 *  library (ABI version, names, binding/constant counts), the tables (every buffer inside its
 *  region, arena buffers 64-byte aligned), copy the initial parameters and run the init
 *  program. `out_model` is cleared first. Errors: TT_ERR_NULL, TT_ERR_MISALIGNED,
 *  TT_ERR_ARENA_TOO_SMALL, TT_ERR_ABI_VERSION, TT_ERR_LIBRARY_MISMATCH, TT_ERR_KERNEL_MISMATCH,
 *  TT_ERR_BAD_TABLE, TT_ERR_KERNEL_FAILED (init program). */
tt_status_t tt_model_init(tt_model_t* out_model, const tt_model_desc_t* desc, void* arena,
                          size_t arena_size);

/** Streamed input (TT_MODEL_INPUT_STREAMED): read the input's ranges through `reader` (NULL:
 *  from the buffer passed to tt_run / tt_train_step / tt_predict again). With a reader set, the
 *  input pointer of those calls may be NULL: the whole input then never needs to be in memory.
 *  A model whose input is not streamed ignores the reader. Errors: TT_ERR_NULL (no model). */
tt_status_t tt_model_set_input_reader(tt_model_t* model, tt_input_reader_t reader, void* ctx);

/** Index of function `name`, or -1. */
int tt_model_find_function(const tt_model_t* model, const char* name);

/** Run function `function`. `inputs[i]` must be 64-byte aligned with the input's byte length
 *  (tied inputs are updated in place; an input placed in the arena is first copied there, see
 *  tt_model_input_buffer; a streamed input may be NULL when an input reader is set). `outputs` may be NULL; a non-NULL `outputs[i]` receives a
 *  copy of output i (skipped when it already is the tied input). Errors: TT_ERR_NULL,
 *  TT_ERR_BAD_INDEX, TT_ERR_MISALIGNED, TT_ERR_KERNEL_FAILED, TT_ERR_BAD_TABLE. */
tt_status_t tt_run(tt_model_t* model, int function, const void* const* inputs,
                   void* const* outputs);

/** Where input `index` of `function` lives inside the arena (the compiler placed it in the
 *  transient arena: write it there before tt_run to save the copy; it is clobbered by the run,
 *  and writing it clobbers the arena outputs of the previous run), or NULL when it is the
 *  caller's own buffer. */
void* tt_model_input_buffer(tt_model_t* model, int function, int index);

#ifdef TT_PROFILE_COMMANDS
/** Built with TT_PROFILE_COMMANDS (CMake option, off by default; bench/cortexm_step_profile.py):
 *  tt_run calls these around each command `cmd` (its index in the command table), defined by
 *  the caller (the firmware harness times them). Without the flag tt_run has no hook. */
void tt_profile_command_begin(uint32_t cmd);
void tt_profile_command_end(uint32_t cmd);
#endif

/** Where output `index` of `function` is after the last tt_run (arena or the tied argument). */
const void* tt_model_output(const tt_model_t* model, int function, int index,
                            const void* const* inputs);

/** Trained parameter `index` in the arena and its size in bytes (`out_bytes` may be NULL). */
void* tt_model_param(tt_model_t* model, int index, size_t* out_bytes);

/** One SGD step on one sample: train_step(params (in the arena), input, label) -> loss.
 *  `input` must be 64-byte aligned (TT_ERR_MISALIGNED), or NULL for a streamed input read by
 *  the model's input reader (tt_model_set_input_reader); `label` needs no alignment when it
 *  is at most 64 bytes (batch <= 16: it is copied to an aligned buffer), else 64-byte
 *  alignment. `out_loss` (may be NULL) is set to
 *  the step's loss. Before any kernel runs: TT_ERR_LABEL_RANGE if a label is outside
 *  [0, classes) of predict's logits, TT_ERR_NONFINITE if an f32 input holds NaN or Inf (the
 *  state is unchanged, `rejected_steps` counts it). After the step: TT_ERR_NONFINITE if the
 *  loss or a trained f32 parameter is not finite (`rejected_steps` counts it, `steps` does
 *  not; the compiled step is expected to skip its update then, and a checkpoint restore rolls
 *  the state back). On TT_OK `steps` is incremented. */
tt_status_t tt_train_step(tt_model_t* model, const void* input, const void* label,
                          float* out_loss);

/** Inference: predict(params, input) -> logits copied to `out_logits` (may be unaligned);
 *  `input` NULL as for tt_train_step.
 *  TT_ERR_NONFINITE (before any kernel runs) if an f32 input holds NaN or Inf. */
tt_status_t tt_predict(tt_model_t* model, const void* input, void* out_logits);

/** 1 if every f32 trained parameter in the arena is finite (no NaN/Inf), else 0. */
int tt_model_state_finite(const tt_model_t* model);

/** Accepted training steps since init (or the restored checkpoint's count). */
uint64_t tt_model_steps(const tt_model_t* model);

/** Steps refused with TT_ERR_NONFINITE since init (or restored from a checkpoint). */
uint32_t tt_model_rejected_steps(const tt_model_t* model);

#ifdef __cplusplus
}
#endif

#endif /* TT_MODEL_H_ */
