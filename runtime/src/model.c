/* tinytrain runtime: model init (library checks) and the schedule interpreter.
 *
 * The kernels come from IREE's static library and follow its executable-library ABI v6
 * (tt/iree_abi.h): one call per workgroup, with the dispatch state (workgroup counts, push
 * constants, binding pointers) and the workgroup id. Workgroups run serially.
 */
#include <string.h>

#include "tt/model.h"

#define TT_IS_ALIGNED_(p) ((((uintptr_t)(p)) & (TT_ALIGNMENT - 1u)) == 0u)

size_t tt_model_required_bytes(const tt_model_desc_t* desc) {
  return desc ? (size_t)desc->arena_size : 0u;
}

static tt_status_t tt_model_check_library(const tt_model_desc_t* desc,
                                          const tt_iree_library_t** out_library) {
  static const tt_iree_environment_t kEmptyEnv;
  *out_library = NULL;
  if (desc->abi_version != TT_IREE_ABI_VERSION) return TT_ERR_ABI_VERSION;
  if (desc->library_query == NULL) return TT_ERR_NULL;
  const tt_iree_library_header_t** header =
      desc->library_query(TT_IREE_ABI_VERSION, &kEmptyEnv);
  if (header == NULL || *header == NULL) return TT_ERR_LIBRARY_MISMATCH;
  if ((*header)->version != TT_IREE_ABI_VERSION) return TT_ERR_ABI_VERSION;
  if (desc->library_name &&
      ((*header)->name == NULL || strcmp((*header)->name, desc->library_name) != 0)) {
    return TT_ERR_LIBRARY_MISMATCH;
  }
  const tt_iree_library_t* library = (const tt_iree_library_t*)header;
  if (library->imports.count != 0u) return TT_ERR_LIBRARY_MISMATCH;
  if (desc->export_count != 0u &&
      (library->exports.names == NULL || library->exports.ptrs == NULL)) {
    return TT_ERR_LIBRARY_MISMATCH;
  }
  for (uint16_t i = 0; i < desc->export_count; ++i) {
    const tt_export_t* e = &desc->exports[i];
    if (e->ordinal >= library->exports.count || e->name == NULL ||
        library->exports.names[e->ordinal] == NULL ||
        strcmp(library->exports.names[e->ordinal], e->name) != 0 ||
        library->exports.ptrs[e->ordinal] == NULL) {
      return TT_ERR_KERNEL_MISMATCH;
    }
    if (library->exports.attrs != NULL) {
      const tt_iree_dispatch_attrs_t* a = &library->exports.attrs[e->ordinal];
      if (a->binding_count != e->binding_count || a->constant_count != e->constant_count ||
          a->local_memory_pages != 0u) {
        return TT_ERR_KERNEL_MISMATCH;
      }
    }
  }
  *out_library = library;
  return TT_OK;
}

/* A buffer reference of function `fn` lies inside its region; `aligned` also asks for the
 * 64-byte alignment IREE's kernels assume of a binding declared `alignment(64)` (the arena, the
 * pool and the arguments are 64-byte aligned themselves, so the offset must be). */
static int tt_ref_ok(const tt_model_desc_t* desc, const tt_function_t* fn, const tt_ref_t* ref,
                     int aligned) {
  uint32_t limit;
  switch (ref->region) {
    case TT_REGION_ARENA: limit = desc->arena_size; break;
    case TT_REGION_POOL: limit = desc->pool_size; break;
    case TT_REGION_ARG:
      if (fn->inputs == NULL || ref->index >= fn->input_count) return 0;
      limit = fn->inputs[ref->index].ref.length;
      break;
    default:
      return 0;
  }
  if (aligned && (ref->offset & (TT_ALIGNMENT - 1u)) != 0u) return 0;
  return ref->offset <= limit && ref->length <= limit - ref->offset;
}

