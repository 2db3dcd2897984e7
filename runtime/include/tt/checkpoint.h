/* tinytrain runtime: power-loss-safe checkpoints of the trained state in board NVM.
 *
 * The trained state (the arena's first `state_size` bytes: trained parameters and any
 * optimizer state, in the layout the compiler planned) plus the step counters are saved in one
 * of two slots (A = first half of the NVM, B = second half). A save always writes the slot
 * that does NOT hold the newest valid checkpoint, in this order:
 *
 *   1. erase every page of the target slot (its header page first),
 *   2. program the payload pages (page 1..n of the slot),
 *   3. program the 64-byte header page (page 0) -- the commit.
 *
 * The header carries a sequence number and one CRC-32 over header and payload, so a power cut
 * at any moment (between or inside any erase/program) leaves the other slot intact: restore
 * takes the slot with the highest sequence among those whose header, CRC-32 and model
 * identity check out. See runtime/README.md for the byte layout.
 */
#ifndef TT_CHECKPOINT_H_
#define TT_CHECKPOINT_H_

#include <stddef.h>
#include <stdint.h>

#include "tt/model.h"
#include "tt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TT_CKPT_MAGIC 0x4B435454u  /**< "TTCK" little-endian */
#define TT_CKPT_VERSION 1u
#define TT_CKPT_HEADER_BYTES 64u

/** A board's non-volatile memory: `page_count` pages of `page_size` bytes (flash-like: a page
 *  must be erased -- all bytes 0xFF -- before it is programmed). Callbacks return 0 on success.
 *  `program` writes `n` <= page_size bytes at the start of an erased page (the rest stays
 *  0xFF); `read` reads `n` bytes at byte `offset` from the start of the NVM. */
typedef struct tt_nvm_t {
  void* ctx;
  uint32_t page_size;   /**< >= TT_CKPT_HEADER_BYTES */
  uint32_t page_count;  /**< slots A and B each get page_count / 2 pages */
  int (*erase)(void* ctx, uint32_t page);
  int (*program)(void* ctx, uint32_t page, const void* data, uint32_t n);
  int (*read)(void* ctx, uint32_t offset, void* buf, uint32_t n);
} tt_nvm_t;

/** What a save wrote or a restore found. `slot_status[s]`: TT_OK (intact, this model),
 *  TT_ERR_NO_CHECKPOINT (erased), TT_ERR_CKPT_CORRUPT, TT_ERR_CKPT_MODEL. */
typedef struct tt_checkpoint_info_t {
  int slot;                   /**< 0 = A, 1 = B; -1 when none */
  uint32_t sequence;
  uint64_t steps;
  uint32_t rejected_steps;
  tt_status_t slot_status[2];
  uint32_t slot_sequence[2];  /**< sequence of each intact slot (0 otherwise) */
} tt_checkpoint_info_t;

/** Standard CRC-32 (IEEE 802.3, reflected, as zlib's crc32): start with crc = 0. */
uint32_t tt_crc32(uint32_t crc, const void* data, size_t n);

/** The model identity stored in every checkpoint: CRC-32 of the trained-state layout
 *  (state size, and per parameter: offset, bytes, dtype, rank, shape). */
uint32_t tt_checkpoint_model_id(const tt_model_desc_t* desc);

/** Pages one slot needs for this model (1 header page + payload pages). */
uint32_t tt_checkpoint_slot_pages(const tt_model_desc_t* desc, uint32_t page_size);

/** Save the model's trained state and counters into the older slot (see above).
 *  Errors: TT_ERR_NULL, TT_ERR_NONFINITE (the state holds NaN/Inf: nothing is written, so a
 *  bad step can never replace a good checkpoint), TT_ERR_NVM (a callback failed, the geometry
 *  cannot hold two slots, or the read-back CRC differs). `out_info` may be NULL. */
tt_status_t tt_checkpoint_save(const tt_model_t* model, const tt_nvm_t* nvm,
                               tt_checkpoint_info_t* out_info);

/** Restore the newest intact checkpoint of this model into the arena and the step counters.
 *  On error the model is unchanged -- except TT_ERR_NVM after the copy began (the NVM failed
 *  or changed while it was read: the copy's CRC-32 differs), when the state must not be used.
 *  Errors: TT_ERR_NULL, TT_ERR_NVM, TT_ERR_NO_CHECKPOINT
 *  (both slots erased), TT_ERR_CKPT_MODEL (an intact slot is another model's and none is this
 *  model's), TT_ERR_CKPT_CORRUPT (otherwise). `out_info` (may be NULL) says which slot. */
tt_status_t tt_checkpoint_restore(tt_model_t* model, const tt_nvm_t* nvm,
                                  tt_checkpoint_info_t* out_info);

/** Check both slots without changing the model; returns what restore would return. */
tt_status_t tt_checkpoint_inspect(const tt_model_t* model, const tt_nvm_t* nvm,
                                  tt_checkpoint_info_t* out_info);

#ifdef __cplusplus
}
#endif

#endif /* TT_CHECKPOINT_H_ */
