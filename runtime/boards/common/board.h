/* tinytrain board support shared by the QEMU mps2 boards: semihosting, timer, memory report.
 *
 * Semihosting (bkpt 0xab) gives the firmware the host's console, files (relative to QEMU's
 * working directory; used to stream training samples in and parameters out) and exit status.
 * Run QEMU with `-semihosting-config enable=on,target=native`.
 */
#ifndef TT_BOARD_H_
#define TT_BOARD_H_

#include <stdint.h>

/** Write a NUL-terminated string to the host console. */
void tt_board_puts(const char* s);
/** Write `value` in decimal. */
void tt_board_put_u64(uint64_t value);

/** Open modes of tt_board_open. */
enum {
  TT_BOARD_READ = 0,    /**< "rb" */
  TT_BOARD_WRITE = 1,   /**< "wb" (create or truncate) */
  TT_BOARD_UPDATE = 2,  /**< "r+b" (existing file, read and write in place) */
  TT_BOARD_CREATE = 3,  /**< "w+b" (create or truncate, read and write) */
};

/** Open host file `path` with a TT_BOARD_* mode; returns a handle or -1. */
int tt_board_open(const char* path, int mode);
/** Read up to `n` bytes; returns the number of bytes read. */
uint32_t tt_board_read(int handle, void* buf, uint32_t n);
/** Write `n` bytes; returns the number of bytes written. */
uint32_t tt_board_write(int handle, const void* buf, uint32_t n);
void tt_board_close(int handle);
/** Move to byte `pos` of the file; 0 on success. */
int tt_board_seek(int handle, uint32_t pos);
/** File length in bytes, or -1. */
int32_t tt_board_length(int handle);

/** End the emulation with exit status `code` (QEMU exits with it). */
void tt_board_exit(int code) __attribute__((noreturn));

/** Start the 64-bit SysTick counter (CPU clock). Under `qemu -icount shift=0` one guest
 *  instruction takes 1 ns, so ticks * (1e9 / TT_BOARD_CPU_HZ) = instructions. */
void tt_board_timer_start(void);
uint64_t tt_board_timer_ticks(void);

/** Enable the MPU guard: flash read-only, RAM limited to __ram_size, a 1 KB no-access guard
 *  below the stack reserve (when it does not overlap .bss). Faults end with exit status 121. */
void tt_board_mpu_enable(void);
void tt_board_mpu_disable(void);

/** Print `MEM ram_total=.. data=.. bss=.. stack_reserved=.. stack_peak=.. sram_peak=..`
 *  (stack peak from the painted stack). Called after main() returns. */
void tt_board_report_memory(void);

/* ---- NVM backed by a host file (boards/common/nvm_file.c) -------------------------------- */
#include "tt/checkpoint.h"

/** Exit status of a simulated power cut (TT_BOARD_NVM_CUT). */
#define TT_BOARD_EXIT_POWER_CUT 99

/** A flash-like NVM kept in a host file (semihosting on QEMU, stdio on the host board), so it
 *  outlives a run. `cut_after` > 0 simulates a power cut: once that many erase/program
 *  operations are done, the next one prints "NVM power cut after <n> operations" and ends the
 *  run with TT_BOARD_EXIT_POWER_CUT (with `tear`, it first applies half of its bytes). */
typedef struct tt_board_nvm_t {
  int handle;
  uint32_t page_size;
  uint32_t ops;
  uint32_t cut_after;
  uint32_t tear;
} tt_board_nvm_t;

/** Open (or create, erased, with `default_pages` pages) the NVM file `path`; its length sets
 *  the page count. Fills `out`. Returns 0, or -1 if the file cannot be opened or created. */
int tt_board_nvm_open(tt_board_nvm_t* nvm, const char* path, uint32_t page_size,
                      uint32_t default_pages, tt_nvm_t* out);
void tt_board_nvm_close(tt_board_nvm_t* nvm);

#endif /* TT_BOARD_H_ */