static tt_status_t tt_model_check_tables(const tt_model_desc_t* desc) {
  if (desc->state_size > desc->arena_size) return TT_ERR_BAD_TABLE;
  if (desc->state_count != 0u && desc->state == NULL) return TT_ERR_BAD_TABLE;
  for (uint16_t i = 0; i < desc->state_count; ++i) {
    const tt_ref_t* s = &desc->state[i];
    if (s->region != TT_REGION_ARENA || (s->offset & (TT_ALIGNMENT - 1u)) != 0u ||
        s->offset > desc->state_size || s->length > desc->state_size - s->offset) {
      return TT_ERR_BAD_TABLE;
    }
  }
  const int16_t special[3] = {desc->init_function, desc->train_function,
                              desc->predict_function};
  for (int i = 0; i < 3; ++i) {
    if (special[i] >= (int16_t)desc->function_count) return TT_ERR_BAD_TABLE;
  }
  if (desc->function_count != 0u && desc->functions == NULL) return TT_ERR_BAD_TABLE;
  for (uint16_t f = 0; f < desc->function_count; ++f) {
    const tt_function_t* fn = &desc->functions[f];
    if ((fn->input_count != 0u && fn->inputs == NULL) ||
        (fn->output_count != 0u && fn->outputs == NULL) || fn->name == NULL) {
      return TT_ERR_BAD_TABLE;
    }
    if (fn->cmd_count != 0u && desc->cmds == NULL) return TT_ERR_BAD_TABLE;
    for (uint16_t i = 0; i < fn->input_count; ++i) {
      const tt_ref_t* r = &fn->inputs[i].ref;
      if (fn->inputs[i].rank > TT_MAX_RANK) return TT_ERR_BAD_TABLE;
      if (r->region == TT_REGION_ARENA) {
        /* An input placed in the transient arena: aligned, after the state, inside the arena. */
        if (r->index != 0u || r->offset < desc->state_size || !tt_ref_ok(desc, fn, r, 1)) {
          return TT_ERR_BAD_TABLE;
        }
      } else if (r->region != TT_REGION_ARG || r->index != i || r->offset != 0u) {
        return TT_ERR_BAD_TABLE;
      }
    }
    for (uint16_t i = 0; i < fn->output_count; ++i) {
      const tt_io_t* o = &fn->outputs[i];
      if (!tt_ref_ok(desc, fn, &o->ref, 0) || o->rank > TT_MAX_RANK ||
          o->tied_input >= (int16_t)fn->input_count) {
        return TT_ERR_BAD_TABLE;
      }
    }
    for (uint32_t c = fn->cmd_first; c - fn->cmd_first < fn->cmd_count; ++c) {
      const tt_cmd_t* cmd = &desc->cmds[c];
      if (cmd->ref_count > TT_MAX_BINDINGS || cmd->constant_count > TT_MAX_CONSTANTS ||
          (cmd->ref_count != 0u && desc->refs == NULL) ||
          (cmd->constant_count != 0u && desc->constants == NULL)) {
        return TT_ERR_BAD_TABLE;
      }
      const tt_ref_t* refs = cmd->ref_count ? &desc->refs[cmd->ref_first] : NULL;
      switch (cmd->op) {
        case TT_CMD_FILL:
          if (cmd->ref_count != 1u || (cmd->pattern_length != 1u && cmd->pattern_length != 2u &&
                                       cmd->pattern_length != 4u)) {
            return TT_ERR_BAD_TABLE;
          }
          break;
        case TT_CMD_COPY:
          if (cmd->ref_count != 2u || refs[1].length > refs[0].length) return TT_ERR_BAD_TABLE;
          break;
        case TT_CMD_READ_INPUT:
          /* from a range of an input argument into the arena */
          if (cmd->ref_count != 2u || refs[0].region != TT_REGION_ARG ||
              refs[1].region != TT_REGION_ARENA || refs[1].length != refs[0].length) {
            return TT_ERR_BAD_TABLE;
          }
          break;
        case TT_CMD_DISPATCH:
          if (cmd->export_index >= desc->export_count ||
              desc->exports[cmd->export_index].binding_count != cmd->ref_count ||
              desc->exports[cmd->export_index].constant_count != cmd->constant_count ||
              cmd->workgroups[2] > 0xFFFFu) {
            return TT_ERR_BAD_TABLE;
          }
          break;
        default:
          return TT_ERR_BAD_TABLE;
      }
      const uint32_t unaligned_ok =
          cmd->op == TT_CMD_DISPATCH ? desc->exports[cmd->export_index].unaligned_ok : 0u;
      for (uint32_t r = 0; r < cmd->ref_count; ++r) {
        /* Kernel bindings must be 64-byte aligned unless the kernel declares no alignment for
         * them (unaligned_ok); memset/memmove need not be. */
        const int aligned = cmd->op == TT_CMD_DISPATCH && !((unaligned_ok >> r) & 1u);
        if (!tt_ref_ok(desc, fn, &refs[r], aligned)) return TT_ERR_BAD_TABLE;
      }
    }
  }
  return TT_OK;
}

