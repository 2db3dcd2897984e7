/* tinytrain runtime: the training/inference API over tt_run.
 *
 * train_step(p0..pK {tied}, input, label) -> (p0'..pK', loss): the trained parameters live at
 * the start of the arena (the "state") and are updated in place by the kernels.
 * predict(p0..pK, input) -> logits uses the same state.
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

/* Arguments = state pointers, then `extra` (input[, label]). */
static tt_status_t tt_bind_args(tt_model_t* model, const tt_function_t* fn,
                                const void* const* extra, uint16_t extra_count,
                                const void** args, uint16_t capacity) {
  const tt_model_desc_t* desc = model->desc;
  if (fn->input_count != desc->state_count + extra_count || fn->input_count > capacity) {
    return TT_ERR_UNSUPPORTED;
  }
  for (uint16_t i = 0; i < desc->state_count; ++i) {
    if (fn->inputs[i].ref.length != desc->state[i].length) return TT_ERR_INTERNAL;
    args[i] = model->arena + desc->state[i].offset;
  }
  for (uint16_t i = 0; i < extra_count; ++i) args[desc->state_count + i] = extra[i];
  return TT_OK;
}

#define TT_MAX_ARGS_ 64u

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
    if (v < 0 || (uint32_t)v >= classes) return TT_ERR_ARG;
  }
  return TT_OK;
}

tt_status_t tt_train_step(tt_model_t* model, const void* input, const void* label,
                          float* out_loss) {
  if (out_loss != NULL) *out_loss = 0.0f;
  if (model == NULL || model->desc == NULL || input == NULL || label == NULL) {
    return TT_ERR_ARG;
  }
  const tt_model_desc_t* desc = model->desc;
  if (desc->train_function < 0) return TT_ERR_UNSUPPORTED;
  const tt_function_t* fn = &desc->functions[desc->train_function];
  if (fn->input_count < 2u) return TT_ERR_INTERNAL;
  TT_RETURN_IF_ERROR(tt_check_labels(desc, fn, label));
  const void* extra[2] = {input, label};
  const void* args[TT_MAX_ARGS_];
  TT_RETURN_IF_ERROR(tt_bind_args(model, fn, extra, 2u, args, TT_MAX_ARGS_));
  TT_RETURN_IF_ERROR(tt_run(model, desc->train_function, args, NULL));
  if (out_loss != NULL && fn->output_count > 0u) {
    const tt_io_t* loss = &fn->outputs[fn->output_count - 1u];
    if (loss->dtype != TT_DTYPE_F32 || loss->ref.length != sizeof(float)) {
      return TT_ERR_UNSUPPORTED;
    }
    memcpy(out_loss, tt_model_output(model, desc->train_function, fn->output_count - 1, args),
           sizeof(float));
  }
  return TT_OK;
}

tt_status_t tt_predict(tt_model_t* model, const void* input, void* out_logits) {
  if (model == NULL || model->desc == NULL || input == NULL || out_logits == NULL) {
    return TT_ERR_ARG;
  }
  const tt_model_desc_t* desc = model->desc;
  if (desc->predict_function < 0) return TT_ERR_UNSUPPORTED;
  const tt_function_t* fn = &desc->functions[desc->predict_function];
  const void* extra[1] = {input};
  const void* args[TT_MAX_ARGS_];
  TT_RETURN_IF_ERROR(tt_bind_args(model, fn, extra, 1u, args, TT_MAX_ARGS_));
  TT_RETURN_IF_ERROR(tt_run(model, desc->predict_function, args, NULL));
  if (fn->output_count < 1u) return TT_ERR_INTERNAL;
  memcpy(out_logits, tt_model_output(model, desc->predict_function, 0, args),
         fn->outputs[0].ref.length);
  return TT_OK;
}
