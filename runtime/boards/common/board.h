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

/** Open host file `path` ("rb" if `write` == 0, else "wb"); returns a handle or -1. */
int tt_board_open(const char* path, int write);
/** Read up to `n` bytes; returns the number of bytes read. */
uint32_t tt_board_read(int handle, void* buf, uint32_t n);
/** Write `n` bytes; returns the number of bytes written. */
uint32_t tt_board_write(int handle, const void* buf, uint32_t n);
void tt_board_close(int handle);

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

#endif /* TT_BOARD_H_ */