tt_status_t tt_model_init(tt_model_t* out_model, const tt_model_desc_t* desc, void* arena,
                          size_t arena_size) {
  if (out_model == NULL) return TT_ERR_NULL;
  memset(out_model, 0, sizeof(*out_model));
  if (desc == NULL || (arena == NULL && desc->arena_size != 0u) ||
      (desc->pool == NULL && desc->pool_size != 0u) ||
      (desc->exports == NULL && desc->export_count != 0u)) {
    return TT_ERR_NULL;
  }
  if (!TT_IS_ALIGNED_(arena) || (desc->pool_size && !TT_IS_ALIGNED_(desc->pool))) {
    return TT_ERR_MISALIGNED;
  }
  if (arena_size < desc->arena_size) return TT_ERR_ARENA_TOO_SMALL;
  const tt_iree_library_t* library = NULL;
  TT_RETURN_IF_ERROR(tt_model_check_library(desc, &library));
  TT_RETURN_IF_ERROR(tt_model_check_tables(desc));
  tt_model_t model = {desc, library, (uint8_t*)arena, 0u, 0u, NULL, NULL};
  if (desc->arena_size) memset(arena, 0, desc->arena_size);
  if (desc->state_init != NULL) memcpy(arena, desc->state_init, desc->state_size);
  if (desc->init_function >= 0) {
    TT_RETURN_IF_ERROR(tt_run(&model, desc->init_function, NULL, NULL));
  }
  *out_model = model;
  return TT_OK;
}

int tt_model_find_function(const tt_model_t* model, const char* name) {
  if (model == NULL || model->desc == NULL || name == NULL) return -1;
  for (uint16_t i = 0; i < model->desc->function_count; ++i) {
    if (strcmp(model->desc->functions[i].name, name) == 0) return (int)i;
  }
  return -1;
}

static uint8_t* tt_ref_ptr(const tt_model_t* model, const tt_ref_t* ref,
                           const void* const* inputs) {
  switch (ref->region) {
    case TT_REGION_ARENA: return model->arena + ref->offset;
    case TT_REGION_POOL: return (uint8_t*)(uintptr_t)model->desc->pool + ref->offset;
    default: return (uint8_t*)(uintptr_t)inputs[ref->index] + ref->offset;
  }
}

static void tt_fill(uint8_t* dst, uint32_t length, uint32_t pattern, uint16_t pattern_length) {
  if (pattern_length == 1u) {
    memset(dst, (int)(pattern & 0xFFu), length);
    return;
  }
  for (uint32_t i = 0; i < length; ++i) {
    dst[i] = (uint8_t)(pattern >> (8u * (i % pattern_length)));
  }
}

