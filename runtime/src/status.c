/* tinytrain runtime: status names and descriptions. */
#include "tt/status.h"

#define TT_STATUS_TABLE_(X)                                                                   \
  X(TT_OK, "success")                                                                         \
  X(TT_ERR_NULL, "a required pointer argument is NULL")                                       \
  X(TT_ERR_MISALIGNED, "a buffer that must be 64-byte aligned is not")                        \
  X(TT_ERR_ARENA_TOO_SMALL, "the arena is smaller than the model needs")                      \
  X(TT_ERR_BAD_INDEX, "function, parameter or output index out of range")                     \
  X(TT_ERR_NO_FUNCTION, "the model has no such function (train_step or predict)")             \
  X(TT_ERR_ABI_VERSION, "IREE executable-library ABI version mismatch")                       \
  X(TT_ERR_LIBRARY_MISMATCH, "the kernel library is not the one the schedule was built for")  \
  X(TT_ERR_KERNEL_MISMATCH, "a scheduled kernel differs from the library's export")           \
  X(TT_ERR_BAD_TABLE, "inconsistent schedule tables")                                         \
  X(TT_ERR_KERNEL_FAILED, "a kernel returned an error")                                       \
  X(TT_ERR_LABEL_RANGE, "a label is outside the model's class range")                         \
  X(TT_ERR_NONFINITE, "NaN or Inf in the input, the loss or the trained parameters")          \
  X(TT_ERR_NVM, "NVM erase/program/read failed or the NVM is too small")                      \
  X(TT_ERR_NO_CHECKPOINT, "no checkpoint saved yet (both slots erased)")                      \
  X(TT_ERR_CKPT_CORRUPT, "no intact checkpoint (bad header or CRC-32 in both slots)")         \
  X(TT_ERR_CKPT_MODEL, "the checkpoint belongs to a model with another parameter layout")    \
  X(TT_ERR_INPUT_READ, "the input reader failed, or a NULL input with no reader set")

const char* tt_status_name(tt_status_t status) {
  switch (status) {
#define TT_NAME_CASE_(code, text) \
  case code: return #code;
    TT_STATUS_TABLE_(TT_NAME_CASE_)
#undef TT_NAME_CASE_
  }
  return "TT_ERR_UNKNOWN";
}

const char* tt_status_string(tt_status_t status) {
  switch (status) {
#define TT_TEXT_CASE_(code, text) \
  case code: return text;
    TT_STATUS_TABLE_(TT_TEXT_CASE_)
#undef TT_TEXT_CASE_
  }
  return "unknown status";
}
