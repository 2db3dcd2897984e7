/* tinytrain runtime: status codes.
 *
 * Every fallible runtime function returns a tt_status_t. TT_OK is 0; errors are negative so
 * that firmware can pass them straight to an exit code.
 */
#ifndef TT_STATUS_H_
#define TT_STATUS_H_

typedef enum {
  TT_OK = 0,                /**< success */
  TT_ERR_ARG = -1,          /**< a NULL pointer, a bad index or a misaligned buffer */
  TT_ERR_NO_MEM = -2,       /**< the caller's arena is smaller than the model needs */
  TT_ERR_UNSUPPORTED = -3,  /**< the kernel library does not match the schedule (ABI, names) */
  TT_ERR_INTERNAL = -4,     /**< a kernel returned non-zero or a table is inconsistent */
} tt_status_t;

/** Return from the enclosing function if `expr` is not TT_OK. */
#define TT_RETURN_IF_ERROR(expr)          \
  do {                                    \
    tt_status_t tt_status_ = (expr);      \
    if (tt_status_ != TT_OK) return tt_status_; \
  } while (0)

/** A short constant name for `status` ("TT_OK", "TT_ERR_ARG", ...). */
const char* tt_status_name(tt_status_t status);

#endif /* TT_STATUS_H_ */