static tt_status_t tt_dispatch(const tt_model_t* model, const tt_cmd_t* cmd,
                               const void* const* inputs) {
  static const tt_iree_environment_t kEnv;
  const tt_model_desc_t* desc = model->desc;
  const tt_export_t* e = &desc->exports[cmd->export_index];
  void* ptrs[TT_MAX_BINDINGS];
  size_t lengths[TT_MAX_BINDINGS];
  for (uint32_t i = 0; i < cmd->ref_count; ++i) {
    const tt_ref_t* ref = &desc->refs[cmd->ref_first + i];
    ptrs[i] = tt_ref_ptr(model, ref, inputs);
    lengths[i] = ref->length;
  }
  tt_iree_dispatch_state_t state TT_ALIGNED(16);
  memset(&state, 0, sizeof(state));
  state.workgroup_size_x = 1u;
  state.workgroup_size_y = 1u;
  state.workgroup_size_z = 1u;
  if (model->library->exports.attrs != NULL) {
    const tt_iree_dispatch_attrs_t* a = &model->library->exports.attrs[e->ordinal];
    state.workgroup_size_x = a->workgroup_size_x ? a->workgroup_size_x : 1u;
    state.workgroup_size_y = a->workgroup_size_y ? a->workgroup_size_y : 1u;
    state.workgroup_size_z = a->workgroup_size_z ? a->workgroup_size_z : 1u;
  }
  state.constant_count = cmd->constant_count;
  state.workgroup_count_x = cmd->workgroups[0];
  state.workgroup_count_y = cmd->workgroups[1];
  state.workgroup_count_z = (uint16_t)cmd->workgroups[2];
  state.max_concurrency = 1u;
  state.binding_count = cmd->ref_count;
  state.constants = cmd->constant_count ? &desc->constants[cmd->constant_first] : NULL;
  state.binding_ptrs = ptrs;
  state.binding_lengths = lengths;
  tt_iree_kernel_fn_t fn = model->library->exports.ptrs[e->ordinal];
  tt_iree_workgroup_state_t wg TT_ALIGNED(16);
  memset(&wg, 0, sizeof(wg));
  for (uint32_t z = 0; z < cmd->workgroups[2]; ++z) {
    for (uint32_t y = 0; y < cmd->workgroups[1]; ++y) {
      for (uint32_t x = 0; x < cmd->workgroups[0]; ++x) {
        wg.workgroup_id_x = x;
        wg.workgroup_id_y = y;
        wg.workgroup_id_z = (uint16_t)z;
        if (fn(&kEnv, &state, &wg) != 0) return TT_ERR_KERNEL_FAILED;
      }
    }
  }
  return TT_OK;
}

/* Input `index` of `fn` is streamed: only TT_CMD_READ_INPUT commands read it (and at least one
 * does), so the reader can stand in for its buffer. */
static int tt_input_streamed(const tt_model_desc_t* desc, const tt_function_t* fn, uint16_t index) {
  int read = 0;
  for (uint32_t c = fn->cmd_first; c - fn->cmd_first < fn->cmd_count; ++c) {
    const tt_cmd_t* cmd = &desc->cmds[c];
    for (uint32_t r = 0; r < cmd->ref_count; ++r) {
      const tt_ref_t* ref = &desc->refs[cmd->ref_first + r];
      if (ref->region != TT_REGION_ARG || ref->index != index) continue;
      if (cmd->op != TT_CMD_READ_INPUT || r != 0u) return 0;
      read = 1;
    }
  }
  for (uint16_t o = 0; o < fn->output_count; ++o) {
    if (fn->outputs[o].ref.region == TT_REGION_ARG && fn->outputs[o].ref.index == index) return 0;
  }
  return read;
}

tt_status_t tt_model_set_input_reader(tt_model_t* model, tt_input_reader_t reader, void* ctx) {
  if (model == NULL) return TT_ERR_NULL;
  model->input_reader = reader;
  model->input_reader_ctx = ctx;
  return TT_OK;
}

