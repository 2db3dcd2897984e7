/* tinytrain runtime: the training/inference API over tt_run.
 *
 * train_step(p0..pK {tied}, input, label) -> (p0'..pK', loss): the trained parameters live at
 * the start of the arena (the "state") and are updated in place by the kernels. With SGD
 * momentum the state is the parameters followed by their f32 momentum buffers (tied too), so
 * checkpoints, the non-finite check and tt_model_param cover the buffers as well.
 * predict(p0..pJ, input) -> logits takes the leading part of the state it reads (the
 * parameters; not the momentum buffers).
 *
 * Guards: labels out of range and non-finite f32 inputs are refused before any kernel runs;
 * a non-finite loss or trained parameter after a step is reported (TT_ERR_NONFINITE) and
 * counted in `rejected_steps`.
 */
#include <string.h>

#include "tt/model.h"

void* tt_model_param(tt_model_t* model, int index, size_t* out_bytes) {
  if (out_bytes != NULL) *out_bytes = 0u;
  if (model == NULL || model->desc == NULL || index < 0 ||
      index >= (int)model->desc->state_count) {
    return NULL;
  }
  const tt_ref_t* ref = &model->desc->state[index];
  if (out_bytes != NULL) *out_bytes = ref->length;
  return model->arena + ref->offset;
}

uint64_t tt_model_steps(const tt_model_t* model) { return model ? model->steps : 0u; }

uint32_t tt_model_rejected_steps(const tt_model_t* model) {
  return model ? model->rejected_steps : 0u;
}

/* Arguments = the first `input_count - extra_count` state pointers (train_step: all of them),
 * then `extra` (input[, label]). */
static tt_status_t tt_bind_args(tt_model_t* model, const tt_function_t* fn,
                                const void* const* extra, uint16_t extra_count,
                                const void** args, uint16_t capacity) {
  const tt_model_desc_t* desc = model->desc;
  if (fn->input_count < extra_count || fn->input_count - extra_count > desc->state_count ||
      fn->input_count > capacity) {
    return TT_ERR_BAD_TABLE;
  }
  const uint16_t n = (uint16_t)(fn->input_count - extra_count);
  for (uint16_t i = 0; i < n; ++i) {
    if (fn->inputs[i].ref.length != desc->state[i].length) return TT_ERR_BAD_TABLE;
    args[i] = model->arena + desc->state[i].offset;
  }
  for (uint16_t i = 0; i < extra_count; ++i) args[n + i] = extra[i];
  return TT_OK;
}

#define TT_MAX_ARGS_ 64u
#define TT_LABEL_COPY_BYTES_ 64u

/* Labels must be class indices of the model's output: checked against predict's logits
 * [N, K] before any kernel runs (a label out of range would silently train on garbage). */
static tt_status_t tt_check_labels(const tt_model_desc_t* desc, const tt_function_t* fn,
                                   const void* label) {
  const tt_io_t* lab = &fn->inputs[fn->input_count - 1u];
  if (desc->predict_function < 0 || lab->dtype != TT_DTYPE_I32) return TT_OK;
  const tt_function_t* pf = &desc->functions[desc->predict_function];
  if (pf->output_count < 1u || pf->outputs[0].rank < 1u) return TT_OK;
  const uint32_t classes = pf->outputs[0].shape[pf->outputs[0].rank - 1u];
  const uint32_t count = lab->ref.length / (uint32_t)sizeof(int32_t);
  for (uint32_t i = 0; i < count; ++i) {
    int32_t v;
    memcpy(&v, (const uint8_t*)label + i * sizeof(int32_t), sizeof v);
    if (v < 0 || (uint32_t)v >= classes) return TT_ERR_LABEL_RANGE;
  }
  return TT_OK;
}

/* 1 if every f32 in `p[0..bytes)` is finite (exponent not all ones; no libm needed). */
static int tt_all_finite_f32(const void* p, uint32_t bytes) {
  const uint8_t* b = (const uint8_t*)p;
  for (uint32_t i = 0; i + sizeof(uint32_t) <= bytes; i += sizeof(uint32_t)) {
    uint32_t bits;
    memcpy(&bits, b + i, sizeof bits);
    if ((bits & 0x7F800000u) == 0x7F800000u) return 0;
  }
  return 1;
}

static tt_status_t tt_check_input(const tt_io_t* in, const void* input) {
  /* NULL: a streamed input the reader provides (never f32: the compiler streams no f32 input);
   * tt_run refuses it unless the input is streamed and a reader is set */
  if (input == NULL) return in->dtype == TT_DTYPE_F32 ? TT_ERR_NULL : TT_OK;
  if (in->dtype == TT_DTYPE_F32 && !tt_all_finite_f32(input, in->ref.length)) {
    return TT_ERR_NONFINITE;
  }
  return TT_OK;
}

