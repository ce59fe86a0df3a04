// Arm semihosting calls used by the port (QEMU needs -semihosting-config enable=on).
#ifndef MICROPY_INCLUDED_QEMU_MPFR_SEMIHOSTING_H
#define MICROPY_INCLUDED_QEMU_MPFR_SEMIHOSTING_H

#include <stdint.h>

// SYS_EXIT: ends the emulator with status 0 (application exit) or 1 (run-time error).
__attribute__((noreturn)) static inline void semihosting_exit(int status) {
    register uint32_t r0 __asm__ ("r0") = 0x18;
    register uint32_t r1 __asm__ ("r1") = status == 0 ? 0x20026 : 0x20023;
    __asm__ volatile ("bkpt 0xab" : : "r" (r0), "r" (r1) : "memory");
    for (;;) {
    }
}

#endif // MICROPY_INCLUDED_QEMU_MPFR_SEMIHOSTING_H