tt_status_t tt_run(tt_model_t* model, int function, const void* const* inputs,
                   void* const* outputs) {
  if (model == NULL || model->desc == NULL) return TT_ERR_NULL;
  const tt_model_desc_t* desc = model->desc;
  if (function < 0 || function >= (int)desc->function_count) return TT_ERR_BAD_INDEX;
  const tt_function_t* fn = &desc->functions[function];
  if (fn->input_count != 0u && inputs == NULL) return TT_ERR_NULL;
  for (uint16_t i = 0; i < fn->input_count; ++i) {
    if (inputs[i] == NULL) {
      /* a streamed input may be NULL when the reader provides it */
      if (model->input_reader == NULL || !tt_input_streamed(desc, fn, i)) return TT_ERR_NULL;
      continue;
    }
    if (!TT_IS_ALIGNED_(inputs[i])) return TT_ERR_MISALIGNED;
  }
  /* Inputs placed in the transient arena: copied there unless the caller wrote them there. */
  for (uint16_t i = 0; i < fn->input_count; ++i) {
    const tt_ref_t* r = &fn->inputs[i].ref;
    if (r->region != TT_REGION_ARENA) continue;
    uint8_t* dst = model->arena + r->offset;
    if ((const void*)dst != inputs[i]) memmove(dst, inputs[i], r->length);
  }
  for (uint32_t c = fn->cmd_first; c - fn->cmd_first < fn->cmd_count; ++c) {
    const tt_cmd_t* cmd = &desc->cmds[c];
    const tt_ref_t* refs = cmd->ref_count ? &desc->refs[cmd->ref_first] : NULL;
#ifdef TT_PROFILE_COMMANDS
    tt_profile_command_begin(c);
#endif
    switch (cmd->op) {
      case TT_CMD_FILL:
        tt_fill(tt_ref_ptr(model, &refs[0], inputs), refs[0].length, cmd->pattern,
                cmd->pattern_length);
        break;
      case TT_CMD_COPY:
        memmove(tt_ref_ptr(model, &refs[1], inputs), tt_ref_ptr(model, &refs[0], inputs),
                refs[1].length);
        break;
      case TT_CMD_READ_INPUT:
        if (model->input_reader != NULL) {
          if (model->input_reader(model->input_reader_ctx, refs[0].offset,
                                  tt_ref_ptr(model, &refs[1], inputs), refs[1].length) != TT_OK) {
            return TT_ERR_INPUT_READ;
          }
        } else {
          memcpy(tt_ref_ptr(model, &refs[1], inputs), tt_ref_ptr(model, &refs[0], inputs),
                 refs[1].length);
        }
        break;
      case TT_CMD_DISPATCH:
        TT_RETURN_IF_ERROR(tt_dispatch(model, cmd, inputs));
        break;
      default:
        return TT_ERR_BAD_TABLE;
    }
#ifdef TT_PROFILE_COMMANDS
    tt_profile_command_end(c);
#endif
  }
  if (outputs != NULL) {
    for (uint16_t i = 0; i < fn->output_count; ++i) {
      const void* src = tt_model_output(model, function, i, inputs);
      if (outputs[i] != NULL && outputs[i] != src) {
        memcpy(outputs[i], src, fn->outputs[i].ref.length);
      }
    }
  }
  return TT_OK;
}

/* The table's function `function`, or NULL for a bad model or index. */
static const tt_function_t* tt_model_function(const tt_model_t* model, int function) {
  if (model == NULL || model->desc == NULL || function < 0 ||
      function >= (int)model->desc->function_count) {
    return NULL;
  }
  return &model->desc->functions[function];
}

const void* tt_model_output(const tt_model_t* model, int function, int index,
                            const void* const* inputs) {
  const tt_function_t* fn = tt_model_function(model, function);
  if (fn == NULL) return NULL;
  if (index < 0 || index >= (int)fn->output_count) return NULL;
  const tt_ref_t* ref = &fn->outputs[index].ref;
  if (ref->region == TT_REGION_ARG && inputs == NULL) return NULL;
  return tt_ref_ptr(model, ref, inputs);
}

void* tt_model_input_buffer(tt_model_t* model, int function, int index) {
  const tt_function_t* fn = tt_model_function(model, function);
  if (fn == NULL) return NULL;
  if (index < 0 || index >= (int)fn->input_count) return NULL;
  const tt_ref_t* ref = &fn->inputs[index].ref;
  return ref->region == TT_REGION_ARENA ? model->arena + ref->offset : NULL;
}
