/* A hand-written IREE executable library (ABI v6) for host tests of the runtime. */
#ifndef TT_TEST_FAKE_LIBRARY_H_
#define TT_TEST_FAKE_LIBRARY_H_

#include "tt/iree_abi.h"

/* Exports: 0 "vadd" (in0, in1, out; constant 0 = elements per workgroup x),
 *          1 "axpy2" (x, y: y += 2 * x, whole buffer, 1 workgroup),
 *          2 "fail" (1 binding; returns -1). */
const tt_iree_library_header_t** fake_linked_library_query(uint32_t max_version,
                                                          const tt_iree_environment_t* env);
/* Same library but claiming ABI version 5 in its header. */
const tt_iree_library_header_t** fake_v5_library_query(uint32_t max_version,
                                                      const tt_iree_environment_t* env);
extern int fake_calls; /* kernel invocations (workgroups) since the last reset */

#endif