int tt_model_state_finite(const tt_model_t* model) {
  const tt_model_desc_t* desc = model->desc;
  const tt_function_t* fn =
      desc->train_function >= 0 ? &desc->functions[desc->train_function] : NULL;
  for (uint16_t i = 0; i < desc->state_count; ++i) {
    const int f32 = fn == NULL || i >= fn->input_count || fn->inputs[i].dtype == TT_DTYPE_F32;
    if (f32 && !tt_all_finite_f32(model->arena + desc->state[i].offset, desc->state[i].length)) {
      return 0;
    }
  }
  return 1;
}

tt_status_t tt_train_step(tt_model_t* model, const void* input, const void* label,
                          float* out_loss) {
  if (out_loss != NULL) *out_loss = 0.0f;
  if (model == NULL || model->desc == NULL || label == NULL ||
      (input == NULL && model->input_reader == NULL)) {
    return TT_ERR_NULL;
  }
  const tt_model_desc_t* desc = model->desc;
  if (desc->train_function < 0) return TT_ERR_NO_FUNCTION;
  const tt_function_t* fn = &desc->functions[desc->train_function];
  /* train_step takes the whole state (parameters and momentum buffers), then input, label. */
  if (fn->input_count != desc->state_count + 2u) return TT_ERR_BAD_TABLE;
  if (((uintptr_t)input & (TT_ALIGNMENT - 1u)) != 0u) return TT_ERR_MISALIGNED;
  /* The label is tiny: copy it to an aligned buffer so callers need not align it. */
  const tt_io_t* lab = &fn->inputs[fn->input_count - 1u];
  uint8_t label_copy[TT_LABEL_COPY_BYTES_] TT_ALIGNED(TT_ALIGNMENT);
  if (lab->ref.length <= sizeof(label_copy)) {
    memcpy(label_copy, label, lab->ref.length);
    label = label_copy;
  }
  TT_RETURN_IF_ERROR(tt_check_labels(desc, fn, label));
  tt_status_t st = tt_check_input(&fn->inputs[fn->input_count - 2u], input);
  if (st != TT_OK) {
    ++model->rejected_steps;
    return st;
  }
  const void* extra[2] = {input, label};
  const void* args[TT_MAX_ARGS_];
  TT_RETURN_IF_ERROR(tt_bind_args(model, fn, extra, 2u, args, TT_MAX_ARGS_));
  TT_RETURN_IF_ERROR(tt_run(model, desc->train_function, args, NULL));
  float loss = 0.0f;
  if (fn->output_count > 0u) {
    const tt_io_t* out = &fn->outputs[fn->output_count - 1u];
    if (out->dtype != TT_DTYPE_F32 || out->ref.length != sizeof(float)) return TT_ERR_BAD_TABLE;
    memcpy(&loss, tt_model_output(model, desc->train_function, fn->output_count - 1, args),
           sizeof(float));
  }
  if (out_loss != NULL) *out_loss = loss;
  if (!tt_all_finite_f32(&loss, sizeof loss) || !tt_model_state_finite(model)) {
    ++model->rejected_steps;
    return TT_ERR_NONFINITE;
  }
  ++model->steps;
  return TT_OK;
}

tt_status_t tt_predict(tt_model_t* model, const void* input, void* out_logits) {
  if (model == NULL || model->desc == NULL || out_logits == NULL ||
      (input == NULL && model->input_reader == NULL)) {
    return TT_ERR_NULL;
  }
  const tt_model_desc_t* desc = model->desc;
  if (desc->predict_function < 0) return TT_ERR_NO_FUNCTION;
  const tt_function_t* fn = &desc->functions[desc->predict_function];
  if (fn->output_count < 1u || fn->input_count < 1u) return TT_ERR_BAD_TABLE;
  if (((uintptr_t)input & (TT_ALIGNMENT - 1u)) != 0u) return TT_ERR_MISALIGNED;
  TT_RETURN_IF_ERROR(tt_check_input(&fn->inputs[fn->input_count - 1u], input));
  const void* extra[1] = {input};
  const void* args[TT_MAX_ARGS_];
  TT_RETURN_IF_ERROR(tt_bind_args(model, fn, extra, 1u, args, TT_MAX_ARGS_));
  TT_RETURN_IF_ERROR(tt_run(model, desc->predict_function, args, NULL));
  memcpy(out_logits, tt_model_output(model, desc->predict_function, 0, args),
         fn->outputs[0].ref.length);
  return TT_OK;
}
