/* Flash-like NVM in host memory for tests: erase sets a page to 0xFF, program may only write
 * into erased bytes (as NOR flash clears bits), and a power cut can be armed: after
 * `cut_after` successful operations (erase or program) every further operation fails and
 * changes nothing; with `tear` set, the operation at the cut is applied to half its bytes
 * first (a cut inside an erase or a program). */
#ifndef TT_TEST_MEM_NVM_H_
#define TT_TEST_MEM_NVM_H_

#include <stdint.h>

#include "tt/checkpoint.h"

#define MEM_NVM_MAX_BYTES 8192u

typedef struct mem_nvm_t {
  uint8_t bytes[MEM_NVM_MAX_BYTES];
  uint32_t page_size, page_count;
  uint32_t ops;        /* erase + program operations so far */
  uint32_t cut_after;  /* 0: no cut */
  int tear;
  int fail_reads;
  int cut;             /* set once the cut happened */
} mem_nvm_t;

/* Erased NVM of `page_count` pages; fills `out` with its interface. */
void mem_nvm_init(mem_nvm_t* m, uint32_t page_size, uint32_t page_count, tt_nvm_t* out);

#endif
