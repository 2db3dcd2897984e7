/* tinytrain runtime: A/B checkpoints of the trained state over the board's NVM interface.
 * Byte layout and guarantees: tt/checkpoint.h and runtime/README.md. All integers are stored
 * little-endian byte by byte, so the format does not depend on the CPU. */
#include "tt/checkpoint.h"

#include <string.h>

#define TT_CKPT_CHUNK_ 64u /* bytes read at a time while checking a CRC (on the stack) */

static const uint32_t tt_crc_nibble_[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t tt_crc32(uint32_t crc, const void* data, size_t n) {
  const uint8_t* p = (const uint8_t*)data;
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    crc = (crc >> 4) ^ tt_crc_nibble_[crc & 15u];
    crc = (crc >> 4) ^ tt_crc_nibble_[crc & 15u];
  }
  return ~crc;
}

static void tt_put_u32_(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t tt_get_u32_(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

static uint32_t tt_crc_u32_(uint32_t crc, uint32_t v) {
  uint8_t b[4];
  tt_put_u32_(b, v);
  return tt_crc32(crc, b, sizeof b);
}

uint32_t tt_checkpoint_model_id(const tt_model_desc_t* desc) {
  if (desc == NULL) return 0u;
  const tt_function_t* fn =
      desc->train_function >= 0 ? &desc->functions[desc->train_function] : NULL;
  uint32_t crc = tt_crc_u32_(0u, desc->state_size);
  crc = tt_crc_u32_(crc, desc->state_count);
  for (uint16_t i = 0; i < desc->state_count; ++i) {
    crc = tt_crc_u32_(crc, desc->state[i].offset);
    crc = tt_crc_u32_(crc, desc->state[i].length);
    const tt_io_t* io = fn != NULL && i < fn->input_count ? &fn->inputs[i] : NULL;
    const uint32_t rank = io != NULL && io->rank <= TT_MAX_RANK ? io->rank : 0u;
    crc = tt_crc_u32_(crc, io != NULL ? io->dtype : 0xFFFFFFFFu);
    crc = tt_crc_u32_(crc, rank);
    for (uint32_t d = 0; d < rank; ++d) crc = tt_crc_u32_(crc, io->shape[d]);
  }
  return crc;
}

uint32_t tt_checkpoint_slot_pages(const tt_model_desc_t* desc, uint32_t page_size) {
  if (desc == NULL || page_size == 0u) return 0u;
  return 1u + desc->state_size / page_size + (desc->state_size % page_size != 0u);
}

/* Geometry: both slots fit, the header fits a page. Returns the first page of slot B. */
static tt_status_t tt_ckpt_geometry_(const tt_model_desc_t* desc, const tt_nvm_t* nvm,
                                     uint32_t* out_half) {
  if (nvm->erase == NULL || nvm->program == NULL || nvm->read == NULL) return TT_ERR_NULL;
  if (nvm->page_size < TT_CKPT_HEADER_BYTES || nvm->page_count < 2u) return TT_ERR_NVM;
  const uint32_t half = nvm->page_count / 2u;
  if ((uint64_t)half * nvm->page_size > 0xFFFFFFFFull / 2u) return TT_ERR_NVM;
  if (tt_checkpoint_slot_pages(desc, nvm->page_size) > half) return TT_ERR_NVM;
  *out_half = half;
  return TT_OK;
}

typedef struct {
  uint32_t sequence, payload_bytes, rejected, model_id;
  uint64_t steps;
} tt_ckpt_header_t_;

/* Check one slot: TT_OK, TT_ERR_NO_CHECKPOINT (header erased), TT_ERR_CKPT_CORRUPT,
 * TT_ERR_CKPT_MODEL, or TT_ERR_NVM (read failed). */
static tt_status_t tt_ckpt_scan_slot_(const tt_model_desc_t* desc, const tt_nvm_t* nvm,
                                      uint32_t base, tt_ckpt_header_t_* out) {
  uint8_t h[TT_CKPT_HEADER_BYTES];
  if (nvm->read(nvm->ctx, base, h, sizeof h) != 0) return TT_ERR_NVM;
  int erased = 1;
  for (uint32_t i = 0; i < sizeof h; ++i) erased &= (h[i] == 0xFFu);
  if (erased) return TT_ERR_NO_CHECKPOINT;
  if (tt_get_u32_(h) != TT_CKPT_MAGIC || (h[4] | (h[5] << 8)) != TT_CKPT_VERSION ||
      (h[6] | (h[7] << 8)) != TT_CKPT_HEADER_BYTES) {
    return TT_ERR_CKPT_CORRUPT;
  }
  out->sequence = tt_get_u32_(h + 8);
  out->payload_bytes = tt_get_u32_(h + 12);
  out->steps = (uint64_t)tt_get_u32_(h + 16) | ((uint64_t)tt_get_u32_(h + 20) << 32);
  out->rejected = tt_get_u32_(h + 24);
  out->model_id = tt_get_u32_(h + 28);
  const uint32_t half_bytes = (nvm->page_count / 2u) * nvm->page_size;
  if (out->payload_bytes > half_bytes - nvm->page_size) return TT_ERR_CKPT_CORRUPT;
  uint32_t crc = tt_crc32(0u, h, TT_CKPT_HEADER_BYTES - 4u);
  uint8_t chunk[TT_CKPT_CHUNK_];
  for (uint32_t done = 0; done < out->payload_bytes;) {
    uint32_t n = out->payload_bytes - done;
    if (n > sizeof chunk) n = sizeof chunk;
    if (nvm->read(nvm->ctx, base + nvm->page_size + done, chunk, n) != 0) return TT_ERR_NVM;
    crc = tt_crc32(crc, chunk, n);
    done += n;
  }
  if (crc != tt_get_u32_(h + TT_CKPT_HEADER_BYTES - 4u)) return TT_ERR_CKPT_CORRUPT;
  if (out->model_id != tt_checkpoint_model_id(desc) || out->payload_bytes != desc->state_size) {
    return TT_ERR_CKPT_MODEL;
  }
  return TT_OK;
}

/* Serial-number order: a is newer than b (wraps after 2^32 saves). */
static int tt_seq_newer_(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }

static tt_status_t tt_ckpt_scan_(const tt_model_t* model, const tt_nvm_t* nvm,
                                 tt_checkpoint_info_t* info, tt_ckpt_header_t_ headers[2],
                                 uint32_t* out_half) {
  memset(info, 0, sizeof(*info));
  info->slot = -1;
  if (model == NULL || model->desc == NULL || nvm == NULL) return TT_ERR_NULL;
  TT_RETURN_IF_ERROR(tt_ckpt_geometry_(model->desc, nvm, out_half));
  tt_status_t worst = TT_ERR_NO_CHECKPOINT;
  for (int s = 0; s < 2; ++s) {
    tt_status_t st = tt_ckpt_scan_slot_(model->desc, nvm,
                                        (uint32_t)s * *out_half * nvm->page_size, &headers[s]);
    if (st == TT_ERR_NVM) return st;
    info->slot_status[s] = st;
    if (st == TT_OK) {
      info->slot_sequence[s] = headers[s].sequence;
      if (info->slot < 0 || tt_seq_newer_(headers[s].sequence, headers[info->slot].sequence)) {
        info->slot = s;
      }
    } else if (st == TT_ERR_CKPT_MODEL || (st == TT_ERR_CKPT_CORRUPT && worst != TT_ERR_CKPT_MODEL)) {
      worst = st;
    }
  }
  if (info->slot < 0) return worst;
  const tt_ckpt_header_t_* h = &headers[info->slot];
  info->sequence = h->sequence;
  info->steps = h->steps;
  info->rejected_steps = h->rejected;
  return TT_OK;
}

tt_status_t tt_checkpoint_inspect(const tt_model_t* model, const tt_nvm_t* nvm,
                                  tt_checkpoint_info_t* out_info) {
  tt_checkpoint_info_t info;
  tt_ckpt_header_t_ headers[2];
  uint32_t half = 0u;
  tt_status_t st = tt_ckpt_scan_(model, nvm, &info, headers, &half);
  if (out_info != NULL) *out_info = info;
  return st;
}

tt_status_t tt_checkpoint_restore(tt_model_t* model, const tt_nvm_t* nvm,
                                  tt_checkpoint_info_t* out_info) {
  tt_checkpoint_info_t info;
  tt_ckpt_header_t_ headers[2];
  uint32_t half = 0u;
  tt_status_t st = tt_ckpt_scan_(model, nvm, &info, headers, &half);
  if (st == TT_OK) {
    const tt_model_desc_t* desc = model->desc;
    const uint32_t base = (uint32_t)info.slot * half * nvm->page_size;
    uint8_t h[TT_CKPT_HEADER_BYTES];
    if (nvm->read(nvm->ctx, base, h, sizeof h) != 0 ||
        (desc->state_size != 0u &&
         nvm->read(nvm->ctx, base + nvm->page_size, model->arena, desc->state_size) != 0)) {
      st = TT_ERR_NVM;
    } else {
      uint32_t crc = tt_crc32(tt_crc32(0u, h, TT_CKPT_HEADER_BYTES - 4u), model->arena,
                              desc->state_size);
      /* The slot changed between the check and the copy: the arena holds garbage now. */
      if (crc != tt_get_u32_(h + TT_CKPT_HEADER_BYTES - 4u)) st = TT_ERR_NVM;
    }
    if (st == TT_OK) {
      model->steps = info.steps;
      model->rejected_steps = info.rejected_steps;
    }
  }
  if (out_info != NULL) *out_info = info;
  return st;
}

tt_status_t tt_checkpoint_save(const tt_model_t* model, const tt_nvm_t* nvm,
                               tt_checkpoint_info_t* out_info) {
  tt_checkpoint_info_t info;
  tt_ckpt_header_t_ headers[2];
  uint32_t half = 0u;
  if (out_info != NULL) {
    memset(out_info, 0, sizeof(*out_info));
    out_info->slot = -1;
  }
  tt_status_t st = tt_ckpt_scan_(model, nvm, &info, headers, &half);
  if (st == TT_ERR_NULL || st == TT_ERR_NVM) return st;
  const tt_model_desc_t* desc = model->desc;
  if (!tt_model_state_finite(model)) return TT_ERR_NONFINITE;
  /* Overwrite the slot that is not the newest intact one; continue its sequence. */
  const int target = info.slot < 0 ? 0 : 1 - info.slot;
  const uint32_t sequence = info.slot < 0 ? 1u : info.sequence + 1u;
  const uint32_t first = (uint32_t)target * half;
  const uint32_t pages = tt_checkpoint_slot_pages(desc, nvm->page_size);

  uint8_t h[TT_CKPT_HEADER_BYTES];
  memset(h, 0, sizeof h);
  tt_put_u32_(h, TT_CKPT_MAGIC);
  h[4] = (uint8_t)TT_CKPT_VERSION;
  h[6] = (uint8_t)TT_CKPT_HEADER_BYTES;
  tt_put_u32_(h + 8, sequence);
  tt_put_u32_(h + 12, desc->state_size);
  tt_put_u32_(h + 16, (uint32_t)model->steps);
  tt_put_u32_(h + 20, (uint32_t)(model->steps >> 32));
  tt_put_u32_(h + 24, model->rejected_steps);
  tt_put_u32_(h + 28, tt_checkpoint_model_id(desc));
  tt_put_u32_(h + 32, nvm->page_size);
  const uint32_t crc =
      tt_crc32(tt_crc32(0u, h, TT_CKPT_HEADER_BYTES - 4u), model->arena, desc->state_size);
  tt_put_u32_(h + TT_CKPT_HEADER_BYTES - 4u, crc);

  for (uint32_t p = 0; p < pages; ++p) {  /* header page first: the slot is invalid at once */
    if (nvm->erase(nvm->ctx, first + p) != 0) return TT_ERR_NVM;
  }
  for (uint32_t p = 1; p < pages; ++p) {
    const uint32_t off = (p - 1u) * nvm->page_size;
    uint32_t n = desc->state_size - off;
    if (n > nvm->page_size) n = nvm->page_size;
    if (nvm->program(nvm->ctx, first + p, model->arena + off, n) != 0) return TT_ERR_NVM;
  }
  if (nvm->program(nvm->ctx, first, h, sizeof h) != 0) return TT_ERR_NVM;  /* commit */

  tt_ckpt_header_t_ check;
  if (tt_ckpt_scan_slot_(desc, nvm, first * nvm->page_size, &check) != TT_OK ||
      check.sequence != sequence) {
    return TT_ERR_NVM;
  }
  if (out_info != NULL) {
    *out_info = info;
    out_info->slot = target;
    out_info->sequence = sequence;
    out_info->steps = model->steps;
    out_info->rejected_steps = model->rejected_steps;
    out_info->slot_status[target] = TT_OK;
    out_info->slot_sequence[target] = sequence;
  }
  return TT_OK;
}
