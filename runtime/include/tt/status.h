/* tinytrain runtime: status codes.
 *
 * Every fallible runtime function returns a tt_status_t. TT_OK is 0; errors are negative so
 * that firmware can pass them straight to an exit code. Each code names one cause, so that
 * firmware (which has no debugger attached in the field) can act on it or log it.
 */
#ifndef TT_STATUS_H_
#define TT_STATUS_H_

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  TT_OK = 0,                    /**< success */
  TT_ERR_NULL = -1,             /**< a required pointer argument is NULL */
  TT_ERR_MISALIGNED = -2,       /**< a buffer that must be 64-byte aligned is not */
  TT_ERR_ARENA_TOO_SMALL = -3,  /**< the caller's arena is smaller than the model needs */
  TT_ERR_BAD_INDEX = -4,        /**< a function, parameter or output index is out of range */
  TT_ERR_NO_FUNCTION = -5,      /**< the model has no train_step (or predict) function */
  TT_ERR_ABI_VERSION = -6,      /**< the IREE executable-library ABI version is not the one
                                     this runtime implements (descriptor or library) */
  TT_ERR_LIBRARY_MISMATCH = -7, /**< the kernel library is not the schedule's (name differs,
                                     query returned nothing, or it needs imports) */
  TT_ERR_KERNEL_MISMATCH = -8,  /**< a scheduled kernel is missing from the library or differs
                                     in name, binding count, constant count or local memory */
  TT_ERR_BAD_TABLE = -9,        /**< the schedule tables are inconsistent: a buffer out of its
                                     region, an unaligned arena buffer, an unknown command */
  TT_ERR_KERNEL_FAILED = -10,   /**< a kernel returned non-zero */
  TT_ERR_LABEL_RANGE = -11,     /**< a label is outside [0, classes) of the model's logits */
  TT_ERR_NONFINITE = -12,       /**< NaN/Inf in the input (refused before any kernel runs), in
                                     the loss or in the trained parameters after a step, or in
                                     the state a checkpoint would save */
  TT_ERR_NVM = -13,             /**< the board's NVM reported an erase/program/read failure
                                     or its geometry cannot hold two checkpoint slots */
  TT_ERR_NO_CHECKPOINT = -14,   /**< both checkpoint slots are erased: nothing saved yet */
  TT_ERR_CKPT_CORRUPT = -15,    /**< no slot holds a valid checkpoint (bad magic, version,
                                     size or CRC-32): e.g. flipped bits, a torn write */
  TT_ERR_CKPT_MODEL = -16,      /**< the newest intact checkpoint was written by a model with
                                     another parameter layout (model identity differs) */
  TT_ERR_INPUT_READ = -17,      /**< the input reader (tt_model_set_input_reader) failed, or a
                                     streamed input was passed as NULL with no reader set */
} tt_status_t;

/** Return from the enclosing function if `expr` is not TT_OK. */
#define TT_RETURN_IF_ERROR(expr)          \
  do {                                    \
    tt_status_t tt_status_ = (expr);      \
    if (tt_status_ != TT_OK) return tt_status_; \
  } while (0)

/** The constant's name ("TT_OK", "TT_ERR_NULL", ...), or "TT_ERR_UNKNOWN". */
const char* tt_status_name(tt_status_t status);

/** A one-line English description of `status` (for logs and consoles). */
const char* tt_status_string(tt_status_t status);

#ifdef __cplusplus
}
#endif

#endif /* TT_STATUS_H_ */
